"""hipseg side by side with nnU-Net v2 on the same real anatomies, in one run (issue 17).

Data and split are ``real_anatomy.py``'s (same ``--seed``, same phantoms made from
``../shared/data/hip-labels``): every tool trains on the same scans and is scored on the same
held-out test scans.

- **hipseg** at its defaults: pre-trained on the coarse labels of the pre-training scans,
  fine-tuned on the 2 accurate scans (``real_anatomy``'s ``full-2``). Two rows from one model:
  the raw fusion (``predict --no-postprocess``) and the product's output (post-processed:
  symmetric components and the gap guarantee). Prediction time is the product's.
- **nnU-Net v2** (``benchmarks/nnunet_setup.sh``: its own venv, the same pinned torch),
  ``2d`` and ``3d_fullres`` with its own planning and preprocessing, fold ``all``, on
  ``accurate`` (the same 2 accurate scans) and ``coarse+accurate`` (the pre-training scans'
  coarse labels and the 2 accurate scans: the closest nnU-Net gets to pre-training). Trained
  with ``nnUNetTrainer_hipsegBudget`` (nnU-Net's trainer stopped at a wall-clock budget: by
  default hipseg's training minutes measured in this run), on the CPU. Predicted without test-
  time mirroring (``--disable_tta``; with it a CPU prediction takes 4x (2d) to 8x (3d) longer).

Per test scan and tool: Dice, GapDice, HD95, ASSD (mm), |E| (eps 2 mm), the voxels where two
bones touch (26-neighbours), the wall seconds and peak memory of the whole prediction command
(start-up, reading, writing), and the training minutes and peak memory. Ratios are printed
against hipseg's post-processed row of the same run.

Usage: .venv/bin/python benchmarks/peers.py --out DIR [--nnunet-venv /tmp/nnunet-venv]
       [--models 2d/accurate 3d_fullres/accurate ...] [--budget-min M] [--quick]
Results go to DIR/peers.json after every model, and the table is printed each time.
``--quick`` checks the wiring (4 mm phantoms, seconds of training: the numbers mean nothing).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import time
from pathlib import Path

import real_anatomy as ra
from ablation import mean_std
from measure import run_measured

from hipseg.datasets.phantom import IMAGES, LABELS, LABELS_COARSE
from hipseg.io import find_cases
from hipseg.weights import contact_voxels

NNUNET_MODELS = ("2d/accurate", "3d_fullres/accurate", "2d/coarse+accurate",
                 "3d_fullres/coarse+accurate")
DATASET_IDS = {"accurate": 501, "coarse+accurate": 502}
TRAINER = "nnUNetTrainer_hipsegBudget"
HIPSEG_RAW, HIPSEG_OUT = "hipseg (raw fusion)", "hipseg (post-processed)"

logger = logging.getLogger("peers")


def scores_of(prediction: Path, case, seconds: float, peak: float) -> dict:
    """Metrics of one predicted label map against the test scan's reference."""
    image, reference, predicted = ra.read_scored(case, prediction)
    row = ra.scan_scores(predicted, reference, image.spacing_mm)
    row["touching"] = float(contact_voxels(predicted, connectivity=26).sum())
    row.update(case=case.case_id, predict_s=seconds, predict_peak_gib=peak)
    return row


def measured_once(root: Path, key: str, done: Path, command, *arguments) -> tuple[float, float]:
    """``command(*arguments)``'s (seconds, peak GiB), run only if ``done`` is missing: an interrupted run
    keeps the models it trained and the times measured for them (``DIR/timings.json``)."""
    path = root / "timings.json"
    timings = json.loads(path.read_text()) if path.is_file() else {}
    if key in timings and done.exists():
        return tuple(timings[key])
    timings[key] = list(command(*arguments))
    path.write_text(json.dumps(timings, indent=1))
    return tuple(timings[key])


def hipseg_rows(root: Path, data: dict[str, Path], schedule: ra.Schedule) -> dict[str, dict]:
    """Train hipseg's ``full-2`` (pre-training, then fine-tuning) and predict every test scan
    twice: the product's output and the raw fusion."""
    seconds, peak = 0.0, 0.0
    steps = ra.models_of_row("full", root, data, schedule)[:2]  # pretrained, full-2
    for name, args in steps:
        s, p = measured_once(root, f"train-{name}", root / "models" / name / "model.pt",
                             ra.run_cli, args, root / "logs" / f"train-{name}.log")
        logger.info("hipseg: trained %s in %.1f min", name, s / 60)
        seconds, peak = seconds + s, max(peak, p)
    model = root / "models" / steps[-1][0]
    rows: dict[str, list] = {HIPSEG_OUT: [], HIPSEG_RAW: []}
    for case in find_cases(data["test"] / IMAGES, data["test"] / LABELS):
        for row, extra in ((HIPSEG_OUT, []), (HIPSEG_RAW, ["--no-postprocess"])):
            out = root / "predictions" / ("hipseg-raw" if extra else "hipseg")
            out.mkdir(parents=True, exist_ok=True)
            s, p = ra.run_cli(["predict", str(model), str(case.image), "--out", str(out),
                               "--overwrite", *extra],
                              root / "logs" / f"predict-{out.name}-{case.case_id}.log")
            rows[row].append(scores_of(out / f"{case.case_id}.nii.gz", case, s, p))
            logger.info("%s %s: Dice %.4f GapDice %.4f touching %d, %.0f s", row,
                        case.case_id, rows[row][-1]["dice_mean"], rows[row][-1]["gap_dice_mean"],
                        rows[row][-1]["touching"], s)
    return {name: {"train_min": seconds / 60, "train_peak_gib": peak, "scans": scans}
            for name, scans in rows.items()}


