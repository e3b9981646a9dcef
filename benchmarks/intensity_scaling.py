"""What the network's CT input looks like under the paper's per-scan scaling and a fixed one.

SPEC step 1 scales each scan by the median and inter-quartile range (IQR) of its voxels above
0 HU. Those voxels are mostly muscle and other soft tissue, so the IQR measures how much the
soft tissue varies (noise, fat streaks, organs), not the bone the network must find. For every
scan of TEST (``images/`` and ``labels/``, e.g. ``real_anatomy.py``'s ``data/test``) and for
the independent plain generator's CT of the same label map (``other_generator.plain_ct``,
drawn as that benchmark draws it), the table prints the median and IQR (HU) and the mean
network input of the bone voxels under each scaling. Where the robust bone input moves
between the two CTs of one anatomy while the HU barely do, a model trained on one generator
sees the other's bone at another brightness.

Usage: python benchmarks/intensity_scaling.py TEST [--seed S]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from mirror_tta import test_scans
from other_generator import plain_ct

from hipseg.preprocess import preprocess_image, robust_scale


def bone_inputs(image_hu: np.ndarray, bone: np.ndarray) -> tuple[float, float, float, float]:
    """``(median HU, IQR HU, mean robust input of bone, mean fixed input of bone)``; the
    statistics over the voxels above 0 HU, as ``preprocess_image`` takes them."""
    positive = image_hu[image_hu > 0]
    median, iqr = robust_scale(positive)
    robust = float(preprocess_image(image_hu)[bone].mean())
    fixed = float(preprocess_image(image_hu, scaling="fixed")[bone].mean())
    return median, iqr, robust, fixed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("test", type=Path, help="folder with images/ and labels/")
    parser.add_argument("--seed", type=int, default=0,
                        help="the other generator's draws (other_generator.py's default)")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    print("| scan | CT | median HU | IQR HU | bone HU | bone input, robust | bone input, fixed |")
    print("|---|---|---|---|---|---|---|")
    ratios = []
    for case_id, image, reference in test_scans(args.test):
        bone = reference > 0
        rows = {}
        for name, hu in (("ours", image.data),
                         ("other", plain_ct(reference, image.spacing_mm, rng))):
            rows[name] = bone_inputs(hu, bone)
            median, iqr, robust, fixed = rows[name]
            print(f"| {case_id} | {name} | {median:.0f} | {iqr:.0f} | {float(hu[bone].mean()):.0f} "
                  f"| {robust:.2f} | {fixed:.2f} |", flush=True)
        ratios.append((rows["other"][2] / rows["ours"][2], rows["other"][3] / rows["ours"][3]))
    robust_ratio, fixed_ratio = (np.array(column) for column in zip(*ratios))
    print(f"\nbone input, other generator / ours: robust {robust_ratio.min():.2f}-"
          f"{robust_ratio.max():.2f}, fixed {fixed_ratio.min():.2f}-{fixed_ratio.max():.2f}")


if __name__ == "__main__":
    main()
