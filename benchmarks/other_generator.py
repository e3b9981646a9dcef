"""How a trained model fares on CT made by another generator than the one it was trained on.

hipseg's models learn from CT that ``hipseg phantom --from-labels`` draws from label maps;
real scans, and the project's independent checks, come from elsewhere. This benchmark makes a
second, deliberately different CT from each test label map, with none of the phantom package's
code: bone as a cortical shell of one density around a cancellous core of another with white
texture, soft tissue of one HU inside a body outline that is the bones grown by a drawn
margin, a subcutaneous fat layer, air outside, no vessels, gas, table or joint-space fluid
(joint spaces are plain soft tissue), a Gaussian blur and uncorrelated noise. Each value is
drawn per scan over the range below.

For every test scan the model predicts both its own generator's CT (``TEST/images``) and the
other generator's, in this process, and both are scored as ``real_anatomy.py`` scores (after
symmetric components, before the gap guarantee). A large drop says the model learned the
generator rather than the anatomy.

Usage: python benchmarks/other_generator.py MODEL TEST [--seed S] [--threads N] [--keep DIR]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import edt
import numpy as np
from mirror_tta import model_and_test, paired_cells, paired_header, paired_means, scored, test_scans
from scipy import ndimage

from hipseg.core.volume import Volume
from hipseg.io import write_image


@dataclass(frozen=True)
class PlainRanges:
    """Uniform ranges of the other generator's values (HU, mm)."""

    cortex_hu: tuple[float, float] = (400.0, 1500.0)
    cortex_mm: tuple[float, float] = (0.8, 3.0)
    cancellous_hu: tuple[float, float] = (60.0, 450.0)
    texture_hu: tuple[float, float] = (0.0, 120.0)
    soft_tissue_hu: tuple[float, float] = (0.0, 80.0)
    body_margin_mm: tuple[float, float] = (35.0, 90.0)
    fat_mm: tuple[float, float] = (0.0, 35.0)
    fat_hu: tuple[float, float] = (-150.0, -50.0)
    blur_mm: tuple[float, float] = (0.3, 1.5)
    noise_hu: tuple[float, float] = (0.0, 70.0)


def plain_ct(labels: np.ndarray, spacing_mm: np.ndarray, rng: np.random.Generator,
             ranges: PlainRanges = PlainRanges()) -> np.ndarray:
    """A CT in HU from a label map, on its grid.

    Parameters
    ----------
    labels : ndarray, shape (X, Y, Z), integer
        0 background, anything else bone.
    spacing_mm : ndarray, shape (3,)
    rng : Generator
        Draws every value of ``ranges``.

    Returns
    -------
    ndarray, shape (X, Y, Z), float32, HU
    """
    def draw(pair: tuple[float, float]) -> float:
        return float(rng.uniform(*pair))

    bone = labels > 0
    spacing = tuple(float(s) for s in spacing_mm)
    depth_mm = edt.edt(bone, anisotropy=spacing, parallel=2)
    out_mm = edt.edt(~bone, anisotropy=spacing, parallel=2)
    margin = draw(ranges.body_margin_mm)
    image = np.full(labels.shape, -1000.0, np.float32)
    image[out_mm <= margin] = draw(ranges.soft_tissue_hu)
    image[(out_mm <= margin) & (out_mm > margin - draw(ranges.fat_mm))] = draw(ranges.fat_hu)
    texture = rng.normal(0.0, draw(ranges.texture_hu), labels.shape).astype(np.float32)
    image[bone] = draw(ranges.cancellous_hu) + texture[bone]
    image[bone & (depth_mm <= draw(ranges.cortex_mm))] = draw(ranges.cortex_hu)
    image = ndimage.gaussian_filter(image, draw(ranges.blur_mm) / np.asarray(spacing))
    image += rng.normal(0.0, draw(ranges.noise_hu), labels.shape).astype(np.float32)
    return image.astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="also write the other generator's CTs here (NIfTI)")
    args, model = model_and_test(parser)
    rng = np.random.default_rng(args.seed)
    print(paired_header("ours", "other"))
    rows = []
    for case_id, image, reference in test_scans(args.test):
        other = Volume(plain_ct(reference, image.spacing_mm, rng), image.affine)
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            write_image(args.keep / f"{case_id}.nii.gz", other.data, other.affine)
        rows.append((scored(model, image, reference)[1], scored(model, other, reference)[1]))
        print(f"| {case_id} | {paired_cells(*rows[-1])} |", flush=True)
    print(f"| mean ± std | {paired_means(rows)} |")


if __name__ == "__main__":
    main()
