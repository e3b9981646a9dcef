"""What ``hipseg predict --mirror`` gains and costs: one trained model, its test scans, with and
without the mirrored pass.

For each scan (``TEST/images`` with ``TEST/labels``, e.g. a ``real_anatomy.py`` work folder's
``data/test``) the model predicts twice in this process, plain (the baseline) and with
``mirror=True`` (the scan also seen mirrored across the body's midline, its side ids swapped
back, both fused). Both are scored as ``real_anatomy.py`` scores, after symmetric connected
components and before the gap guarantee: Dice, GapDice, HD95 (mm), |E| (eps 2 mm). Seconds are
``predict_volume`` alone (input channels, network, fusion; reading and scoring not
counted); the ratio is against the plain prediction of the same scan in the same run.

Usage: python benchmarks/mirror_tta.py MODEL TEST [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from ablation import mean_std
from real_anatomy import scan_scores

from hipseg.core.labels import DEFAULT_LABELS
from hipseg.core.volume import Volume
from hipseg.inference.volume import predict_volume
from hipseg.io import find_cases, read_image, read_labels
from hipseg.postprocess import symmetric_components
from hipseg.runtime.device import select_device
from hipseg.runtime.model_io import load_model

COLUMNS = (("Dice", "dice_mean", 4), ("GapDice", "gap_dice_mean", 4), ("HD95 mm", "hd95_mean", 2),
           ("abs(E)", "collisions", 0))


def scored(model, image, reference: np.ndarray, mirror: bool = False) -> tuple[float, dict]:
    """Seconds of one prediction and its scores."""
    started = time.perf_counter()
    raw = predict_volume(model, image, progress=False, mirror=mirror).labels
    seconds = time.perf_counter() - started
    labels = symmetric_components(raw, DEFAULT_LABELS)
    return seconds, scan_scores(labels, reference, image.spacing_mm)


def test_scans(folder: Path) -> Iterator[tuple[str, Volume, np.ndarray]]:
    """``(case id, image, reference label array)`` of each scan of ``folder/images``."""
    for case in find_cases(folder / "images", folder / "labels"):
        image = read_image(case.image)
        yield case.case_id, image, read_labels(case.labels, DEFAULT_LABELS, reference=image).data


def paired_header(left: str, right: str, extra: tuple[str, ...] = ()) -> str:
    """The markdown header of a table with each of ``COLUMNS`` for ``left`` and ``right``."""
    names = [f"{name} {side}" for name, _, _ in COLUMNS for side in (left, right)]
    cells = ["scan", *names, *extra]
    return "| " + " | ".join(cells) + " |\n" + "|---" * len(cells) + "|"


def paired_cells(left: dict, right: dict) -> str:
    return " | ".join(f"{left[key]:.{d}f} | {right[key]:.{d}f}" for _, key, d in COLUMNS)


def paired_means(pairs: list[tuple[dict, dict]]) -> str:
    return " | ".join(f"{mean_std([a[key] for a, _ in pairs], d)} | "
                      f"{mean_std([b[key] for _, b in pairs], d)}" for _, key, d in COLUMNS)


def model_and_test(parser: argparse.ArgumentParser) -> tuple[argparse.Namespace, object]:
    """Parse ``MODEL TEST [--threads N]`` (and ``parser``'s own options); load the model."""
    parser.add_argument("model", type=Path)
    parser.add_argument("test", type=Path, help="folder with images/ and labels/")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    return args, load_model(args.model, select_device("auto"))


def main() -> None:
    args, model = model_and_test(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    print(paired_header("plain", "mirror", ("plain s", "mirror s", "ratio")))
    rows = []
    for case_id, image, reference in test_scans(args.test):
        plain = scored(model, image, reference, mirror=False)
        mirrored = scored(model, image, reference, mirror=True)
        rows.append((plain, mirrored))
        print(f"| {case_id} | {paired_cells(plain[1], mirrored[1])} | {plain[0]:.0f} | "
              f"{mirrored[0]:.0f} | {mirrored[0] / plain[0]:.2f} |", flush=True)
    ratios = [m[0] / p[0] for p, m in rows]
    print(f"| mean ± std | {paired_means([(p[1], m[1]) for p, m in rows])} | "
          f"{statistics.median(p[0] for p, _ in rows):.0f} | "
          f"{statistics.median(m[0] for _, m in rows):.0f} | {statistics.median(ratios):.2f} "
          "(median) |")


if __name__ == "__main__":
    main()