def merged_dataset(root: Path, data: dict[str, Path]) -> Path:
    """A hipseg-layout folder of links: the pre-training scans with their coarse labels and the
    2 accurate scans with theirs."""
    merged = root / "coarse+accurate"
    for sub in (IMAGES, LABELS):
        (merged / sub).mkdir(parents=True, exist_ok=True)
    sources = [(data["pretrain"], LABELS_COARSE), (data["finetune2"], LABELS)]
    for folder, labels_dir in sources:
        for case in find_cases(folder / IMAGES, folder / labels_dir):
            for link, target in ((merged / IMAGES / case.image.name, case.image),
                                 (merged / LABELS / case.labels.name, case.labels)):
                if not link.exists():
                    link.symlink_to(Path(target).resolve())
    return merged


class NnUNet:
    """nnU-Net v2's command line in its own venv, with its three folders under ``root``."""

    def __init__(self, venv: Path, root: Path):
        self.bin = Path(venv) / "bin"
        if not (self.bin / "nnUNetv2_train").is_file():
            raise SystemExit(f"{venv}: no nnU-Net v2 there; run "
                             f"bash benchmarks/nnunet_setup.sh {venv}")
        self.root = root / "nnunet"
        self.env = dict(os.environ)
        for key, sub in (("nnUNet_raw", "raw"), ("nnUNet_preprocessed", "preprocessed"),
                         ("nnUNet_results", "results")):
            self.env[key] = str(self.root / sub)
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.env.pop("PYTHONPATH", None)  # its venv, not hipseg's code

    def run(self, command: list[str], log: Path, **env: str) -> tuple[float, float]:
        """Run one nnU-Net command measured in its own process (seconds, peak GiB)."""
        try:
            return run_measured([str(self.bin / command[0]), *command[1:]], log,
                                env={**self.env, **env})
        except RuntimeError as err:
            raise SystemExit(f"nnU-Net failed: {err}") from None

    def prepare(self, name: str, data: Path, configurations: list[str], log_dir: Path) -> int:
        """Export ``data`` as ``DatasetNNN_<name>``, then nnU-Net's planning and preprocessing."""
        dataset_id = DATASET_IDS[name]
        raw = self.root / "raw" / f"Dataset{dataset_id}_{name.replace('+', '')}"
        if not (raw / "dataset.json").is_file():
            ra.run_cli(["export-nnunet", str(data), "--out", str(raw)],
                       log_dir / f"export-{dataset_id}.log")
        done = self.root / "preprocessed" / raw.name
        missing = [c for c in configurations
                   if not (done / f"nnUNetPlans_{c}").is_dir()]
        if missing:
            self.run(["nnUNetv2_plan_and_preprocess", "-d", str(dataset_id), "-c", *missing,
                      "-np", "2", "--verify_dataset_integrity"],
                     log_dir / f"plan-{dataset_id}.log")
        return dataset_id

    def train(self, dataset_id: int, configuration: str, budget_s: float, iterations: int,
              log: Path) -> tuple[float, float]:
        return self.run(["nnUNetv2_train", str(dataset_id), configuration, "all", "-tr", TRAINER,
                         "-device", "cpu"], log, HIPSEG_NNUNET_BUDGET_S=f"{budget_s:.0f}",
                        HIPSEG_NNUNET_ITERATIONS=str(iterations))

    def predict(self, dataset_id: int, configuration: str, image: Path, out: Path,
                log: Path) -> tuple[float, float]:
        """Predict one scan (its own input folder, so the time is that scan's)."""
        folder = out.parent / f".input-{out.name}"
        folder.mkdir(parents=True, exist_ok=True)
        link = folder / image.name.replace(".nii.gz", "_0000.nii.gz")
        if not link.exists():
            link.symlink_to(image.resolve())
        return self.run(["nnUNetv2_predict", "-i", str(folder), "-o", str(out.parent),
                         "-d", str(dataset_id), "-c", configuration, "-f", "all", "-tr", TRAINER,
                         "-device", "cpu", "--disable_tta", "-npp", "1", "-nps", "1"], log)


