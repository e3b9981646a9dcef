"""The best model and early stopping follow the monitored validation value."""

from __future__ import annotations

import pytest

from hipseg.cli import main
from hipseg.core.config import TrainConfig
from hipseg.core.errors import ConfigError
from hipseg.training import train as train_module
from hipseg.training.train import monitored_score

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
