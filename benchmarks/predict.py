"""Benchmark `hipseg predict` on the work case, stage by stage, against the baselines a user would use.

The work case: a procedural phantom of the paper's mean size, 415 x 244 x 266 voxels at
0.78 x 0.77 x 0.96 mm (``--size`` scales the field of view), a model of the default
architecture (base width 16, depth 4, 6 views; untrained unless ``--model`` is given: the
timings do not depend on the weights) whose plane size is what training on this scan would
measure (SPEC step 2: 75th percentiles of voxel counts and extents), 2 threads.

Prints one table: stage, hipseg's time, the baseline's time (measured in the same run), the
ratio and the process's peak resident memory during the stage; then the network's achieved
FLOP/s against the machine's matmul FLOP/s measured in the same run; then the end-to-end
`hipseg predict` (a separate process: reading, pre-processing, all views, fusion,
post-processing, writing) with its wall time and peak memory; then predict_volume at 3 sizes.
Baselines that would take minutes run on a subset and are scaled (the table says so).

Usage: python benchmarks/predict.py [--size 1.0] [--scaling 0.5 0.75 1.0] [--threads 2]
       [--workdir DIR] [--model DIR]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self

import nibabel as nib
import numpy as np
import torch
from measure import run_measured
from scipy import ndimage
from scipy.interpolate import RegularGridInterpolator

from hipseg.core.config import HipsegConfig, SamplingConfig
from hipseg.core.labels import DEFAULT_LABELS
from hipseg.core.volume import Volume
from hipseg.fusion import ViewAggregator
from hipseg.inference.volume import DEFAULT_CONTEXT_PX, predict_stack, predict_volume, view_geometry
from hipseg.io import read_image, write_labels
from hipseg.models.unet2d import flops_per_pixel, fused_for_inference
from hipseg.phantom import PhantomSettings, make_procedural_case
from hipseg.postprocess import enforce_min_gap, symmetric_components_with_report
from hipseg.preprocess import model_input
from hipseg.runtime.device import autocast_dtype, set_threads
from hipseg.runtime.model_io import LoadedModel, build_network, load_model, save_model
from hipseg.training.data import coarsen_dim, measure_plane_size
from hipseg.views.directions import view_directions
from hipseg.views.sampling import sample_planes, stack_coordinates
from hipseg.weights import distance_weight_map

WORK_SHAPE = (415, 244, 266)
WORK_SPACING_MM = (0.78, 0.77, 0.96)
CPU = torch.device("cpu")
BACKGROUND_BIAS = 10.0


def unbiased(model: LoadedModel) -> LoadedModel:
    """The model without the background bias of :func:`default_model`: argmax agreement
    measured on an untrained network's raw outputs, the hardest case (many near-ties)."""
    network = copy.deepcopy(model.network)
    with torch.no_grad():
        network.head.bias.zero_()
    return LoadedModel(model.config, network, model.device)


class PeakMemory:
    """Peak resident memory (GiB) of this process while the block runs, sampled every 5 ms."""

    def __enter__(self) -> Self:
        self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._rss())

    @staticmethod
    def _rss() -> float:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * resource.getpagesize() / 2**30


def timed(fn: Callable[[], object]) -> tuple[float, float, object]:
    """``(seconds, peak GiB, result)`` of one call."""
    with PeakMemory() as memory:
        started = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - started
    return seconds, memory.peak, result


def work_case(size: float, workdir: Path) -> Path:
    """The work case scaled by ``size`` as NIfTI (made once per workdir; not timed)."""
    path = workdir / f"work_{size:g}.nii.gz"
    if path.exists():
        return path
    shape = np.round(np.asarray(WORK_SHAPE) * size).astype(int)
    inplane = WORK_SPACING_MM[0]
    settings = PhantomSettings(field_of_view_mm=tuple(shape * inplane * [1, 1, 0]
                                                      + shape * [0, 0, WORK_SPACING_MM[2]]),
                               inplane_spacing_mm=(inplane, inplane),
                               slice_spacing_mm=(WORK_SPACING_MM[2],) * 2,
                               random_axis_flips=False)
    case = make_procedural_case(np.random.default_rng(0), settings)
    # The generator shares one in-plane spacing; the paper's scan has 0.77 mm along y.
    affine = case.image.affine.copy()
    affine[1, 1] = WORK_SPACING_MM[1]
    affine[:3, 3] = -(np.asarray(case.image.shape) - 1) / 2.0 * np.asarray(WORK_SPACING_MM)
    nib.save(nib.Nifti1Image(case.image.data.astype(np.int16), affine), path)
    nib.save(nib.Nifti1Image(case.labels.data, affine), workdir / f"work_{size:g}_labels.nii.gz")
    return path


