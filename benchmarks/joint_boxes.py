"""How much of a real scan does the joint pass re-predict? The joint boxes of the real label maps.

``hipseg predict --refine-joints`` predicts again, at the model's finest pixel spacing, inside
the boxes :func:`hipseg.crop.joint_boxes` puts around every place where two first-pass bones
come within :data:`hipseg.inference.volume.JOINT_REGION_MM` of each other. Its cost grows with
the boxes' volume, so the boxes of a *perfect* first pass (the real label maps themselves, at
full resolution) are the least the joint pass can cost; a worse first pass only adds contacts.
For each margin the table prints, over the maps: the number of boxes, the boxes' summed volume
(what the joint pass predicts: overlaps count twice) and the voxels covered at least once, as
percentages of the scan.

Usage: .venv/bin/python benchmarks/joint_boxes.py [--label-maps DIR] [--margins 4 10]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from hipseg.core.labels import DEFAULT_LABELS
from hipseg.crop import joint_boxes
from hipseg.inference.volume import JOINT_MARGIN_MM, JOINT_REGION_MM
from hipseg.io import find_images, read_labels

LABEL_MAPS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "hip-labels"


def box_fractions(boxes: list[tuple[np.ndarray, np.ndarray]], shape: tuple[int, int, int]
                  ) -> tuple[float, float]:
    """``(summed, covered)``: the boxes' summed volume and the voxels inside at least one
    box, each as a fraction of the grid's voxels."""
    covered = np.zeros(shape, bool)
    for lo, hi in boxes:
        covered[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = True
    summed = sum(int(np.prod(hi - lo)) for lo, hi in boxes)
    return summed / covered.size, float(covered.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--label-maps", type=Path, default=LABEL_MAPS, metavar="DIR")
    parser.add_argument("--margins", type=float, nargs="+", default=[JOINT_MARGIN_MM, 10.0],
                        metavar="MM", help="box margins to compare (mm)")
    args = parser.parse_args()
    maps = find_images(args.label_maps)
    rows = {margin: [] for margin in args.margins}
    started = time.perf_counter()
    for i, path in enumerate(maps, 1):
        volume = read_labels(path, DEFAULT_LABELS)
        line = [path.name]
        for margin in args.margins:
            boxes = joint_boxes(volume.data, volume.spacing_mm, max_gap_mm=JOINT_REGION_MM,
                                margin_mm=margin)
            summed, covered = box_fractions(boxes, volume.shape)
            rows[margin].append((len(boxes), summed, covered))
            line.append(f"{margin:g} mm: {len(boxes)} boxes, {100 * summed:.1f} % summed, "
                        f"{100 * covered:.1f} % covered")
        print(f"[{i}/{len(maps)}, {time.perf_counter() - started:.0f} s] " + "; ".join(line),
              flush=True)
    print(f"\njoint zone: bones within {JOINT_REGION_MM:g} mm; {len(maps)} real label maps at "
          "full resolution (a perfect first pass)")
    print("| margin | boxes, median (range) | summed % of scan, median (range) "
          "| covered %, median (range) |")
    print("|---|---|---|---|")
    for margin, values in rows.items():
        n, summed, covered = (np.array(column) for column in zip(*values))
        print(f"| {margin:g} mm | {statistics.median(n):g} ({n.min()}-{n.max()}) | "
              f"{100 * statistics.median(summed):.1f} ({100 * summed.min():.1f}-"
              f"{100 * summed.max():.1f}) | {100 * statistics.median(covered):.1f} "
              f"({100 * covered.min():.1f}-{100 * covered.max():.1f}) |")


if __name__ == "__main__":
    main()
