"""Training killed with SIGKILL mid-run resumes to exactly the model of an uninterrupted run."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from hipseg.cli import main
from hipseg.models.checkpoint import load_state_dict

ARGS = ["--epochs", "4", "--steps-per-epoch", "12", "--batch-size", "4", "--base-width", "4",
        "--depth", "2", "--views", "3", "--seed", "7", "--no-progress"]


def _epochs_logged(model_dir: Path) -> int:
    try:
        with open(model_dir / "log.csv") as handle:
            return len(list(csv.DictReader(handle)))
    except FileNotFoundError:
        return 0


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    assert main(["phantom", str(folder), "--cases", "3", "--seed", "5", "--no-progress"]) == 0
    return folder


FINETUNE_ARGS = ["--epochs", "4", "--steps-per-epoch", "5", "--batch-size", "2", "--lr", "1e-3",
                 "--seed", "7", "--no-progress"]


@pytest.mark.slow
@pytest.mark.parametrize("verb", ["train", "finetune"])
def test_sigkill_then_resume_equals_an_uninterrupted_run(verb, data, tmp_path, tiny_model_dir):
    """The resumed run continues at the next epoch with the saved optimizer state: its weights,
    Adam moments and losses equal those of a run that was never killed."""
    if verb == "train":
        def command(out, *extra):
            return ["train", str(data), "--out", str(out), *extra]
        args = ARGS
    else:
        def command(out, *extra):
            return ["finetune", str(tiny_model_dir), str(data), "--out", str(out), *extra]
        args = FINETUNE_ARGS
    assert main(command(tmp_path / "straight", *args)) == 0

    killed = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen([sys.executable, "-m", "hipseg", *command(killed, *args)], env=env,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while _epochs_logged(killed) < 2 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    completed = _epochs_logged(killed)
    assert 2 <= completed < 4, "the kill must land before the last epoch"

    assert main(command(killed, "--resume", "--no-progress")) == 0
    assert _epochs_logged(killed) == 4
    for name in ("last.pt", "model.pt", "train_state.pt"):
        straight = load_state_dict(tmp_path / "straight" / name)
        resumed = load_state_dict(killed / name)
        if name == "train_state.pt":  # the optimizer's moments and step counts
            straight, resumed = _flat(straight["optimizer"]), _flat(resumed["optimizer"])
        assert straight.keys() == resumed.keys()
        for key in straight:
            torch.testing.assert_close(resumed[key], straight[key], rtol=0, atol=0)
    with open(tmp_path / "straight" / "log.csv") as a, open(killed / "log.csv") as b:
        losses_a = [float(r["val_loss"]) for r in csv.DictReader(a)]
        losses_b = [float(r["val_loss"]) for r in csv.DictReader(b)]
    np.testing.assert_array_equal(losses_a, losses_b)


def _flat(optimizer_state: dict) -> dict:
    """Adam's per-parameter tensors as one flat dict (``param.name``)."""
    return {f"{param}.{name}": torch.as_tensor(value)
            for param, entry in optimizer_state["state"].items() for name, value in entry.items()}


def test_resume_without_state_is_a_clear_error(data, tmp_path, capsys):
    code = main(["train", str(data), "--out", str(tmp_path / "m"), "--resume", "--no-progress"])
    assert code == 2
    assert "nothing to resume" in capsys.readouterr().err
