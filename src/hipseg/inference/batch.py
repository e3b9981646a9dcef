"""Prediction over many scans: deterministic parts for many machines, worker processes on one.

``--num-parts K --part-id I`` (as nnU-Net) lets a scheduler (a SLURM array, a Kubernetes job)
spread a cohort over machines: every machine sorts the same inputs by case id and takes every
K-th, so the parts are disjoint, cover everything, and need no coordination. ``--workers N``
runs N processes on one machine, each with its share of the inputs and of the cores. Each scan
is predicted by exactly the same code with the same model, so the files are the same as those
of a single run.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from hipseg.core.errors import HipsegError
from hipseg.inference.files import PredictionSummary, PredictOptions, plan_outputs, predict_files
from hipseg.io import case_id
from hipseg.runtime.device import set_threads
from hipseg.runtime.model_io import LoadedModel, load_model

__all__ = ["predict_files_in_workers", "select_part"]


def select_part(inputs: list[Path], num_parts: int, part_id: int) -> list[Path]:
    """Part ``part_id`` of ``num_parts``: every ``num_parts``-th input sorted by case id.

    Raises
    ------
    HipsegError
        ``num_parts < 1``, ``part_id`` outside ``[0, num_parts)``, or two inputs with the same
        case id (they would write the same output file).
    """
    if num_parts < 1 or not 0 <= part_id < num_parts:
        raise HipsegError(f"--part-id must be in [0, --num-parts), and --num-parts at least 1; "
                          f"got part {part_id} of {num_parts}")
    ids = [case_id(Path(p)) for p in inputs]
    if len(set(ids)) != len(ids):
        twice = sorted({i for i in ids if ids.count(i) > 1})
        raise HipsegError(f"inputs share case ids {twice[:3]}: their outputs would collide")
    ordered = [path for _, path in sorted(zip(ids, inputs), key=lambda pair: pair[0])]
    return ordered[part_id::num_parts]


def _worker(model_dir: Path, device: str, inputs: list[Path], out_dir: Path,
            options: PredictOptions, threads: int) -> tuple[list[PredictionSummary], str | None]:
    """One worker process: its own model, threads and inputs; errors come back as text."""
    set_threads(threads)
    model = load_model(model_dir, torch.device(device))
    try:
        return predict_files(model, inputs, out_dir, options=options, progress=False), None
    except HipsegError as err:
        return [], str(err)


def predict_files_in_workers(model: LoadedModel, model_dir: Path, inputs: list[Path],
                             out_dir: Path, *, options: PredictOptions | None = None,
                             workers: int = 1, threads: int | None = None,
                             progress: bool = True) -> list[PredictionSummary]:
    """:func:`~hipseg.inference.files.predict_files` with ``workers`` processes.

    Parameters
    ----------
    model : LoadedModel
        Used directly with one worker; with more, each process loads ``model_dir`` onto
        ``model.device`` (spawned, so CUDA works in the workers).
    workers : int
        Processes; each gets every ``workers``-th input.
    threads : int, optional
        Torch threads per worker; default the available cores divided by ``workers`` (at
        least 1), so the workers share the machine instead of oversubscribing it.

    Returns
    -------
    list of PredictionSummary
        In the order of ``inputs`` (skipped inputs have none).

    Raises
    ------
    HipsegError
        After every worker finished, naming the inputs that failed.
    """
    if workers < 1:
        raise HipsegError(f"--workers must be at least 1, got {workers}")
    per_worker = threads or max(1, len(os.sched_getaffinity(0)) // workers)
    if workers == 1 or len(inputs) < 2:
        set_threads(per_worker)
        return predict_files(model, inputs, out_dir, options=options, progress=progress)
    # Checked here for all inputs together: each worker's predict_files sees only its share.
    plan_outputs(inputs, out_dir, options or PredictOptions())
    shares = [inputs[w::workers] for w in range(workers) if inputs[w::workers]]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(len(shares), mp_context=context) as pool:
        futures = [pool.submit(_worker, Path(model_dir), str(model.device), share, Path(out_dir),
                               options or PredictOptions(), per_worker) for share in shares]
        results = [future.result() for future in futures]
    errors = [error for _, error in results if error is not None]
    if errors:
        raise HipsegError("; ".join(errors))
    order = {case_id(Path(p)): i for i, p in enumerate(inputs)}
    summaries = [s for share, _ in results for s in share]
    return sorted(summaries, key=lambda s: order[s.case_id])