def nnunet_rows(nnunet: NnUNet, root: Path, data: dict[str, Path], models: list[str],
                budget_s: float, iterations: int):
    """Prepare, train and predict each nnU-Net model; yields ``(row name, entry)`` per model."""
    by_dataset: dict[str, list[str]] = {}
    for model in models:
        configuration, dataset = model.split("/")
        by_dataset.setdefault(dataset, []).append(configuration)
    folders = {"accurate": data["finetune2"], "coarse+accurate": merged_dataset(root, data)}
    for dataset, configurations in by_dataset.items():
        dataset_id = nnunet.prepare(dataset, folders[dataset], configurations, root / "logs")
        for configuration in configurations:
            name = f"nnU-Net {configuration} ({dataset})"
            tag = f"nnunet-{configuration}-{dataset_id}"
            final = nnunet.root / "results" / next(
                (nnunet.root / "raw").glob(f"Dataset{dataset_id}_*")).name / \
                f"{TRAINER}__nnUNetPlans__{configuration}" / "fold_all" / "checkpoint_final.pth"
            seconds, peak = measured_once(root, f"train-{tag}", final, nnunet.train, dataset_id,
                                          configuration, budget_s, iterations,
                                          root / "logs" / f"train-{tag}.log")
            logger.info("%s: trained in %.1f min", name, seconds / 60)
            scans = []
            for case in find_cases(data["test"] / IMAGES, data["test"] / LABELS):
                out = root / "predictions" / tag / f"{case.case_id}.nii.gz"
                s, p = nnunet.predict(dataset_id, configuration, case.image, out,
                                      root / "logs" / f"predict-{tag}-{case.case_id}.log")
                scans.append(scores_of(out, case, s, p))
                logger.info("%s %s: Dice %.4f GapDice %.4f touching %d, %.0f s", name,
                            case.case_id, scans[-1]["dice_mean"], scans[-1]["gap_dice_mean"],
                            scans[-1]["touching"], s)
            yield name, {"train_min": seconds / 60, "train_peak_gib": peak, "scans": scans}


def format_table(results: dict[str, dict]) -> str:
    """One row per tool; ratios against hipseg's post-processed row."""
    base = results.get(HIPSEG_OUT)
    head = ("| tool | Dice | GapDice | HD95 (mm) | ASSD (mm) | abs(E) | touching voxels (max) | "
            "train min | train GiB | predict s | predict GiB | GapDice / hipseg's | "
            "predict time / hipseg's |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for name, entry in results.items():
        scans = entry["scans"]
        cells = [mean_std([r[f"{m}_mean"] for r in scans], d)
                 for m, d in zip(ra.METRICS, (4, 4, 2, 2))]
        cells.append(mean_std([r["collisions"] for r in scans], 0))
        cells.append(f"{mean_std([r['touching'] for r in scans], 0)} "
                     f"({max(r['touching'] for r in scans):.0f})")
        cells += [f"{entry['train_min']:.1f}", f"{entry['train_peak_gib']:.2f}"]
        seconds = statistics.median(r["predict_s"] for r in scans)
        cells += [f"{seconds:.0f}", f"{max(r['predict_peak_gib'] for r in scans):.2f}"]
        if base is None:
            cells += ["n/a", "n/a"]
        else:
            gap = statistics.mean(r["gap_dice_mean"] for r in scans)
            base_gap = statistics.mean(r["gap_dice_mean"] for r in base["scans"])
            base_s = statistics.median(r["predict_s"] for r in base["scans"])
            cells += [f"{gap / base_gap:.2f}" if base_gap > 0 else "n/a",
                      f"{seconds / base_s:.1f}x"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="work folder")
    parser.add_argument("--nnunet-venv", type=Path, default=Path("/tmp/nnunet-venv"))
    parser.add_argument("--models", nargs="+", default=list(NNUNET_MODELS), choices=NNUNET_MODELS,
                        help="nnU-Net configuration/training data to run")
    parser.add_argument("--budget-min", type=float,
                        help="nnU-Net's training budget per model (default: hipseg's training "
                             "minutes in this run)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="smoke test of the wiring")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    schedule = ra.quick_schedule() if args.quick else ra.Schedule()
    root = args.out.resolve()
    (root / "logs").mkdir(parents=True, exist_ok=True)
    nnunet = NnUNet(args.nnunet_venv, root)
    started = time.perf_counter()
    data = ra.make_data(root / "data", schedule, args.seed)
    results = hipseg_rows(root, data, schedule)
    print(format_table(results), flush=True)
    budget_s = 60 * (args.budget_min if args.budget_min is not None
                     else results[HIPSEG_OUT]["train_min"])
    if args.quick:
        budget_s = min(budget_s, 60.0)
    iterations = 2 if args.quick else 50
    results_path = root / "peers.json"
    for name, entry in nnunet_rows(nnunet, root, data, args.models, budget_s, iterations):
        results[name] = entry
        results_path.write_text(json.dumps(results, indent=1))
        print(format_table(results), flush=True)
    results_path.write_text(json.dumps(results, indent=1))
    version = subprocess.run([str(nnunet.bin / "python"), "-c",
                              "import importlib.metadata as m; print(m.version('nnunetv2'))"],
                             check=True, capture_output=True, text=True).stdout.strip()
    print(f"\ntest scans: {', '.join(r['case'] for r in results[HIPSEG_OUT]['scans'])}; "
          f"nnU-Net {version}, budget {budget_s / 60:.1f} min per model; total "
          f"{(time.perf_counter() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
