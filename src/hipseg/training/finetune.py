"""Transfer learning (SPEC step 6): fine-tune every layer of a model on a few accurate scans.

``finetune`` starts from all of a model's weights, output layer included (same classes), and
trains all layers with the weight-map loss; ``continue_training`` is the interactive round: the
scans the model was fine-tuned on plus newly corrected ones, starting from that model.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from hipseg.core.config import HipsegConfig
from hipseg.core.errors import InputError
from hipseg.io import Case
from hipseg.runtime.model_io import ModelFolder
from hipseg.training.checkpoint import read_case_list
from hipseg.training.distributed import DistributedRun
from hipseg.training.train import TrainResult, train

__all__ = ["finetune", "merge_cases"]

logger = logging.getLogger(__name__)


def merge_cases(previous: list[Case], new: list[Case]) -> list[Case]:
    """``previous`` and ``new`` by case id, a new scan replacing an old one of the same id.

    Raises
    ------
    InputError
        A previous scan's image or label file no longer exists.
    """
    merged = {case.case_id: case for case in previous}
    for case in previous:
        for path in (case.image, case.labels):
            if not Path(path).exists():
                raise InputError(path, f"scan {case.case_id!r} of the previous fine-tuning "
                                       "is gone; give it again in DATA")
    merged.update({case.case_id: case for case in new})
    return [merged[key] for key in sorted(merged)]


def finetune(model_dir: Path, cases: list[Case], config: HipsegConfig, out_dir: Path, *,
             device: torch.device, continue_training: bool = False, resume: bool = False,
             weight_cache: Path | None = None, progress: bool = True,
             run: DistributedRun | None = None, precision: str = "auto",
             overwrite: bool = False, resume_epochs: int | None = None,
             strict_sides: bool = False) -> TrainResult:
    """Fine-tune ``model_dir`` on ``cases`` and write a new model folder ``out_dir``.

    Parameters
    ----------
    config : HipsegConfig
        Its label table must equal the model's; its ``train``, ``weight_map`` and ``augment``
        settings are used (labels, views, plane size, pre-processing and architecture are the
        model's).
    continue_training : bool
        Also train on the scans ``model_dir`` was trained on (its ``training_cases.csv``);
        a new scan with the id of an old one replaces it (a corrected label map).
    resume : bool
        Continue an interrupted fine-tuning in ``out_dir`` (give the same arguments).
    run, precision, overwrite, resume_epochs, strict_sides
        As :func:`hipseg.training.train.train`.

    Raises
    ------
    InputError
        Label tables differ, ``out_dir`` is ``model_dir``, or earlier scans are missing.
    """
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    if out_dir.resolve() == model_dir.resolve():
        raise InputError(out_dir, "the fine-tuned model must go to a new folder, not MODEL itself")
    if continue_training:
        previous = read_case_list(ModelFolder(model_dir).cases)
        merged = merge_cases(previous, cases)
        logger.info("continuing from %s: %d earlier scans, %d given now, %d in all", model_dir,
                    len(previous), len(cases), len(merged))
        cases = merged
    return train(cases, config, out_dir, device=device, init_model=model_dir, resume=resume,
                 weight_cache=weight_cache, progress=progress, run=run, precision=precision,
                 overwrite=overwrite, resume_epochs=resume_epochs, strict_sides=strict_sides)
