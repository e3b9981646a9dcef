"""Training curves as a PNG: loss, validation Dice and learning rate per epoch."""

from __future__ import annotations

from pathlib import Path

from hipseg.core.atomic import atomic_path

__all__ = ["plot_progress"]


def plot_progress(rows: list[dict], path: Path) -> None:
    """Write ``path`` (PNG, atomically) from the training log's rows.

    Parameters
    ----------
    rows : list of dict
        One per epoch with ``epoch``, ``train_loss``, ``val_loss``, ``val_dice`` and ``lr``.
    """
    # A bare Figure renders with the Agg canvas: no display, no global pyplot state
    from matplotlib.figure import Figure

    epochs = [row["epoch"] for row in rows]
    figure = Figure(figsize=(12, 3.2))
    loss_axis, dice_axis, lr_axis = figure.subplots(1, 3)
    loss_axis.plot(epochs, [row["train_loss"] for row in rows], "o-", label="training")
    loss_axis.plot(epochs, [row["val_loss"] for row in rows], "o-", label="validation")
    loss_axis.set(title="weighted cross-entropy", xlabel="epoch")
    loss_axis.legend()
    dice_axis.plot(epochs, [row["val_dice"] for row in rows], "o-", color="tab:green")
    dice_axis.set(title="validation Dice (foreground mean)", xlabel="epoch", ylim=(0, 1))
    lr_axis.plot(epochs, [row["lr"] for row in rows], "o-", color="tab:red")
    lr_axis.set(title="learning rate", xlabel="epoch", yscale="log")
    figure.tight_layout()
    with atomic_path(Path(path)) as tmp:
        figure.savefig(tmp, format="png", dpi=80)
