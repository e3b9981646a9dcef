"""The built-in demo: phantoms of real anatomy -> train on 2 accurate scans and new anatomies
made from them -> predict held-out phantoms -> evaluate. Every file it writes stays under one
folder.

The anatomy comes from seven real hip label maps shipped in ``hipseg/data/demo_labels`` (MIT,
the seed paper's published segmentations, at 2 mm; see the README there): CTs are simulated on
them (:mod:`hipseg.phantom.ct`), so nothing is downloaded.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import torch

from hipseg.core.config import (
    AugmentConfig,
    HipsegConfig,
    SamplingConfig,
    TrainConfig,
    WeightMapConfig,
)
from hipseg.datasets.phantom import IMAGES, LABELS, write_label_cases
from hipseg.evaluation.evaluate import Evaluation, evaluate_folders, format_table, write_csv
from hipseg.inference.files import PredictOptions, predict_files
from hipseg.io import find_cases, find_images
from hipseg.runtime.model_io import load_model
from hipseg.training.train import train

__all__ = ["DemoSettings", "demo_label_maps", "run_demo"]

logger = logging.getLogger(__name__)


def demo_label_maps() -> Path:
    """The folder of real label maps shipped with the package (with their licence)."""
    return Path(str(resources.files("hipseg") / "data" / "demo_labels"))


@dataclass(frozen=True)
class DemoSettings:
    """Which shipped maps play which role, and the schedule.

    The network is trained from scratch, with the weight map, on the accurate labels of
    ``train_maps`` (2 scans, as many as the paper fine-tunes on) and of ``variants`` new
    anatomies made from each (smooth deformation, scaling, mirroring with the side swap). At a
    CPU budget this beats the paper's pre-training on coarse labels followed by fine-tuning on
    real anatomy (docs/accuracy.md, ``no-pretrain-variants``). The test maps are used for
    nothing else.
    """

    train_maps: tuple[str, ...] = ("s20", "s22")
    variants: int = 4
    test_maps: tuple[str, ...] = ("a7w", "s14", "s17", "s27", "s29")
    # Sized for the 15-minute bar on a 2-core CPU (docs/accuracy.md has the measured run). The
    # measured demo kept the validation loss as its monitor; it runs its 60 epochs either way.
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=60, steps_per_epoch=40, learning_rate=2e-3, early_stop_patience=8,
        monitor="loss"))
    # 2.5 mm pixels (128 px planes over the maps' ~330 mm) instead of the product's 2 mm floor
    # (160 px): 1.6x fewer pixels per step keeps the demo within its 15 minutes on 2 CPU cores.
    # The measured demo trained without the appearance augmentation (docs/accuracy.md).
    base_config: HipsegConfig = field(default_factory=lambda: HipsegConfig(
        sampling=SamplingConfig(min_pixel_spacing_mm=2.5),
        weight_map=WeightMapConfig(enabled=True),
        augment=AugmentConfig(appearance_fraction=0.0)))


def run_demo(out_dir: Path, *, seed: int = 0, device: torch.device, progress: bool = True,
             settings: DemoSettings | None = None) -> Evaluation:
    """Run the whole pipeline on phantoms under ``out_dir`` and print where everything went.

    ``out_dir`` is the demo's own: a second run replaces the model and predictions of the
    first.
    """
    settings = DemoSettings() if settings is None else settings
    out_dir = Path(out_dir)
    started = time.perf_counter()
    data = {name: out_dir / "data" / name for name in ("train", "test")}
    maps = demo_label_maps()
    roles = {"train": (settings.train_maps, settings.variants), "test": (settings.test_maps, 0)}
    for name, (names, variants) in roles.items():
        write_label_cases(data[name], [maps / f"{m}.nii.gz" for m in names], seed,
                          variants=variants, progress=progress)

    model = out_dir / "models" / "trained"
    config = dataclasses.replace(settings.base_config, train=settings.train)
    logger.info("training on %d phantoms with accurate labels (%d maps, %d new anatomies each)",
                len(settings.train_maps) * (1 + settings.variants), len(settings.train_maps),
                settings.variants)
    train(find_cases(data["train"] / IMAGES, data["train"] / LABELS), config, model,
          device=device, progress=progress, overwrite=True)

    predictions = out_dir / "predictions"
    predict_files(load_model(model, device), find_images(data["test"] / IMAGES), predictions,
                  options=PredictOptions(overwrite=True), progress=progress)
    evaluation = evaluate_folders(data["test"] / LABELS, predictions, config.labels)
    write_csv(evaluation, out_dir / "evaluation.csv")
    minutes = (time.perf_counter() - started) / 60
    print(format_table(evaluation))
    print(f"\ndemo finished in {minutes:.1f} min; everything is under {out_dir}:")
    print(f"  phantoms        {out_dir / 'data'}/{{train,test}}")
    print(f"  model           {model}")
    print(f"  predictions     {predictions}")
    print(f"  evaluation      {out_dir / 'evaluation.csv'}")
    return evaluation
