"""Data-parallel training under ``torchrun`` on the CPU (gloo), as docs/scaling.md describes."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from hipseg.cli import main
from hipseg.core.config import HipsegConfig, ModelConfig, SamplingConfig, TrainConfig, ViewConfig
from hipseg.inference.volume import predict_volume
from hipseg.io import find_cases, read_image
from hipseg.models.checkpoint import load_state_dict
from hipseg.runtime.model_io import load_model
from hipseg.training.data import load_training_scans
from hipseg.training.train import make_sampler, sample_batch, sampling_rng

CPU = torch.device("cpu")
ARGS = ["--epochs", "1", "--steps-per-epoch", "3", "--batch-size", "2", "--base-width", "4",
        "--depth", "2", "--views", "3", "--seed", "3", "--no-progress"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    assert main(["phantom", str(folder), "--cases", "3", "--seed", "2", "--no-progress"]) == 0
    return folder


def _torchrun(*args: str, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc-per-node", "2", "-m", "hipseg", *args],
                          check=False, env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.slow
def test_two_gloo_ranks_train_one_checkpoint_that_loads_and_predicts(data, tmp_path, capsys):
    out = tmp_path / "model"
    done = _torchrun("train", str(data), "--out", str(out), "--device", "cpu", *ARGS,
                     cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    # Only rank 0 prints the result and writes files: one checkpoint set, no temporaries.
    assert done.stdout.count("model written to") == 1
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["config.yaml", "last.pt", "log.csv", "model.pt", "progress.png", "train_state.pt",
         "training_cases.csv"])
    state = load_state_dict(out / "train_state.pt")
    # The resumable state holds both ranks' random streams, and they differ.
    assert len(state["numpy_rng"]) == 2
    assert state["numpy_rng"][0] != state["numpy_rng"][1]

    model = load_model(out, CPU)
    image = read_image(find_cases(data / "images", data / "labels")[0].image)
    labels = predict_volume(model, image, progress=False).labels
    assert labels.shape == image.shape

    # Each rank resumes its own stream: one process cannot take over a two-process run.
    assert main(["train", str(data), "--out", str(out), "--resume", "--no-progress"]) == 2
    assert "resume it with as many, not 1" in capsys.readouterr().err


def test_ranks_draw_different_planes_in_the_same_step(data):
    config = dataclasses.replace(
        HipsegConfig(), views=ViewConfig(n_views=3, directions=((1.0, 0, 0), (0, 1.0, 0),
                                                                (0, 0, 1.0))),
        sampling=SamplingConfig(dim=32, sphere_diameter_mm=120.0),
        model=ModelConfig(base_width=4, depth=2), train=TrainConfig(batch_size=4, seed=3))
    scans = load_training_scans(find_cases(data / "images", data / "labels"), config, CPU,
                                progress=False)
    sampler = make_sampler(config, scans)
    seed = config.train.seed
    first = [sample_batch(sampler, config, sampling_rng(seed, rank, np.random.default_rng(seed)))
             for rank in (0, 1, 1)]
    assert not torch.equal(first[0][0], first[1][0]), "ranks 0 and 1 drew the same planes"
    assert torch.equal(first[1][0], first[2][0]), "a rank's stream must be reproducible"

