"""What a perfect network could score at each pixel spacing: the resolution ceiling of the views.

Each real label map (``--maps``, default ``../shared/data/hip-labels``) is cut into the
default model's views (the 3 scanner axes and 3 random directions, ``ViewConfig``'s defaults)
at pixel spacing P, exactly as ``hipseg predict`` cuts a scan (``prediction_grid``,
``stack_window``, ``sample_planes``: trilinear, planes P mm apart), but with the one-hot
reference in place of the CT and an identity in place of the network. The stacks are mapped
back and fused by the product's own ``ViewAggregator``. What is lost is what planes of P mm
pixels cannot hold: a joint space of 3 mm sampled at 2 mm pixels. The table gives Dice, GapDice
and |E| (eps 2 mm) of the fused maps against the originals, before any post-processing, so a
trained model's scores can be read against the ceiling at its pixel spacing; the last row is
the |E| of the real maps themselves (real joint spaces narrower than 2 mm in places).

Usage: python benchmarks/pixel_ceiling.py [--maps DIR] [--cases N] [--pixel-mm 1.0 2.0 ...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from ablation import mean_std
from real_anatomy import EPS_MM, LABEL_MAPS

from hipseg.collisions import count_collisions
from hipseg.core.config import ModelConfig, ViewConfig
from hipseg.core.labels import DEFAULT_LABELS
from hipseg.evaluation.evaluate import evaluate_case
from hipseg.fusion import ViewAggregator
from hipseg.inference.volume import predict_stack
from hipseg.io import read_labels
from hipseg.views.directions import view_directions
from hipseg.views.grid import prediction_grid, stack_window

#: The default UNet's pooling factor: stacks are cut as the model would cut them.
SIZE_MULTIPLE = 2 ** ModelConfig().depth


class Identity(torch.nn.Module):
    """A "network" whose softmax returns the sampled one-hot labels (renormalised)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log(x.clamp_min(1e-6))


def fused_reference(labels: np.ndarray, affine: np.ndarray, center_mm: np.ndarray,
                    extent_mm: np.ndarray, directions: np.ndarray, pixel_mm: float) -> np.ndarray:
    """The label map after the round trip through the views at ``pixel_mm``.

    Parameters
    ----------
    labels : ndarray, shape (X, Y, Z), uint8
    directions : ndarray, shape (V, 3)
        View directions, unit vectors in RAS scanner space.

    Returns
    -------
    ndarray, shape (X, Y, Z), uint8
        The fused labels (argmax of the summed views).
    """
    n_classes = DEFAULT_LABELS.n_classes
    one_hot = torch.from_numpy(np.eye(n_classes, dtype=np.float32)[labels]).permute(3, 0, 1, 2)
    fill = tuple(float(v) for v in np.eye(n_classes)[0])
    aggregator = ViewAggregator(n_classes, labels.shape)
    for direction in directions:
        grid = prediction_grid(direction, center_mm, extent_mm, pixel_mm, SIZE_MULTIPLE)
        window = stack_window(grid, affine, labels.shape, context_px=None, multiple_of=SIZE_MULTIPLE)
        to_voxel = grid.stack_to_voxel(affine) @ window.shift()
        stack = predict_stack(Identity(), one_hot, to_voxel, window, fill_value=fill, batch_size=8)
        aggregator.add_stack(stack, to_voxel)
        del stack
    return aggregator.finalize()[1].numpy().astype(np.uint8)


def format_tables(rows: dict[float, list[dict]], own_collisions: list[float]) -> str:
    """The summary table (one row per pixel spacing, then the maps' own |E|) and GapDice per class."""
    lines = ["| pixel (mm) | Dice | GapDice | worst GapDice | HD95 (mm) | abs(E) | round trip s |",
             "|---|---|---|---|---|---|---|"]
    for pixel_mm, scored in rows.items():
        column = {key: [row[key] for row in scored]
                  for key in ("dice_mean", "gap_dice_mean", "hd95_mean", "collisions", "seconds")}
        lines.append(
            f"| {pixel_mm:g} | {mean_std(column['dice_mean'], 4)} | {mean_std(column['gap_dice_mean'], 4)} | "
            f"{min(column['gap_dice_mean']):.4f} | {mean_std(column['hd95_mean'], 2)} | "
            f"{mean_std(column['collisions'], 0)} | {statistics.median(column['seconds']):.0f} |")
    lines.append(f"| the maps themselves | 1 | 1 | 1 | 0 | {mean_std(own_collisions, 0)} | |")
    names = DEFAULT_LABELS.names[1:]
    lines += ["", "GapDice per class (mean over the maps)", "",
              "| pixel (mm) | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for pixel_mm, scored in rows.items():
        lines.append(f"| {pixel_mm:g} | " + " | ".join(
            f"{statistics.mean(row[f'gap_dice_{name}'] for row in scored):.4f}" for name in names) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maps", type=Path, default=LABEL_MAPS, help="folder of real label maps")
    parser.add_argument("--cases", type=int, default=6, help="first N maps by name (default 6)")
    parser.add_argument("--pixel-mm", type=float, nargs="+", default=[1.0, 1.5, 2.0, 2.5, 3.0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    paths = sorted(args.maps.glob("*.nii*"))[: args.cases]
    if not paths:
        sys.exit(f"error: {args.maps}: no label maps (*.nii, *.nii.gz)")
    views = ViewConfig()
    directions = view_directions(views.n_views, views.min_angle_deg, np.random.default_rng(views.seed))
    rows: dict[float, list[dict]] = {p: [] for p in args.pixel_mm}
    own_collisions = []
    for path in paths:
        volume = read_labels(path, DEFAULT_LABELS)
        own_collisions.append(float(count_collisions(volume.data, volume.spacing_mm, EPS_MM)[0]))
        for pixel_mm in args.pixel_mm:
            start = time.perf_counter()
            fused = fused_reference(volume.data, volume.affine, volume.center_mm, volume.extent_mm,
                                    directions, pixel_mm)
            seconds = time.perf_counter() - start
            scores = evaluate_case(fused, volume.data, volume.spacing_mm, DEFAULT_LABELS)
            scores["collisions"] = float(count_collisions(fused, volume.spacing_mm, EPS_MM)[0])
            scores["seconds"] = seconds
            rows[pixel_mm].append(scores)
            print(f"{path.name} {pixel_mm} mm: Dice {scores['dice_mean']:.4f} GapDice "
                  f"{scores['gap_dice_mean']:.4f} |E| {scores['collisions']:.0f} ({seconds:.0f} s)",
                  file=sys.stderr, flush=True)

    print(f"\n{len(paths)} real label maps ({', '.join(p.name.split('.')[0] for p in paths)}), "
          f"{len(directions)} views, no post-processing\n")
    print(format_tables(rows, own_collisions))
    return 0


if __name__ == "__main__":
    sys.exit(main())
