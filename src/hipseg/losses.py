"""Training losses and overlap counts on tensors (SPEC step 4)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["class_overlaps", "mean_foreground_dice", "weighted_cross_entropy"]


def weighted_cross_entropy(logits: torch.Tensor, labels: torch.Tensor,
                           weights: torch.Tensor) -> torch.Tensor:
    """Per-pixel cross-entropy times the per-pixel weight, then the mean (SPEC step 4).

    Shapes: logits ``(B, C, ...)``, labels ``(B, ...)`` int64, weights ``(B, ...)`` float.
    """
    return (F.cross_entropy(logits, labels, reduction="none") * weights).mean()


def class_overlaps(predicted: torch.Tensor, target: torch.Tensor,
                   n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per class, the voxels both maps give it and the sum of both maps' voxels of it.

    Parameters
    ----------
    predicted, target : Tensor, the same shape, int64
        Class ids.

    Returns
    -------
    intersections, sizes : Tensor, shape (n_classes,), float32, on the CPU
        ``|P_c & T_c|`` and ``|P_c| + |T_c|``; sums over batches give a batch-free Dice.
    """
    intersections = torch.zeros(n_classes)
    sizes = torch.zeros(n_classes)
    for c in range(n_classes):
        p, t = predicted == c, target == c
        intersections[c] = (p & t).sum().cpu()
        sizes[c] = (p.sum() + t.sum()).cpu()
    return intersections, sizes


def mean_foreground_dice(intersections: torch.Tensor, sizes: torch.Tensor) -> float:
    """Mean Dice ``2 |P & T| / (|P| + |T|)`` over the foreground classes present (class 0 is
    background); NaN when none is present."""
    present = sizes[1:] > 0
    if not present.any():
        return float("nan")
    return (2 * intersections[1:][present] / sizes[1:][present]).mean().item()
