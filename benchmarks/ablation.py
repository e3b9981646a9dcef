"""The paper's ablation (Table 1) on phantoms: which design choice earns its place?

Variants, each fine-tuned with 2 and with 4 accurate scans and scored on held-out phantoms:

- ``full``: 2D multi-planar UNet pre-trained on coarse labels (gaps filled), then fine-tuned
  on accurate labels with the distance weight map and elastic augmentation (the method);
- ``no-pretrain``: the same network trained from scratch on the accurate scans only, with the
  weight map, for about as many steps as pre-training and fine-tuning together;
- ``no-weightmap``: pre-trained as ``full``, fine-tuned with plain cross-entropy;
- ``unet3d``: a 3D UNet on patches, pre-trained and fine-tuned as ``full`` (weight map too).

Data (all from ``hipseg.phantom``): coarse-label pre-training scans, accurate fine-tuning scans
(the first 2 of them for the "2" rows), one accurate validation scan for early stopping, and
held-out test scans; each set mixes procedural phantoms and phantoms built from the real bone
meshes in ``../shared/data/hip-meshes`` (``hipseg phantom --from-meshes``), skipped with a
note when that folder is absent.

Scores per test scan (mean +- std over the test scans): mean foreground Dice, GapDice (Dice in
G = {d1 + d2 < 10 voxels} of the reference), Hausdorff distance and HD95 (mm, mean over the
classes), and |E| (bone voxels within eps of another bone; eps = max(2 mm, largest voxel
spacing), as ``hipseg predict``) of the prediction after symmetric connected components, before
the product's gap guarantee (which would make |E| zero by construction).

Usage: .venv/bin/python benchmarks/ablation.py --out DIR [--quick] [--torch-threads N]
       [--keep MODEL ...]
``--quick`` is a smoke test of the wiring (minutes, meaningless numbers).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from hipseg.collisions import count_collisions, default_eps_mm
from hipseg.core.config import HipsegConfig, ModelConfig, TrainConfig, ViewConfig, WeightMapConfig
from hipseg.core.labels import DEFAULT_LABELS
from hipseg.datasets.phantom import (
    IMAGES,
    LABELS,
    LABELS_COARSE,
    write_mesh_dataset,
    write_procedural_dataset,
)
from hipseg.evaluation.evaluate import evaluate_case
from hipseg.inference.volume import predict_volume
from hipseg.io import Case, find_cases, read_image, read_labels
from hipseg.postprocess import symmetric_components
from hipseg.runtime.model_io import load_model
from hipseg.training.train import train

MESHES = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "hip-meshes"
VARIANTS = ("full", "no-pretrain", "no-weightmap", "unet3d")
METRICS = ("dice_mean", "gap_dice_mean", "hd_mean", "hd95_mean", "collisions")

logger = logging.getLogger("ablation")


@dataclass(frozen=True)
class Sizes:
    """How many phantoms of each kind (procedural, mesh-based) and how long to train."""

    pretrain: tuple[int, int] = (8, 2)
    finetune: tuple[int, int] = (3, 1)
    validation: tuple[int, int] = (1, 0)
    test: tuple[int, int] = (2, 1)
    # The demo's schedule (which reaches Dice > 0.9 on these phantoms), batch 10 as the paper.
    pretrain_train: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=14, steps_per_epoch=40, batch_size=10, learning_rate=2e-3, early_stop_patience=8))
    finetune_train: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=6, steps_per_epoch=40, batch_size=10, learning_rate=3e-4, early_stop_patience=5))
    # From scratch: as many steps as pre-training and fine-tuning together.
    scratch_train: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=20, steps_per_epoch=40, batch_size=10, learning_rate=2e-3, early_stop_patience=8))
    # The 3D UNet gets about the 2D network's wall-clock time for pre-training (a 3D step of
    # 2 patches costs ~2x a 2D step of 10 planes here), the 2D fine-tuning schedule otherwise.
    unet3d_pretrain: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=8, steps_per_epoch=40, batch_size=2, learning_rate=2e-3, early_stop_patience=8))
    unet3d_finetune: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=6, steps_per_epoch=30, batch_size=2, learning_rate=3e-4, early_stop_patience=5))
    # The product's default 2D network (base width 16, depth 4).
    model_2d: ModelConfig = field(default_factory=ModelConfig)
    model_3d: ModelConfig = field(default_factory=lambda: ModelConfig(
        base_width=8, depth=3, architecture="unet3d", patch_vox=48))
    n_views: int = 6


def quick_sizes() -> Sizes:
    """A smoke test of the wiring: tiny everything."""
    tiny = TrainConfig(epochs=1, steps_per_epoch=2, batch_size=2, val_planes=4)
    return Sizes(pretrain=(2, 1), finetune=(3, 1), validation=(1, 0), test=(1, 1),
                 pretrain_train=tiny, finetune_train=tiny, scratch_train=tiny,
                 unet3d_pretrain=tiny, unet3d_finetune=tiny,
                 model_2d=ModelConfig(base_width=4, depth=2),
                 model_3d=ModelConfig(base_width=2, depth=1, architecture="unet3d", patch_vox=16),
                 n_views=3)


def make_data(root: Path, sizes: Sizes, seed: int) -> dict[str, list[Case]]:
    """Phantom datasets under ``root``: pretrain (coarse labels), finetune, validation, test."""
    cases: dict[str, list[Case]] = {}
    first = 0
    for name in ("pretrain", "finetune", "validation", "test"):
        procedural, from_meshes = getattr(sizes, name)
        folder = root / name
        if procedural:
            write_procedural_dataset(folder, procedural, seed, first_index=first, progress=False)
            first += procedural
        if from_meshes and MESHES.is_dir():
            write_mesh_dataset(folder / "meshes", MESHES, from_meshes, seed + first,
                               spacing_mm=(3.0, 3.0, 3.0), mirror=True, progress=False)
            first += from_meshes
        labels = LABELS_COARSE if name == "pretrain" else LABELS
        cases[name] = find_cases(folder / IMAGES, folder / labels) if procedural else []
        if from_meshes and MESHES.is_dir():
            mesh_cases = find_cases(folder / "meshes" / IMAGES, folder / "meshes" / labels)
            cases[name] += [dataclasses.replace(c, case_id=f"mesh_{c.case_id}") for c in mesh_cases]
    if not MESHES.is_dir():
        logger.warning("%s not found: procedural phantoms only", MESHES)
    return cases


def _config(model: ModelConfig, train_config: TrainConfig, weight_map: bool,
            n_views: int) -> HipsegConfig:
    return dataclasses.replace(HipsegConfig(), model=model, views=ViewConfig(n_views=n_views),
                               train=train_config, weight_map=WeightMapConfig(enabled=weight_map))


def train_variants(root: Path, cases: dict[str, list[Case]], sizes: Sizes,
                   device: torch.device, keep: frozenset[str] = frozenset()
                   ) -> dict[tuple[str, int], Path]:
    """Every model of the table; returns ``{(variant, n_scans): model folder}``.

    ``keep``: names of models (``pretrained-3d``, ``unet3d-2``, ...) already trained in
    ``root/models`` by an earlier run with the same sizes, used as they are.
    """
    models = {}
    val = cases["validation"]
    timings = {}

    def fit(name: str, train_cases: list[Case], config: HipsegConfig, init: Path | None) -> Path:
        started = time.perf_counter()
        out = root / "models" / name
        if name in keep:
            if not (out / "model.pt").is_file():
                raise SystemExit(f"--keep {name}: no trained model in {out}")
            logger.info("kept %s from an earlier run", name)
            return out
        # The benchmark owns --out: a model not kept is trained again over the old one.
        train(train_cases, config, out, device=device, init_model=init, val_cases=val,
              progress=False, overwrite=True)
        timings[name] = time.perf_counter() - started
        logger.info("trained %s in %.1f min", name, timings[name] / 60)
        return out

    pre2d = fit("pretrained-2d", cases["pretrain"],
                _config(sizes.model_2d, sizes.pretrain_train, False, sizes.n_views), None)
    pre3d = fit("pretrained-3d", cases["pretrain"],
                _config(sizes.model_3d, sizes.unet3d_pretrain, False, sizes.n_views), None)
    for n in (2, 4):
        scans = cases["finetune"][:n]
        models["full", n] = fit(f"full-{n}", scans, _config(
            sizes.model_2d, sizes.finetune_train, True, sizes.n_views), pre2d)
        models["no-weightmap", n] = fit(f"no-weightmap-{n}", scans, _config(
            sizes.model_2d, sizes.finetune_train, False, sizes.n_views), pre2d)
        models["no-pretrain", n] = fit(f"no-pretrain-{n}", scans, _config(
            sizes.model_2d, sizes.scratch_train, True, sizes.n_views), None)
        models["unet3d", n] = fit(f"unet3d-{n}", scans, _config(
            sizes.model_3d, sizes.unet3d_finetune, True, sizes.n_views), pre3d)
    (root / "timings.json").write_text(json.dumps(timings, indent=1))
    return models


def score(model_dir: Path, test_cases: list[Case], device: torch.device) -> list[dict[str, float]]:
    """Metrics of each test scan: predicted, symmetric components, scored against its labels."""
    model = load_model(model_dir, device)
    rows = []
    for case in test_cases:
        image = read_image(case.image)
        reference = read_labels(case.labels, DEFAULT_LABELS, reference=image)
        labels = symmetric_components(predict_volume(model, image, progress=False).labels,
                                      DEFAULT_LABELS)
        row = evaluate_case(labels, reference.data, image.spacing_mm, DEFAULT_LABELS)
        row["collisions"], _ = count_collisions(labels, image.spacing_mm,
                                                default_eps_mm(image.spacing_mm))
        rows.append({key: row[key] for key in METRICS})
    return rows


def mean_std(values: list[float], digits: int) -> str:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return "n/a"
    std = statistics.stdev(finite) if len(finite) > 1 else 0.0
    missing = "" if len(finite) == len(values) else f" ({len(values) - len(finite)} inf)"
    return f"{statistics.fmean(finite):.{digits}f} ± {std:.{digits}f}{missing}"


def format_table(results: dict[tuple[str, int], list[dict]], reference_collisions: list[int]) -> str:
    """One markdown table: a row per (variant, n), mean ± std over the test scans."""
    lines = ["| variant | scans | Dice | GapDice | HD (mm) | HD95 (mm) | abs(E) |",
             "|---|---|---|---|---|---|---|"]
    for n in (2, 4):
        for variant in VARIANTS:
            rows = results[variant, n]
            cells = [mean_std([r[m] for r in rows], d)
                     for m, d in zip(METRICS, (4, 4, 1, 1, 0))]
            lines.append(f"| {variant} | {n} | " + " | ".join(cells) + " |")
    lines.append(f"| reference labels | - | 1 | 1 | 0 | 0 | "
                 f"{mean_std([float(c) for c in reference_collisions], 0)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="work folder (data, models)")
    parser.add_argument("--quick", action="store_true", help="smoke test: tiny sizes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--torch-threads", type=int, default=2)
    parser.add_argument("--keep", nargs="*", default=[], metavar="MODEL",
                        help="models of an earlier run in --out to reuse as they are (e.g. "
                             "pretrained-3d unet3d-2 unet3d-4 when only the 2D settings changed)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    torch.set_num_threads(args.torch_threads)
    device = torch.device("cpu")
    sizes = quick_sizes() if args.quick else Sizes()
    started = time.perf_counter()
    cases = make_data(args.out / "data", sizes, args.seed)
    logger.info("data: %s", {k: len(v) for k, v in cases.items()})
    models = train_variants(args.out, cases, sizes, device, frozenset(args.keep))
    results = {key: score(path, cases["test"], device) for key, path in models.items()}
    reference = []
    for case in cases["test"]:
        labels = read_labels(case.labels, DEFAULT_LABELS)
        reference.append(count_collisions(labels.data, labels.spacing_mm,
                                          default_eps_mm(labels.spacing_mm))[0])
    (args.out / "results.json").write_text(json.dumps(
        {f"{variant}-{n}": rows for (variant, n), rows in results.items()}, indent=1))
    print(format_table(results, reference))
    print(f"\n{len(cases['test'])} test scans ({', '.join(c.case_id for c in cases['test'])}); "
          f"total {(time.perf_counter() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
