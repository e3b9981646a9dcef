"""Model size against accuracy: the demo's pipeline once per base width of the 2D UNet.

For each ``--widths`` value the built-in demo (``hipseg.demo``: phantoms of the shipped real
label maps, training on 2 accurate maps and new anatomies made from them, prediction of the
held-out phantoms, evaluation) runs with that base width and nothing else changed, in its own
folder.
Prints one table: parameters, kFLOP per pixel, wall-clock minutes of the whole run, mean
Dice, GapDice and HD95 over the held-out phantoms (mean ± std over the cases), so the choice of
the default width can be read off next to its prediction time (``benchmarks/predict.py
--widths``, docs/performance.md).

Usage: .venv/bin/python benchmarks/model_size.py --out DIR [--widths 8 16 32] [--threads 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from pathlib import Path

import numpy as np
import torch

from hipseg.demo import DemoSettings, run_demo
from hipseg.evaluation.evaluate import Evaluation
from hipseg.models.unet2d import flops_per_pixel
from hipseg.runtime.device import set_threads
from hipseg.runtime.model_io import build_network


def _mean_std(evaluation: Evaluation, column: str, digits: int) -> str:
    values = np.array([row[column] for row in evaluation.rows], float)
    finite = values[np.isfinite(values)]
    missing = "" if len(finite) == len(values) else f" ({len(values) - len(finite)} inf)"
    if not len(finite):
        return f"n/a{missing}"
    return f"{finite.mean():.{digits}f} ± {finite.std():.{digits}f}{missing}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="one demo folder per width here")
    parser.add_argument("--widths", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    set_threads(args.threads)
    lines = ["| base width | parameters | kFLOP / pixel | run min | Dice | GapDice | HD95 (mm) |",
             "|---|---|---|---|---|---|---|"]
    for width in args.widths:
        base = DemoSettings().base_config  # the demo's pixel floor and weight map, other width
        config = dataclasses.replace(base, model=dataclasses.replace(base.model, base_width=width))
        started = time.perf_counter()
        evaluation = run_demo(args.out / f"width_{width}", device=torch.device("cpu"),
                              progress=False, settings=DemoSettings(base_config=config))
        minutes = (time.perf_counter() - started) / 60
        n_params = sum(p.numel() for p in build_network(config).parameters())
        lines.append(f"| {width} | {n_params:,} | {flops_per_pixel(build_network(config).eval()) / 1e3:.0f} | "
                     f"{minutes:.1f} | {_mean_std(evaluation, 'dice_mean', 3)} | "
                     f"{_mean_std(evaluation, 'gap_dice_mean', 3)} | "
                     f"{_mean_std(evaluation, 'hd95_mean', 1)} |")
        print("\n".join(lines), flush=True)
    print(f"\n{len(evaluation.rows)} held-out phantoms per width; demo settings as `make demo`")


if __name__ == "__main__":
    main()
