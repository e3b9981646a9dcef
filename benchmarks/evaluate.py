"""Benchmark `hipseg evaluate` on 7 hip-sized cases against MONAI's metrics (the baseline).

Makes one procedural phantom of about 400 x 294 x 269 voxels (0.85 x 0.85 x 0.93 mm), derives
7 predictions from it by random per-class dilations, erosions and shifts, writes them as NIfTI,
then times:

- hipseg: `evaluate_folders` over the 7 cases (reading included): Dice, GapDice, HD, HD95, ASSD
  for 5 classes;
- baseline, same run: MONAI's `compute_dice`, `compute_hausdorff_distance` (100 and 95) and
  `compute_average_surface_distance` on the same arrays (files already in memory), on
  ``--baseline-cases`` cases.

Usage: python benchmarks/evaluate.py [--baseline-cases 2] [--workdir DIR]
Prints one table; hipseg's per-case time is its total over the folder divided by the number of
cases, the baseline's the median over the cases it ran.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from hipseg.core.labels import DEFAULT_LABELS
from hipseg.evaluation.evaluate import evaluate_folders
from hipseg.phantom import PhantomSettings, make_procedural_case


def perturbed(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A plausible prediction: each class dilated, eroded or shifted by one or two voxels."""
    out = np.zeros_like(labels)
    for class_id in DEFAULT_LABELS.foreground_ids:
        mask = labels == class_id
        action = rng.integers(3)
        if action == 0:
            mask = ndimage.binary_dilation(mask)
        elif action == 1:
            mask = ndimage.binary_erosion(mask)
        else:
            mask = np.roll(mask, int(rng.integers(1, 3)), axis=int(rng.integers(3)))
        out[mask & (out == 0)] = class_id
    return out


def monai_case(prediction: np.ndarray, reference: np.ndarray, spacing: tuple[float, ...]) -> None:
    import torch
    from monai.metrics import (
        compute_average_surface_distance,
        compute_dice,
        compute_hausdorff_distance,
    )

    n = DEFAULT_LABELS.n_classes
    pred = torch.nn.functional.one_hot(torch.from_numpy(prediction.astype(np.int64)), n)
    ref = torch.nn.functional.one_hot(torch.from_numpy(reference.astype(np.int64)), n)
    pred = pred.permute(3, 0, 1, 2)[None]
    ref = ref.permute(3, 0, 1, 2)[None]
    compute_dice(pred, ref, include_background=False)
    compute_hausdorff_distance(pred, ref, include_background=False, spacing=spacing)
    compute_hausdorff_distance(pred, ref, include_background=False, percentile=95, spacing=spacing)
    compute_average_surface_distance(pred, ref, include_background=False, symmetric=True,
                                     spacing=spacing)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=7)
    parser.add_argument("--baseline-cases", type=int, default=2)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="hipseg-bench-"))
    rng = np.random.default_rng(0)

    started = time.perf_counter()
    settings = PhantomSettings(inplane_spacing_mm=(0.85, 0.85), slice_spacing_mm=(0.93, 0.93),
                               random_axis_flips=False)
    case = make_procedural_case(rng, settings)
    reference = case.labels.data
    affine = case.labels.affine
    spacing = tuple(float(s) for s in case.labels.spacing_mm)
    predictions = []
    for index in range(args.cases):
        prediction = perturbed(reference, rng)
        predictions.append(prediction)
        for folder, data in (("labels", reference), ("predictions", prediction)):
            (workdir / folder).mkdir(parents=True, exist_ok=True)
            nib.save(nib.Nifti1Image(data, affine), workdir / folder / f"case_{index:03d}.nii.gz")
    print(f"made {args.cases} cases of {reference.shape} voxels in "
          f"{time.perf_counter() - started:.0f} s (not timed below)")

    started = time.perf_counter()
    evaluate_folders(workdir / "labels", workdir / "predictions", DEFAULT_LABELS)
    ours_total = time.perf_counter() - started

    baseline_times = []
    for prediction in predictions[: args.baseline_cases]:
        started = time.perf_counter()
        monai_case(prediction, reference, spacing)
        baseline_times.append(time.perf_counter() - started)
    baseline = statistics.median(baseline_times)
    ours = ours_total / args.cases

    print(f"\n{'stage':<44} {'hipseg (s)':>10} {'baseline (s)':>12} {'speed-up':>9}")
    print(f"{'evaluate, per case':<44} {ours:10.2f} {baseline:12.2f} {baseline / ours:8.1f}x")
    print(f"{'evaluate, all cases (baseline extrapolated)':<44} {ours_total:10.1f} "
          f"{baseline * args.cases:12.1f} {baseline * args.cases / ours_total:8.1f}x")
    print("\nhipseg: Dice, GapDice, HD, HD95, ASSD for 5 classes, reading the NIfTI files included;")
    print("baseline: MONAI compute_dice + compute_hausdorff_distance (100, 95) + "
          "compute_average_surface_distance on arrays already in memory.")


if __name__ == "__main__":
    main()