def default_model(image: Volume, workdir: Path, base_width: int | None = None,
                  min_pixel_spacing_mm: float | None = None) -> Path:
    """An untrained model of the default architecture (or ``base_width``, or pixel-spacing floor)
    whose plane size training would measure on ``image``."""
    defaults = HipsegConfig()
    dim, diameter = measure_plane_size([image.shape], [image.extent_mm],
                                       defaults.sampling.percentile, 16)
    dim = coarsen_dim(dim, diameter, defaults.sampling.min_pixel_spacing_mm
                      if min_pixel_spacing_mm is None else min_pixel_spacing_mm, 16)
    directions = view_directions(defaults.views.n_views, defaults.views.min_angle_deg,
                                 np.random.default_rng(defaults.views.seed))
    config = dataclasses.replace(
        defaults,
        views=dataclasses.replace(defaults.views,
                                  directions=tuple(tuple(map(float, d)) for d in directions)),
        sampling=SamplingConfig(dim=dim, sphere_diameter_mm=diameter),
        model=dataclasses.replace(defaults.model, base_width=base_width
                                  or defaults.model.base_width),
    )
    torch.manual_seed(0)
    network = build_network(config).eval()
    with torch.no_grad():
        # An untrained network labels noise, and post-processing millions of noise components
        # is no realistic cost; favouring background keeps every FLOP and gives clean labels.
        network.head.bias[0] = BACKGROUND_BIAS
    folder = workdir / f"model_w{config.model.base_width}_px{config.sampling.pixel_spacing_mm:.2f}"
    save_model(network, config, folder)
    return folder


def machine_flops(dtype: torch.dtype) -> float:
    """Median FLOP/s of a 2048 x 2048 matmul in ``dtype`` on this machine, now."""
    a = torch.randn(2048, 2048).to(dtype)
    b = torch.randn(2048, 2048).to(dtype)
    a @ b
    times = []
    for _ in range(5):
        started = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - started)
    return 2 * 2048**3 / statistics.median(times)


def rgi_planes(volume: np.ndarray, to_voxel: np.ndarray, planes: np.ndarray,
               rows: int, cols: int, fill: float) -> np.ndarray:
    """Baseline slicing: SciPy's RegularGridInterpolator (what the original MPUNet does)."""
    interpolator = RegularGridInterpolator([np.arange(n) for n in volume.shape], volume,
                                           bounds_error=False, fill_value=fill)
    coords = stack_coordinates(to_voxel, torch.from_numpy(planes), rows, cols).numpy()
    return interpolator(coords.reshape(-1, 3)).reshape(len(planes), rows, cols)


def baseline_weight_map(labels: np.ndarray, w0: float = 20.0, sigma: float = 5.0) -> np.ndarray:
    """Per-class SciPy distance transforms, the two nearest, the formula (no erosion)."""
    distances = np.stack([ndimage.distance_transform_edt(labels != c)
                          for c in DEFAULT_LABELS.foreground_ids])
    distances.sort(axis=0)
    return 1.0 + w0 * np.exp(-(distances[0] + distances[1]) ** 2 / (2 * sigma**2))


def stack_pixels(model: LoadedModel, image: Volume) -> int:
    """Pixels the network sees on ``image``, all views together."""
    return sum(w.n_planes * w.n_rows * w.n_cols for _, w, *_ in view_geometry(model, image))


