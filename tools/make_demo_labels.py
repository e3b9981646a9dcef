"""Rebuild the real label maps shipped for the demo (src/hipseg/data/demo_labels).

Usage: .venv/bin/python tools/make_demo_labels.py [--labels ../shared/data/hip-labels]

Each listed map of the AuToSeg set (MIT licence, kept beside them) is resampled by nearest
neighbour to 2 mm voxels, the product's pixel floor, and written as uint8 NIfTI.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np

from hipseg.core.labels import DEFAULT_LABELS
from hipseg.core.volume import Volume
from hipseg.io import read_labels, write_labels
from hipseg.phantom.variants import resample_labels

#: Seven of the 23 maps, none of them a test scan of benchmarks/real_anatomy.py at seed 0.
DEMO_MAPS = ("a7w", "s14", "s17", "s20", "s22", "s27", "s29")
SPACING_MM = (2.0, 2.0, 2.0)
TARGET = Path(__file__).resolve().parents[1] / "src" / "hipseg" / "data" / "demo_labels"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared" / "data" / "hip-labels")
    args = parser.parse_args()
    TARGET.mkdir(parents=True, exist_ok=True)
    for name in DEMO_MAPS:
        labels = read_labels(args.labels / f"{name}.nii.gz", DEFAULT_LABELS)
        data, affine = resample_labels(labels.data, labels.affine, SPACING_MM)
        write_labels(TARGET / f"{name}.nii.gz", data.astype(np.uint8), Volume(data, affine))
        print(name, labels.shape, "->", data.shape)
    shutil.copyfile(args.labels / "LICENSE.AuToSeg", TARGET / "LICENSE.AuToSeg")


if __name__ == "__main__":
    main()
