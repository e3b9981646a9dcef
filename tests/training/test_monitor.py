"""The best model and early stopping follow the monitored validation value."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from hipseg.cli import main
from hipseg.core.config import TrainConfig, load_config, save_config
from hipseg.core.errors import ConfigError
from hipseg.training import train as train_module
from hipseg.training.train import monitored_score, monitored_value

ARGS = ["--epochs", "5", "--steps-per-epoch", "6", "--batch-size", "4", "--base-width", "4",
        "--depth", "2", "--views", "3", "--seed", "4", "--lr", "3e-3", "--no-progress"]


def test_dice_is_maximised_and_the_loss_minimised():
    assert monitored_score("dice", 0.9, 0.3) > monitored_score("dice", 0.1, 0.4)
    assert monitored_score("loss", 0.2, 0.1) < monitored_score("loss", 0.3, 0.9)
    with pytest.raises(ConfigError, match="train.monitor"):
        TrainConfig(monitor="accuracy")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    assert main(["phantom", str(folder), "--cases", "2", "--seed", "6", "--no-progress"]) == 0
    return folder


#: Scripted validation (loss, Dice) per epoch: the loss is best at epoch 2, the Dice at 3.
SCRIPT = [(1.0, 0.1), (0.5, 0.2), (0.8, 0.6), (0.9, 0.3), (0.7, 0.5), (0.6, 0.4)]


@pytest.mark.parametrize(("monitor", "best_epoch", "epochs_run"), [("dice", 3, 5), ("loss", 2, 4)])
def test_best_model_and_early_stop_follow_the_monitor(data, tmp_path, capsys, monkeypatch,
                                                      monitor, best_epoch, epochs_run):
    script = iter(SCRIPT)
    monkeypatch.setattr(train_module, "validate", lambda *args: next(script))
    out = tmp_path / monitor
    assert main(["train", str(data), "--out", str(out), "--monitor", monitor,
                 "--early-stop-patience", "2", *ARGS, "--epochs", "6"]) == 0
    # patience 2: two epochs without a better value after the best one, then stop
    assert (f"(best epoch {best_epoch} of {epochs_run}, validation {monitor} "
            f"{SCRIPT[best_epoch - 1][0 if monitor == 'loss' else 1]:.4f}"
            in capsys.readouterr().out)


def test_monitored_value_inverts_the_score():
    for monitor in ("dice", "loss"):
        assert monitored_value(monitor, monitored_score(monitor, 0.25, 0.75)) == (
            0.75 if monitor == "dice" else 0.25)


def _set_monitor(model_dir, monitor):
    config = load_config(model_dir / "config.yaml")
    save_config(dataclasses.replace(config, train=dataclasses.replace(config.train,
                                                                      monitor=monitor)),
                model_dir / "config.yaml")


def test_resume_refuses_a_state_saved_with_another_monitor(data, tmp_path, capsys):
    out = tmp_path / "model"
    assert main(["train", str(data), "--out", str(out), "--monitor", "loss", *ARGS,
                 "--epochs", "1"]) == 0
    _set_monitor(out, "dice")
    # the saved best score is a loss: compared with -Dice, every epoch would look better
    assert main(["train", str(data), "--out", str(out), "--resume", "--epochs", "2",
                 "--no-progress"]) == 2
    assert "following the validation loss" in capsys.readouterr().err
    _set_monitor(out, "loss")
    assert main(["train", str(data), "--out", str(out), "--resume", "--epochs", "2",
                 "--no-progress"]) == 0


@pytest.mark.parametrize("monitor", ["loss", "dice"])
def test_a_state_saved_without_its_monitor_is_read_from_its_best_score(data, tmp_path, capsys,
                                                                       monitor):
    out = tmp_path / "model"
    assert main(["train", str(data), "--out", str(out), "--monitor", monitor, *ARGS,
                 "--epochs", "1"]) == 0
    state_path = out / "train_state.pt"
    saved = torch.load(state_path, weights_only=True)
    del saved["monitor"]  # as saved before the state kept it
    torch.save(saved, state_path)
    _set_monitor(out, "dice")
    code = main(["train", str(data), "--out", str(out), "--resume", "--epochs", "2",
                 "--no-progress"])
    if monitor == "loss":
        assert code == 2
        assert "following the validation loss" in capsys.readouterr().err
    else:
        assert code == 0
