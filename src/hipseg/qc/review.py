"""Collision review over predicted label maps: |E| per scan and pair, where to correct first.

This is the measuring half of the paper's interactive loop (SPEC step 9): without ground
truth, scans are ranked by |E| (then by view disagreement when an uncertainty map lies beside
the prediction), and the largest collision regions of each scan are located in scanner mm.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import cc3d
import numpy as np

from hipseg.collisions import collision_map, default_eps_mm
from hipseg.core.atomic import atomic_path
from hipseg.core.labels import LabelTable
from hipseg.core.volume import apply_affine
from hipseg.io import PredictionFiles, read_labels, read_map, write_image
from hipseg.io.guard import check_output_folder, refuse_name_clashes, refuse_overwriting_inputs

__all__ = [
    "CollisionRegion",
    "ScanReview",
    "format_review",
    "review_files",
    "review_scan",
    "write_review_csv",
]

#: The table ``collisions --out DIR`` writes beside the maps.
REVIEW_CSV = "collisions.csv"


@dataclass(frozen=True)
class CollisionRegion:
    """A connected group of colliding voxels of one class pair."""

    pair: tuple[str, str]
    voxels: int
    center_mm: tuple[float, float, float]
    center_voxel: tuple[int, int, int]


@dataclass(frozen=True)
class ScanReview:
    """|E| of one scan, per pair, and its largest collision regions."""

    case_id: str
    path: Path
    collisions: int
    eps_mm: float
    per_pair: dict[tuple[str, str], int]
    mean_disagreement: float
    regions: tuple[CollisionRegion, ...]


def review_scan(path: Path, labels: LabelTable, *, eps_mm: float | None, top_regions: int = 3,
                collisions_dir: Path | None = None) -> ScanReview:
    """Measure one predicted label map; optionally write its collision map (pair codes) in the
    label map's format.

    ``eps_mm=None``: :func:`~hipseg.collisions.default_eps_mm` of the scan's spacing.
    """
    volume = read_labels(path, labels)
    eps_mm = default_eps_mm(volume.spacing_mm) if eps_mm is None else eps_mm
    codes, pairs = collision_map(volume.data, volume.spacing_mm, eps_mm)
    names = {code: (labels.names[i], labels.names[j]) for code, (i, j) in enumerate(pairs, 1)}
    counts = np.bincount(codes.ravel(), minlength=len(pairs) + 1)
    per_pair = {names[c]: int(counts[c]) for c in range(1, len(counts)) if counts[c]}
    regions = []
    components = cc3d.connected_components(codes, connectivity=26)
    stats = cc3d.statistics(components)
    for component in np.argsort(stats["voxel_counts"][1:])[::-1][:top_regions] + 1:
        bbox = stats["bounding_boxes"][component]
        code = int(codes[bbox][components[bbox] == component][0])
        centroid = stats["centroids"][component]
        regions.append(CollisionRegion(
            pair=names[code], voxels=int(stats["voxel_counts"][component]),
            center_mm=tuple(float(v) for v in apply_affine(volume.affine, centroid)),
            center_voxel=tuple(int(np.rint(v)) for v in centroid),
        ))
    files = PredictionFiles.beside(path)
    mean_disagreement = float("nan")
    if files.uncertainty.exists():
        disagreement = read_map(files.uncertainty, volume).data
        foreground = volume.data > 0
        mean_disagreement = float(disagreement[foreground].mean()) if foreground.any() else 0.0
    if collisions_dir is not None:
        write_image(files.collisions(collisions_dir), codes, volume.affine, dtype=np.uint16)
    return ScanReview(files.case, path, int(counts[1:].sum()), eps_mm, per_pair,
                      mean_disagreement, tuple(regions))


def review_files(paths: list[Path], labels: LabelTable, *, eps_mm: float | None,
                 top_regions: int = 3,
                 collisions_dir: Path | None = None) -> list[ScanReview]:
    """Review label maps (derived files such as ``*_uncertainty`` skipped), worst first:
    by |E|, then by mean view disagreement."""
    maps = [p for p in paths if not PredictionFiles.is_derived(p)]
    if collisions_dir is not None:
        targets = [PredictionFiles.beside(p).collisions(collisions_dir) for p in maps]
        check_output_folder(collisions_dir)
        refuse_overwriting_inputs(paths, [*targets, Path(collisions_dir) / REVIEW_CSV])
        refuse_name_clashes(zip(maps, targets))
    reviews = [review_scan(p, labels, eps_mm=eps_mm, top_regions=top_regions,
                           collisions_dir=collisions_dir) for p in maps]
    return sorted(reviews, key=lambda r: (-r.collisions, -np.nan_to_num(r.mean_disagreement)))


def format_review(reviews: list[ScanReview], threshold: int | None) -> str:
    """Ranked table with the regions to correct first, and the stopping verdict."""
    lines = [f"{'rank':>4} {'case':<24} {'|E|':>8} {'eps mm':>7} {'disagreement':>12}  worst pairs"]
    for rank, review in enumerate(reviews, 1):
        worst = sorted(review.per_pair.items(), key=lambda kv: -kv[1])[:2]
        pairs = ", ".join(f"{a}-{b}: {n}" for (a, b), n in worst) or "-"
        lines.append(f"{rank:>4} {review.case_id:<24} {review.collisions:>8} {review.eps_mm:>7.2f} "
                     f"{review.mean_disagreement:>12.3f}  {pairs}")
    lines.append("\ncorrect first (largest collision regions):")
    for review in reviews:
        for region in review.regions:
            x, y, z = region.center_mm
            lines.append(f"  {review.case_id}: {region.pair[0]}-{region.pair[1]}, {region.voxels} "
                         f"voxels around RAS ({x:.1f}, {y:.1f}, {z:.1f}) mm, voxel "
                         f"{region.center_voxel}")
    if threshold is not None:
        worst = max((r.collisions for r in reviews), default=0)
        verdict = ("every scan is at or below" if worst <= threshold else "some scans are above")
        lines.append(f"\n{verdict} the threshold |E| <= {threshold}"
                     + ("" if worst > threshold else ": the loop can stop"))
    return "\n".join(lines)


def write_review_csv(reviews: list[ScanReview], path: Path) -> None:
    """One row per scan: rank, case, |E|, disagreement, and |E| per pair."""
    pair_names = sorted({pair for r in reviews for pair in r.per_pair})
    columns = ["rank", "case", "collisions", "mean_disagreement", *(f"{a}-{b}" for a, b in pair_names)]
    with atomic_path(Path(path)) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for rank, r in enumerate(reviews, 1):
            writer.writerow([rank, r.case_id, r.collisions, r.mean_disagreement,
                             *(r.per_pair.get(p, 0) for p in pair_names)])
