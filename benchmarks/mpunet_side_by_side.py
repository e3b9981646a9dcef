"""Side-by-side wall time of the original MultiPlanar UNet (mpunet 0.2.12) and `hipseg predict`.

Makes one procedural phantom with `hipseg phantom --cases 1` (a small default case, about
2.85 x 2.85 x 3.16 mm voxels), then
- hipseg: an untrained model of the default architecture sized for the phantom
  (``benchmarks/predict.py``'s ``default_model``);
- mpunet: a project made by ``mp init_project`` on the phantom (as train, val and test data),
  set up exactly as ``mp train`` does before fitting (audit of dim / span / classes, 6 random
  views saved to views.npz, default 62 M parameter UNet, biased output layer) and its untrained
  weights saved to model/model_weights.h5; timings do not depend on the weights.
Each tool is then run end to end on the same NIfTI in a fresh process under ``/usr/bin/time -v``
on the same number of threads: ``hipseg predict MODEL IMAGE --out DIR --threads N --no-progress``
and ``mp predict -f IMAGE --sum_fusion --no_eval --num_GPUs 0`` (sum fusion: no fusion model)
with OMP_NUM_THREADS=N, TF_NUM_INTRAOP_THREADS=N, TF_NUM_INTEROP_THREADS=1. Prints the phantom,
one markdown table (median wall seconds, runs, peak resident GiB, ratio to hipseg) and the
exact versions. Timings assume an otherwise idle machine; the load average is printed.

Usage:
    bash benchmarks/mpunet_setup.sh /tmp/mpunet-venv
    .venv/bin/python benchmarks/mpunet_side_by_side.py --mpunet-venv /tmp/mpunet-venv \
        --workdir /tmp/mpunet-sbs [--hipseg-runs 3] [--mpunet-runs 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from predict import default_model

from hipseg.io import read_image

CASE = "case_000.nii.gz"

# `mp train` up to (not including) compile and fit, then its save_final_weights.
BUILD_MPUNET_WEIGHTS = """
import os, sys
import tensorflow as tf
from mpunet.bin import train
from mpunet.hyperparameters import YAMLHParams
project = os.path.abspath(sys.argv[1])
os.chdir(project)
args = train.get_argparser().parse_args(["--no_val", "--num_GPUs", "0"])
logger = train.get_logger(project, overwrite_existing=True)
hparams = YAMLHParams(os.path.join(project, "train_hparams.yaml"), logger=logger)
train.validate_hparams(hparams)
seq, _, hparams = train.get_data_sequences(project, hparams, logger, args)
with tf.distribute.MirroredStrategy().scope():
    model = train.get_model(project, seq, hparams, logger, args)
train.save_final_weights(model, project, logger)
print(f"{model.count_params()} {hparams['build']['dim']} {len(hparams['fit']['views'])}")
"""

MPUNET_VERSIONS = """
import mpunet, numpy, nibabel, tensorflow, tensorflow_addons
print(f"mpunet {mpunet.__version__}, tensorflow {tensorflow.__version__}, "
      f"tensorflow-addons {tensorflow_addons.__version__}, numpy {numpy.__version__}, "
      f"nibabel {nibabel.__version__}")