def stage_table(model_dir: Path, image_path: Path, labels_path: Path,
                untrained: bool) -> list[tuple]:
    """Rows ``(stage, ours s, baseline s or None, peak GiB, note)`` and the FLOP line."""
    rows: list[tuple] = []
    model = load_model(model_dir, CPU)
    config, network = model.config, model.network
    t, mem, image = timed(lambda: read_image(image_path))
    rows.append(("read NIfTI", t, None, mem, ""))
    t, mem, (channels, fills) = timed(lambda: model_input(image.data, image.affine, config))
    rows.append(("pre-process", t, None, mem, ""))
    volume = torch.from_numpy(channels)
    fill = tuple(fills.tolist())
    scaled = channels[0]
    grids, windows, to_voxels, _ = map(list, zip(*view_geometry(model, image)))
    n_pixels = sum(w.n_planes * w.n_rows * w.n_cols for w in windows)
    full_pixels = sum(g.n_planes * g.dim**2 for g in grids)

    def slice_all() -> None:
        for window, to_voxel in zip(windows, to_voxels):
            for start in range(0, window.n_planes, 16):
                planes = torch.arange(start, min(start + 16, window.n_planes))
                sample_planes(volume, to_voxel, planes, (window.n_rows, window.n_cols),
                              fill_value=fill)

    t, mem, _ = timed(slice_all)
    w0, tv0 = windows[3], to_voxels[3]
    subset = np.arange(w0.n_planes // 2, w0.n_planes // 2 + 4, dtype=float)
    t_base, _, _ = timed(lambda: rgi_planes(scaled, tv0, subset, w0.n_rows, w0.n_cols, fill[0]))
    per_pixel = t_base / (len(subset) * w0.n_rows * w0.n_cols)
    rows.append(("slicing, all views", t, per_pixel * n_pixels, mem,
                 f"RegularGridInterpolator on 4 planes, scaled to {n_pixels / 1e6:.0f} M px"))

    fast = fused_for_inference(network).to(memory_format=torch.channels_last)
    dtype = autocast_dtype(CPU, "auto")
    stacks = []

    def network_all() -> None:
        for window, to_voxel in zip(windows, to_voxels):
            stacks.append(predict_stack(fast, volume, to_voxel, window, fill_value=fill,
                                        autocast=dtype))

    t_net, mem, _ = timed(network_all)
    batch = sample_planes(volume, tv0, torch.from_numpy(subset), (w0.n_rows, w0.n_cols),
                          fill_value=fill)
    with torch.no_grad():
        network(batch)
        t_plain, _, _ = timed(lambda: network(batch))
    raw = unbiased(model).network if untrained else network
    with torch.no_grad():
        logits_fp32 = raw(batch)
    with torch.inference_mode(), torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
        raw_fast = fused_for_inference(raw).to(memory_format=torch.channels_last)
        logits_fast = raw_fast(batch.contiguous(memory_format=torch.channels_last)).float()
    agreement = float((logits_fp32.argmax(1) == logits_fast.argmax(1)).float().mean())
    plain_per_pixel = t_plain / (len(subset) * w0.n_rows * w0.n_cols)
    rows.append(("network (+ slicing), all views", t_net, plain_per_pixel * full_pixels, mem,
                 (f"plain fp32 NCHW on whole planes, 4 planes scaled to {full_pixels / 1e6:.0f} M "
                  f"px; argmax agreement {dtype} vs fp32{' (untrained)' if untrained else ''}: "
                  f"{agreement:.4%}")))

    aggregator = ViewAggregator(config.labels.n_classes, image.shape)

    def map_all() -> None:
        for stack, to_voxel in zip(stacks, to_voxels):
            aggregator.add_stack(stack, to_voxel)

    t, mem, _ = timed(map_all)
    one_class = np.random.default_rng(0).random((w0.n_planes, w0.n_rows, w0.n_cols),
                                                dtype=np.float32)
    slab = np.indices((20, *image.shape[1:]), dtype=np.float64).reshape(3, -1)
    coords = (np.linalg.inv(tv0) @ np.vstack([slab, np.ones(slab.shape[1])]))[:3]
    t_base, _, _ = timed(lambda: ndimage.map_coordinates(one_class, coords, order=1))
    n_voxels = int(np.prod(image.shape))
    per_voxel_class = t_base / coords.shape[1]
    rows.append(("mapping back + fusion, all views", t, per_voxel_class * n_voxels
                 * config.labels.n_classes * len(stacks), mem,
                 "map_coordinates (order 1) per class and view, 1 class on 20 slabs, scaled"))
    stacks.clear()
    t, mem, fused = timed(aggregator.finalize)
    rows.append(("fusion: argmax, disagreement", t, None, mem, ""))

    truth = read_image(labels_path).data.astype(np.uint8)
    t, mem, (post, _) = timed(lambda: symmetric_components_with_report(truth, DEFAULT_LABELS))
    t_base, _, _ = timed(lambda: [ndimage.label(truth == c, np.ones((3, 3, 3)))
                                  for c in DEFAULT_LABELS.foreground_ids])
    rows.append(("symmetric connected components", t, t_base, mem,
                 "scipy.ndimage.label per class (labelling only); on the phantom's labels"))
    summed = fused[0]
    summed /= summed.sum(0).clamp(min=1e-12)
    t, mem, _ = timed(lambda: enforce_min_gap(post, image.spacing_mm,
                                              probabilities=summed.numpy()))
    rows.append(("gap guarantee", t, None, mem, ""))
    t, mem, _ = timed(lambda: distance_weight_map(truth, erosion_radius_vox=0.0))
    t_base, _, _ = timed(lambda: baseline_weight_map(truth))
    rows.append(("weight map (training, per scan)", t, t_base, mem,
                 "distance_transform_edt per class (5 classes); no erosion in either"))
    out = Path(tempfile.mkdtemp(prefix="hipseg-bench-out-")) / "labels.nii.gz"
    t, mem, _ = timed(lambda: write_labels(out, post, reference=image_path))
    rows.append(("write label map", t, None, mem, ""))

    per_pixel_flops = flops_per_pixel(fast)
    achieved = per_pixel_flops * n_pixels / t_net
    bound = machine_flops(dtype or torch.float32)
    rows.append(("FLOP", achieved, bound, per_pixel_flops, n_pixels))
    return rows


def end_to_end(model_dir: Path, image_path: Path, threads: int,
               repeats: int) -> tuple[list[float], float]:
    """Wall seconds of each of ``repeats`` runs of ``hipseg predict``, each in a fresh process,
    and the largest peak GiB among exactly those processes."""
    seconds, peaks = [], []
    for _ in range(repeats):
        out = Path(tempfile.mkdtemp(prefix="hipseg-bench-e2e-"))
        command = [sys.executable, "-m", "hipseg", "predict", str(model_dir), str(image_path),
                   "--out", str(out), "--threads", str(threads), "--no-progress"]
        wall, peak = run_measured(command)
        seconds.append(wall)
        peaks.append(peak)
    return seconds, max(peaks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=float, default=1.0, help="scale of the work case")
    parser.add_argument("--scaling", type=float, nargs="*", default=[0.5, 0.75, 1.0],
                        help="sizes for the scaling table (none: skip it)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3,
                        help="end-to-end runs (the median is reported)")
    parser.add_argument("--workdir", type=Path, help="keeps the phantoms between runs")
    parser.add_argument("--model", type=Path, help="a trained model folder (default: untrained)")
    parser.add_argument("--widths", type=int, nargs="*", default=[8, 16, 32],
                        help="base widths for the model-size table (none: skip it)")
    parser.add_argument("--min-pixel-mm", type=float,
                        help="pixel-spacing floor of the untrained model (default: the product's)")
    parser.add_argument("--floors", type=float, nargs="*", default=[0.0, 1.5, 2.0],
                        help="pixel-spacing floors for the pixel-size table (none: skip it)")
    args = parser.parse_args()
    set_threads(args.threads)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="hipseg-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    image_path = work_case(args.size, workdir)
    image = read_image(image_path)
    model_dir = args.model or default_model(image, workdir,
                                            min_pixel_spacing_mm=args.min_pixel_mm)
    config = load_model(model_dir, CPU).config
    spacing = " x ".join(f"{s:.2f}" for s in image.spacing_mm)
    print(f"load average {os.getloadavg()[0]:.1f} at the start (timings assume an idle machine)")
    print(f"work case {image.shape} voxels at {spacing} mm; "
          f"model base width {config.model.base_width}, depth {config.model.depth}, "
          f"{len(config.views.directions)} views, {config.sampling.pixel_spacing_mm:.3f} mm "
          f"pixels; {torch.get_num_threads()} threads")

    e2e_runs, e2e_gib = end_to_end(model_dir, image_path, args.threads, args.repeats)
    rows = stage_table(model_dir, image_path, workdir / f"work_{args.size:g}_labels.nii.gz",
                       args.model is None)
    *stages, (_, achieved, bound, per_pixel_flops, n_pixels) = rows
    print(f"\n{'stage':<34} {'hipseg s':>9} {'baseline s':>11} {'ratio':>7} {'peak GiB':>9}  "
          "baseline")
    for name, ours, baseline, gib, note in stages:
        base = f"{baseline:11.2f}" if baseline is not None else f"{'-':>11}"
        ratio = f"{baseline / ours:6.1f}x" if baseline is not None else f"{'-':>7}"
        print(f"{name:<34} {ours:9.2f} {base} {ratio} {gib:9.2f}  {note}")
    print(f"\nnetwork: {per_pixel_flops / 1e3:.0f} kFLOP per pixel, {n_pixels / 1e6:.0f} M pixels; "
          f"achieved {achieved / 1e9:.0f} GFLOP/s, machine matmul bound {bound / 1e9:.0f} "
          f"GFLOP/s (same dtype, measured now): {achieved / bound:.0%} of the bound")
    runs = ", ".join(f"{t:.1f}" for t in e2e_runs)
    print(f"end to end `hipseg predict` (separate process): median {statistics.median(e2e_runs):.1f} s "
          f"of {len(e2e_runs)} runs ({runs} s), peak {e2e_gib:.2f} GiB (targets: <= 90 s, <= 4 GiB)")

    half = read_image(work_case(0.5, workdir))
    model = load_model(model_dir, CPU)
    model = unbiased(model) if args.model is None else model
    cropped = predict_volume(model, half, progress=False).labels
    whole = predict_volume(model, half, progress=False, context_px=None).labels
    print(f"planes cropped to the scan + {DEFAULT_CONTEXT_PX} px vs whole planes (size 0.5): "
          f"argmax agrees on {np.mean(cropped == whole):.4%} of voxels, "
          f"{np.mean((cropped == whole)[(whole > 0) | (cropped > 0)]):.4%} of foreground voxels")

    if args.scaling:
        print(f"\n{'size':>5} {'shape':>18} {'M voxels':>9} {'predict_volume s':>17} "
              f"{'s per M voxels':>15}")
        for size in args.scaling:
            path = work_case(size, workdir)
            scan = read_image(path)
            model = load_model(model_dir, CPU)
            t, _, _ = timed(lambda m=model, s=scan: predict_volume(m, s, progress=False))
            voxels = np.prod(scan.shape) / 1e6
            print(f"{size:5.2f} {scan.shape!s:>18} {voxels:9.1f} {t:17.1f} {t / voxels:15.2f}")

    if args.widths:
        print(f"\n{'base width':>10} {'parameters':>11} {'kFLOP/pixel':>12} {'predict_volume s':>17}")
        for width in args.widths:
            model = load_model(default_model(image, workdir, width, args.min_pixel_mm), CPU)
            n_params = sum(p.numel() for p in model.network.parameters())
            flops = flops_per_pixel(model.network)
            t, _, _ = timed(lambda m=model: predict_volume(m, image, progress=False))
            print(f"{width:>10} {n_params:>11,} {flops / 1e3:>12.0f} {t:>17.1f}")

    if args.floors:
        print(f"\n{'floor mm':>8} {'pixel mm':>9} {'M pixels':>9} {'predict_volume s':>17}")
        for floor in args.floors:
            model = load_model(default_model(image, workdir, min_pixel_spacing_mm=floor), CPU)
            t, _, _ = timed(lambda m=model: predict_volume(m, image, progress=False))
            print(f"{floor:>8.2f} {model.config.sampling.pixel_spacing_mm:>9.3f} "
                  f"{stack_pixels(model, image) / 1e6:>9.1f} {t:>17.1f}")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
