"""How wide a gap may post-processing carve? Real anatomy's narrowest joint spaces, and what
each minimum gap does to predictions of real anatomy.

Part 1 (references): every real label map of ``../shared/data/hip-labels`` at full resolution
is put through the gap guarantee (:func:`hipseg.postprocess.enforce_min_gap`) at each minimum
gap; the voxels it would clear measure how much real anatomy is narrower than that gap. A gap
the references already keep everywhere costs nothing on correct bones.

Part 2 (predictions, optional): raw predictions (``hipseg predict --no-postprocess``, e.g. from
``benchmarks/real_anatomy.py``) are post-processed as ``predict`` does (symmetric connected
components, then the gap guarantee at each minimum gap; without the saved probabilities the
side that loses fewer voxels gives way) and scored against their references: Dice, GapDice,
|E| (eps 2 mm, after the gap guarantee).

Usage: .venv/bin/python benchmarks/min_gap.py [--predictions DIR --references DIR]
       [--gaps 1.0 2.0 ...]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
from ablation import mean_std

from hipseg.collisions import count_collisions
from hipseg.core.labels import DEFAULT_LABELS
from hipseg.evaluation.evaluate import evaluate_case
from hipseg.io import case_id, find_images, read_labels
from hipseg.postprocess import enforce_min_gap, symmetric_components

LABEL_MAPS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "hip-labels"
EPS_MM = 2.0


def gap_label(gap: float | None) -> str:
    return "26-nbr" if gap is None else f"{gap:g} mm"


def references_table(maps: list[Path], gaps: list[float | None]) -> str:
    """Voxels the gap guarantee clears on each real reference, per minimum gap."""
    cleared = {gap: [] for gap in gaps}
    bone = []
    for path in maps:
        volume = read_labels(path, DEFAULT_LABELS)
        bone.append(int(np.count_nonzero(volume.data)))
        for gap in gaps:
            cleared[gap].append(enforce_min_gap(volume.data, volume.spacing_mm,
                                                min_gap_mm=gap)[1])
    lines = [f"references: {len(maps)} real label maps at full resolution",
             "| min gap | maps unchanged | cleared voxels, median | max | max share of bone |",
             "|---|---|---|---|---|"]
    for gap in gaps:
        counts = cleared[gap]
        share = max(c / b for c, b in zip(counts, bone))
        lines.append(f"| {gap_label(gap)} | {sum(c == 0 for c in counts)}/{len(counts)} | "
                     f"{statistics.median(counts):.0f} | {max(counts)} | {share:.2e} |")
    return "\n".join(lines)


def predictions_table(predictions: Path, references: Path, gaps: list[float | None]) -> str:
    """Dice, GapDice and |E| of post-processed predictions, per minimum gap."""
    refs = {case_id(p): p for p in find_images(references)}
    preds = [p for p in find_images(predictions) if case_id(p) in refs]
    scores = {gap: [] for gap in gaps}
    for path in preds:
        reference = read_labels(refs[case_id(path)], DEFAULT_LABELS)
        raw = read_labels(path, DEFAULT_LABELS)
        labels = symmetric_components(raw.data, DEFAULT_LABELS)
        spacing = reference.spacing_mm
        for gap in gaps:
            final, changed = enforce_min_gap(labels, spacing, min_gap_mm=gap)
            metrics = evaluate_case(final, reference.data, spacing, DEFAULT_LABELS)
            collisions = count_collisions(final, spacing, EPS_MM)[0]
            scores[gap].append((metrics["dice_mean"], metrics["gap_dice_mean"],
                                float(collisions), float(changed)))
    lines = [(f"predictions: {predictions} ({len(preds)} scans: "
              f"{', '.join(case_id(p) for p in preds)})"),
             "| min gap | Dice | GapDice | abs(E) after | voxels cleared |", "|---|---|---|---|---|"]
    for gap in gaps:
        columns = list(zip(*scores[gap]))
        lines.append(f"| {gap_label(gap)} | {mean_std(columns[0], 4)} | {mean_std(columns[1], 4)} "
                     f"| {mean_std(columns[2], 0)} | {mean_std(columns[3], 0)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gaps", type=float, nargs="+", default=[1.0, 1.5, 2.0, 2.5, 3.0, 4.0],
                        help="minimum gaps in mm (the 26-neighbour rule is always included)")
    parser.add_argument("--predictions", type=Path, help="folder of raw predictions")
    parser.add_argument("--references", type=Path, help="their reference label maps")
    parser.add_argument("--skip-references", action="store_true",
                        help="only part 2 (predictions)")
    args = parser.parse_args()
    gaps: list[float | None] = [None, *args.gaps]
    started = time.perf_counter()
    if not args.skip_references:
        print(references_table(sorted(LABEL_MAPS.glob("*.nii.gz")), gaps), flush=True)
    if args.predictions is not None:
        print(predictions_table(args.predictions, args.references, gaps), flush=True)
    print(f"\n{(time.perf_counter() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
