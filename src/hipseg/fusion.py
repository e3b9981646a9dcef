"""SPEC step 7: sum the views' probabilities on the voxel grid, argmax, and a disagreement map."""

from __future__ import annotations

import torch

__all__ = ["ViewAggregator"]


class ViewAggregator:
    """Accumulates per-view class probabilities that are already on the scan's voxel grid.

    Parameters
    ----------
    n_classes : int
    shape : (X, Y, Z)
    device : torch.device, optional

    Examples
    --------
    >>> agg = ViewAggregator(2, (1, 1, 2))
    >>> agg.add(torch.tensor([[[[0.9, 0.2]]], [[[0.1, 0.8]]]]))
    >>> agg.finalize()[1].tolist()
    [[[0, 1]]]
    """

    def __init__(self, n_classes: int, shape: tuple[int, int, int],
                 device: torch.device | None = None) -> None:
        self.n_classes = n_classes
        self.shape = tuple(shape)
        self._sum = torch.zeros((n_classes, *shape), dtype=torch.float32, device=device)
        self._votes: list[torch.Tensor] = []
        self._covered: list[torch.Tensor] = []

    @property
    def n_views(self) -> int:
        return len(self._votes)

    def add(self, probabilities: torch.Tensor) -> None:
        """Add one view's probabilities, shape ``(C, X, Y, Z)``; all-zero where the view saw nothing."""
        if tuple(probabilities.shape) != (self.n_classes, *self.shape):
            raise ValueError(
                f"expected probabilities of shape {(self.n_classes, *self.shape)}, "
                f"got {tuple(probabilities.shape)}"
            )
        self._sum += probabilities
        self._votes.append(probabilities.argmax(0).to(torch.uint8))
        self._covered.append(probabilities.sum(0) > 0)

    def finalize(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Fuse the views.

        Returns
        -------
        summed : Tensor, shape (C, X, Y, Z), float32
            Sum of the views' probabilities.
        labels : Tensor, shape (X, Y, Z), uint8
            Argmax of ``summed`` (background where no view covered a voxel).
        disagreement : Tensor, shape (X, Y, Z), float32
            Fraction of the views covering a voxel whose own argmax differs from ``labels``
            (0 where no view covered it).
        """
        if not self._votes:
            raise ValueError("no view was added")
        labels = self._sum.argmax(0).to(torch.uint8)
        against = torch.zeros(self.shape, dtype=torch.float32, device=labels.device)
        covering = torch.zeros_like(against)
        for votes, covered in zip(self._votes, self._covered):
            against += ((votes != labels) & covered).float()
            covering += covered.float()
        disagreement = torch.where(covering > 0, against / covering.clamp(min=1), 0.0)
        return self._sum, labels, disagreement
