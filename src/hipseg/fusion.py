"""SPEC step 7: sum the views' probabilities on the voxel grid, argmax, and a disagreement map."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from hipseg.views.fused_cpu import accumulate_view
from hipseg.views.mapping import TiledStack, mapped_blocks

__all__ = ["ViewAggregator"]

#: Views whose votes a ``uint8`` counter can hold.
MAX_VIEWS = 255


class ViewAggregator:
    """Accumulates per-view class probabilities that are already on the scan's voxel grid.

    Memory does not grow with the number of views: the sum of probabilities ``(C, X, Y, Z)``
    float32, one vote counter per class and voxel and one coverage counter per voxel (uint8),
    so a view can be dropped as soon as it is added, even slab by slab (:meth:`add_blocks`).

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
        self._votes = torch.zeros((n_classes, *shape), dtype=torch.uint8, device=device)
        self._covering = torch.zeros(shape, dtype=torch.uint8, device=device)
        self._n_views = 0

    @property
    def n_views(self) -> int:
        return self._n_views

    def add(self, probabilities: torch.Tensor) -> None:
        """Add one view's probabilities, shape ``(C, X, Y, Z)``; all-zero where the view saw nothing."""
        if tuple(probabilities.shape) != (self.n_classes, *self.shape):
            raise ValueError(
                f"expected probabilities of shape {(self.n_classes, *self.shape)}, "
                f"got {tuple(probabilities.shape)}"
            )
        self.add_blocks([(0, probabilities)])

    def add_stack(self, stack: torch.Tensor, stack_to_voxel: np.ndarray) -> None:
        """Add one view given on its own stack: mapped back trilinearly, then added.

        Parameters
        ----------
        stack : Tensor, shape (P, R, K, C), float32
            The view's class probabilities, classes last, on the aggregator's device.
        stack_to_voxel : ndarray, shape (4, 4)
            From stack index ``(p, r, k)`` to voxel index.

        On the CPU one compiled pass maps and adds (:mod:`hipseg.views.fused_cpu`); on other
        devices the tiled ``grid_sample`` (:mod:`hipseg.views.mapping`) feeds
        :meth:`add_blocks` slab by slab. Both give the same result.
        """
        if stack.shape[-1] != self.n_classes:
            raise ValueError(f"expected a stack with {self.n_classes} classes last, "
                             f"got {tuple(stack.shape)}")
        if self._sum.device.type != "cpu":
            tiled = TiledStack(self.n_classes, tuple(stack.shape[:3]), device=stack.device)
            tiled.write(0, stack.permute(0, 3, 1, 2))
            self.add_blocks(mapped_blocks(tiled, stack_to_voxel, self.shape))
            return
        if self._n_views == MAX_VIEWS:
            raise ValueError(f"at most {MAX_VIEWS} views can be fused")
        accumulate_view(stack.numpy(), np.linalg.inv(stack_to_voxel), self._sum.numpy(),
                        self._votes.numpy(), self._covering.numpy())
        self._n_views += 1

    def add_blocks(self, blocks: Iterable[tuple[int, torch.Tensor]]) -> None:
        """Add one view given as slabs ``(start, probabilities (C, n, Y, Z))`` along X.

        Slabs may come in any order and must not overlap; voxels of no slab count as not
        covered by the view.
        """
        if self._n_views == MAX_VIEWS:
            raise ValueError(f"at most {MAX_VIEWS} views can be fused")
        for start, block in blocks:
            stop = start + block.shape[1]
            if block.shape[0] != self.n_classes or tuple(block.shape[2:]) != self.shape[1:] or \
                    not 0 <= start < stop <= self.shape[0]:
                raise ValueError(f"a slab of shape {tuple(block.shape)} at {start} does not fit "
                                 f"({self.n_classes}, {self.shape})")
            self._sum[:, start:stop] += block
            covered = block.sum(0) > 0
            votes = self._votes[:, start:stop]
            votes.scatter_add_(0, block.argmax(0, keepdim=True), covered[None].to(torch.uint8))
            self._covering[start:stop] += covered.to(torch.uint8)
        self._n_views += 1

    def swap_classes(self, pairs: Iterable[tuple[int, int]]) -> None:
        """Exchange the running sums and votes of each pair of class ids, in place.

        Views of a mirrored scan (:func:`hipseg.core.volume.mirrored_affine`) name the sides
        the other way round: swapping before and after adding them fuses them with the others
        without a second set of buffers.
        """
        for a, b in pairs:
            for buffer in (self._sum, self._votes):
                kept = buffer[a].clone()
                buffer[a] = buffer[b]
                buffer[b] = kept

    def finalize(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Fuse the views.

        Returns
        -------
        summed : Tensor, shape (C, X, Y, Z), float32
            Sum of the views' probabilities (the aggregator's own buffer, not a copy).
        labels : Tensor, shape (X, Y, Z), uint8
            Argmax of ``summed`` (background where no view covered a voxel).
        disagreement : Tensor, shape (X, Y, Z), float32
            Fraction of the views covering a voxel whose own argmax differs from ``labels``
            (0 where no view covered it).
        """
        if not self._n_views:
            raise ValueError("no view was added")
        labels = self._sum.argmax(0).to(torch.uint8)
        agreeing = self._votes.gather(0, labels[None].long())[0].float()
        covering = self._covering.float()
        disagreement = torch.where(covering > 0, 1.0 - agreeing / covering.clamp(min=1), 0.0)
        return self._sum, labels, disagreement
