"""The built-in demo: phantoms -> pre-train on coarse labels -> fine-tune on accurate ones
-> predict held-out phantoms -> evaluate. Every file it writes stays under one folder."""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from hipseg.core.config import HipsegConfig, TrainConfig
from hipseg.io import find_cases, find_images
from hipseg.workflows.evaluate import Evaluation, evaluate_folders, format_table, write_csv
from hipseg.workflows.model_io import load_model
from hipseg.workflows.phantom import IMAGES, LABELS, LABELS_COARSE, write_procedural_dataset
from hipseg.workflows.predict import predict_files
from hipseg.workflows.train import train

__all__ = ["DemoSettings", "run_demo"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoSettings:
    """Sizes of the demo's stages; the defaults finish in minutes on a 2-core CPU."""

    pretrain_cases: int = 6
    finetune_cases: int = 3
    test_cases: int = 3
    # Sized for the 15-minute bar on a 2-core CPU where one step of 10 planes takes ~0.6 s:
    # 24 + 8 epochs reached Dice 0.993 in 19 min, 10 + 6 only 0.87 in 10 min.
    pretrain: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=14, steps_per_epoch=40, learning_rate=2e-3, early_stop_patience=8))
    finetune: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=6, steps_per_epoch=40, learning_rate=3e-4, early_stop_patience=5, val_fraction=0.34))
    base_config: HipsegConfig = field(default_factory=HipsegConfig)


def run_demo(out_dir: Path, *, seed: int = 0, device: torch.device, progress: bool = True,
             settings: DemoSettings | None = None) -> Evaluation:
    """Run the whole pipeline on phantoms under ``out_dir`` and print where everything went."""
    settings = DemoSettings() if settings is None else settings
    out_dir = Path(out_dir)
    started = time.perf_counter()
    data = {name: out_dir / "data" / name for name in ("pretrain", "finetune", "test")}
    counts = {"pretrain": settings.pretrain_cases, "finetune": settings.finetune_cases,
              "test": settings.test_cases}
    first = 0
    for name, count in counts.items():
        write_procedural_dataset(data[name], count, seed, first_index=first, progress=progress)
        first += count

    pretrained = out_dir / "models" / "pretrained"
    config = dataclasses.replace(settings.base_config, train=settings.pretrain)
    logger.info("pre-training on %d phantoms with coarse labels", settings.pretrain_cases)
    train(find_cases(data["pretrain"] / IMAGES, data["pretrain"] / LABELS_COARSE), config,
          pretrained, device=device, progress=progress)

    finetuned = out_dir / "models" / "finetuned"
    config = dataclasses.replace(settings.base_config, train=settings.finetune)
    logger.info("fine-tuning on %d phantoms with accurate labels", settings.finetune_cases)
    train(find_cases(data["finetune"] / IMAGES, data["finetune"] / LABELS), config, finetuned,
          device=device, init_model=pretrained, progress=progress)

    predictions = out_dir / "predictions"
    predict_files(load_model(finetuned, device), find_images(data["test"] / IMAGES), predictions,
                  progress=progress)
    evaluation = evaluate_folders(data["test"] / LABELS, predictions, config.labels)
    write_csv(evaluation, out_dir / "evaluation.csv")
    minutes = (time.perf_counter() - started) / 60
    print(format_table(evaluation))
    print(f"\ndemo finished in {minutes:.1f} min; everything is under {out_dir}:")
    print(f"  phantoms        {out_dir / 'data'}/{{pretrain,finetune,test}}")
    print(f"  models          {pretrained}  (coarse labels), {finetuned}  (fine-tuned)")
    print(f"  predictions     {predictions}")
    print(f"  evaluation      {out_dir / 'evaluation.csv'}")
    return evaluation