"""


def make_phantom(workdir: Path, seed: int) -> tuple[Path, Path]:
    """Image and label paths of one procedural phantom (made once per workdir)."""
    folder = workdir / "phantom"
    if not (folder / "images" / CASE).exists():
        subprocess.run([sys.executable, "-m", "hipseg", "phantom", str(folder), "--cases", "1",
                        "--seed", str(seed), "--no-progress"], check=True, capture_output=True)
    return folder / "images" / CASE, folder / "labels" / CASE


def mpunet_project(venv: Path, workdir: Path, image: Path, labels: Path) -> tuple[Path, str]:
    """A fresh mpunet project on the phantom with untrained weights, and a line describing
    its model (parameters, plane size, views)."""
    data = workdir / "mpunet_data"
    for subset in ("train", "val", "test"):
        for kind, path in (("images", image), ("labels", labels)):
            link = data / subset / kind / CASE
            link.parent.mkdir(parents=True, exist_ok=True)
            link.unlink(missing_ok=True)
            link.symlink_to(path.resolve())
    project = workdir / "mpunet_project"
    shutil.rmtree(project, ignore_errors=True)
    subprocess.run([str(venv / "bin" / "mp"), "init_project", "--name", project.name,
                    "--root", str(workdir), "--data_dir", str(data)],
                   check=True, capture_output=True)
    built = subprocess.run([str(venv / "bin" / "python"), "-c", BUILD_MPUNET_WEIGHTS,
                            str(project)], check=True, capture_output=True, text=True)
    n_params, dim, n_views = built.stdout.split()[-3:]
    return project, f"{int(n_params):,} parameters, {dim} x {dim} planes, {n_views} views"


def timed_run(command: list[str], env: dict[str, str], log: Path,
              expect: Path) -> tuple[float, float]:
    """Wall seconds and peak resident GiB of ``command`` in a fresh process, which must write
    ``expect``; its output goes to ``log``."""
    usage = log.with_suffix(".time")
    with log.open("w") as out:
        started = time.perf_counter()
        done = subprocess.run(["/usr/bin/time", "-v", "-o", str(usage), *command],
                              check=False, env=env, stdout=out, stderr=subprocess.STDOUT)
        seconds = time.perf_counter() - started
    if done.returncode or not expect.exists():
        raise RuntimeError(f"{command[0]} failed (exit {done.returncode}); see {log}")
    kbytes = re.search(r"Maximum resident set size \(kbytes\): (\d+)", usage.read_text())
    return seconds, int(kbytes.group(1)) / 2**20


def repeat(runs: int, make: Callable[[Path], tuple[list[str], Path]], env: dict[str, str], log_dir: Path,
           name: str) -> tuple[list[float], float]:
    """Seconds of each of ``runs`` runs of ``make(out_dir) -> (command, expected file)`` and
    the largest peak GiB among them."""
    seconds, peaks = [], []
    for run in range(runs):
        out = Path(tempfile.mkdtemp(prefix=f"{name}-out-", dir=log_dir))
        command, expect = make(out)
        t, gib = timed_run(command, env, log_dir / f"{name}_{run}.log", expect)
        seconds.append(t)
        peaks.append(gib)
    return seconds, max(peaks)


def table(results: dict[str, tuple[list[float], float]]) -> str:
    """The markdown table of ``tool -> (seconds of each run, peak GiB)``; ratios are to the
    first tool's median."""
    base = statistics.median(next(iter(results.values()))[0])
    lines = ["| tool | median s | runs | peak GiB | ratio vs hipseg |",
             "| --- | ---: | --- | ---: | ---: |"]
    for tool, (seconds, gib) in results.items():
        median = statistics.median(seconds)
        runs = f"{len(seconds)} ({', '.join(f'{s:.1f}' for s in seconds)})"
        lines.append(f"| {tool} | {median:.1f} | {runs} | {gib:.2f} | {median / base:.1f}x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mpunet-venv", type=Path, default=Path("/tmp/mpunet-venv"),
                        help="made by benchmarks/mpunet_setup.sh")
    parser.add_argument("--workdir", type=Path, required=True,
                        help="phantom, models, outputs and logs (outside the repository)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--hipseg-runs", type=int, default=3)
    parser.add_argument("--mpunet-runs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="phantom seed")
    args = parser.parse_args()
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    threads = str(args.threads)

    image_path, labels_path = make_phantom(workdir, args.seed)
    image = read_image(image_path)
    hipseg_model = default_model(image, workdir)
    project, mpunet_model = mpunet_project(args.mpunet_venv, workdir, image_path, labels_path)
    spacing = " x ".join(f"{s:.2f}" for s in image.spacing_mm)
    print(f"phantom {image_path}: {' x '.join(map(str, image.shape))} voxels at {spacing} mm")
    print(f"hipseg model: default architecture (untrained), {hipseg_model}")
    print(f"mpunet model: default MultiPlanar UNet (untrained), {mpunet_model}")
    print(f"{args.threads} threads; load average {os.getloadavg()[0]:.1f} at the start")

    env = dict(os.environ, OMP_NUM_THREADS=threads, TF_NUM_INTRAOP_THREADS=threads,
               TF_NUM_INTEROP_THREADS="1")
    results = {
        "hipseg predict": repeat(args.hipseg_runs, lambda out: (
            [sys.executable, "-m", "hipseg", "predict", str(hipseg_model), str(image_path),
             "--out", str(out), "--threads", threads, "--no-progress"], out / CASE),
            env, workdir, "hipseg"),
        "mpunet mp predict --sum_fusion": repeat(args.mpunet_runs, lambda out: (
            [str(args.mpunet_venv / "bin" / "mp"), "predict", "--project_dir", str(project),
             "-f", str(image_path), "--out_dir", str(out), "--sum_fusion", "--no_eval",
             "--num_GPUs", "0", "--overwrite"],
            out / "nii_files" / CASE.replace(".nii", "_PRED.nii")),
            env, workdir, "mpunet"),
    }
    print(f"load average {os.getloadavg()[0]:.1f} at the end\n")
    print(table(results))
    mpunet_versions = subprocess.run([str(args.mpunet_venv / "bin" / "python"), "-c",
                                      MPUNET_VERSIONS], check=True, capture_output=True,
                                     text=True).stdout.strip()
    print(f"\nhipseg {importlib.metadata.version('hipseg')}, torch {torch.__version__}; "
          f"{mpunet_versions}; Python {platform.python_version()}, {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
