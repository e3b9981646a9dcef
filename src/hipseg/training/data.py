"""Training data in memory: pre-processed scans and random planes cut from them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from hipseg.core.config import HipsegConfig
from hipseg.core.errors import InputError, VolumeError
from hipseg.io import Case, read_image, read_labels
from hipseg.io.sides import check_sides
from hipseg.preprocess import model_input
from hipseg.runtime.device import physical_memory_bytes
from hipseg.training.weightmaps import cached_weight_map
from hipseg.views.grid import ViewGrid, view_basis
from hipseg.views.sampling import sample_planes
from hipseg.weights import joint_space_voxels

__all__ = ["PlaneSampler", "TrainingScan", "coarsen_dim", "load_training_scans",
           "measure_plane_size"]

#: Foreground (and joint-space) voxels kept per scan to aim planes at (a random subset is plenty).
MAX_FOREGROUND_POINTS = 20_000
#: Widest joint space that ``sampling.joint_plane_fraction`` aims planes at, mm: the coarse
#: labels' default (docs/phantom.md), wider than any hip joint space (2-5 mm).
JOINT_SPACE_MM = 8.0


@dataclass(frozen=True, eq=False)
class TrainingScan:
    """A pre-processed scan ready for plane sampling.

    ``image`` and ``labels`` are ``(1, X, Y, Z)`` float32 tensors; ``weights`` the loss weight
    map ``(1, X, Y, Z)`` float32, or None when the loss is unweighted; ``foreground_mm`` and
    ``joint_mm`` are ``(N, 3)`` RAS positions of (a subset of) foreground and joint-space
    voxels (``joint_mm`` empty unless ``sampling.joint_plane_fraction`` asks for it).
    """

    case_id: str
    image: torch.Tensor
    labels: torch.Tensor
    affine: np.ndarray
    shape: tuple[int, int, int]
    extent_mm: np.ndarray
    center_mm: np.ndarray
    fill_value: tuple[float, ...]
    foreground_mm: np.ndarray
    weights: torch.Tensor | None = None
    joint_mm: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))


def load_training_scans(cases: list[Case], config: HipsegConfig, device: torch.device,
                        progress: bool = True, *,
                        weight_cache: Path | None = None,
                        strict_sides: bool = False) -> list[TrainingScan]:
    """Read, validate and pre-process each case's image and label map.

    A label map whose side classes lie on the wrong side of the midline is a warning, or an
    error with ``strict_sides`` (:func:`~hipseg.io.sides.check_sides`).

    With ``config.weight_map.needs_weights`` each scan also gets its weight map, from the cache
    (``weight_cache``, default ``DATA/weightmaps``) or computed and cached.
    """
    rng = np.random.default_rng(config.train.seed)
    scans = []
    limit = int(0.8 * physical_memory_bytes())
    held = 0
    for case in tqdm(cases, desc="loading scans", disable=not progress, leave=False):
        image = read_image(case.image)
        # image, its network channels, float labels (and weights), 4 bytes each, stay in memory
        per_voxel = 4 * (2 + config.model.in_channels + config.weight_map.needs_weights)
        held += per_voxel * int(np.prod(image.shape))
        if held > limit:
            raise InputError(case.image, f"the training scans up to this one need about "
                                         f"{held / 2**30:.1f} GiB in memory, more than the limit "
                                         f"of {limit / 2**30:.1f} GiB; use fewer or smaller scans")
        labels = read_labels(case.labels, config.labels, reference=image)
        check_sides(case.labels, labels, config.labels, strict=strict_sides)
        try:
            channels, fill_values = model_input(image.data, image.affine, config)
        except VolumeError as err:
            raise InputError(case.image, str(err)) from None
        foreground_mm = _points_mm(labels.data > 0, image.affine, rng)
        joint_mm = np.zeros((0, 3))
        if config.sampling.joint_plane_fraction > 0 or config.sampling.finest_pixel_spacing_mm:
            joint_mm = _points_mm(joint_space_voxels(labels.data, image.spacing_mm,
                                                     JOINT_SPACE_MM), image.affine, rng)
        weights = None
        if config.weight_map.needs_weights:
            weights = torch.from_numpy(cached_weight_map(case, labels, config.weight_map,
                                                         cache_root=weight_cache))[None].to(device)
        scans.append(TrainingScan(
            case_id=case.case_id,
            image=torch.from_numpy(channels).to(device),
            labels=torch.from_numpy(labels.data.astype(np.float32))[None].to(device),
            affine=image.affine,
            shape=image.shape,
            extent_mm=image.extent_mm,
            center_mm=image.center_mm,
            fill_value=tuple(fill_values.tolist()),
            foreground_mm=foreground_mm,
            weights=weights,
            joint_mm=joint_mm,
        ))
    return scans


def _points_mm(mask: np.ndarray, affine: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """RAS positions (N, 3) of the voxels of ``mask``, at most ``MAX_FOREGROUND_POINTS``."""
    ijk = np.argwhere(mask)
    if len(ijk) > MAX_FOREGROUND_POINTS:
        ijk = ijk[rng.choice(len(ijk), MAX_FOREGROUND_POINTS, replace=False)]
    return ijk @ affine[:3, :3].T + affine[:3, 3]


def measure_plane_size(shapes: list[tuple[int, int, int]], extents_mm: list[np.ndarray],
                       percentile: float, multiple_of: int) -> tuple[int, float]:
    """SPEC step 2: ``dim`` and sphere diameter from the training scans.

    Parameters
    ----------
    shapes : list of (int, int, int)
        Voxel counts of each training scan.
    extents_mm : list of ndarray, shape (3,)
        Physical extent of each training scan along its axes, mm.

    Returns
    -------
    dim : int
        ``percentile`` of the voxel counts over all axes and scans, rounded up to a multiple of
        ``multiple_of``.
    sphere_diameter_mm : float
        ``percentile`` of the physical extents (mm) over all axes and scans.
    """
    counts = np.concatenate([np.asarray(shape, float) for shape in shapes])
    extents = np.concatenate([np.asarray(e, float) for e in extents_mm])
    dim = multiple_of * math.ceil(float(np.percentile(counts, percentile)) / multiple_of)
    return dim, float(np.percentile(extents, percentile))


def coarsen_dim(dim: int, sphere_diameter_mm: float, min_pixel_spacing_mm: float,
                multiple_of: int) -> int:
    """The largest ``dim`` (a multiple of ``multiple_of``, at most ``dim``) whose pixel spacing
    ``sphere_diameter_mm / dim`` is at least ``min_pixel_spacing_mm``; ``dim`` unchanged when
    its spacing is coarse enough already or the floor is 0."""
    if min_pixel_spacing_mm <= 0 or sphere_diameter_mm / dim >= min_pixel_spacing_mm:
        return dim
    steps = math.floor(sphere_diameter_mm / (min_pixel_spacing_mm * multiple_of))
    return multiple_of * max(1, steps)


class PlaneSampler:
    """Cuts random training planes: a random scan, a random view, a random plane.

    A fraction ``joint_plane_fraction`` of the planes passes through a random joint-space
    voxel, ``foreground_plane_fraction`` through a random bone voxel, the rest lie uniformly
    within the sphere.

    With ``finest_pixel_spacing_mm`` in ``(0, pixel_spacing_mm)`` a fraction
    ``fine_plane_fraction`` of the planes has its spacing drawn log-uniformly between the two;
    such a plane keeps ``dim`` pixels and is centred near a joint-space voxel (a bone voxel
    where the scan has none; within a quarter of its side, so the point is not always in the
    middle). The other planes are drawn as without it.
    """

    #: Planes get the elastic augmentation (SPEC step 5).
    elastic = True

    def __init__(self, scans: list[TrainingScan], directions: np.ndarray, dim: int,
                 pixel_spacing_mm: float, foreground_plane_fraction: float,
                 joint_plane_fraction: float = 0.0, *,
                 finest_pixel_spacing_mm: float = 0.0, fine_plane_fraction: float = 0.5) -> None:
        if not scans:
            raise ValueError("no training scans")
        self.scans = scans
        self.directions = np.asarray(directions, float)
        self.dim = dim
        self.pixel_spacing_mm = pixel_spacing_mm
        self.foreground_plane_fraction = foreground_plane_fraction
        self.joint_plane_fraction = joint_plane_fraction
        self.finest_pixel_spacing_mm = finest_pixel_spacing_mm
        self.fine_plane_fraction = fine_plane_fraction

    @property
    def multi_spacing(self) -> bool:
        return 0 < self.finest_pixel_spacing_mm < self.pixel_spacing_mm

    def grid(self, scan: TrainingScan, view: int) -> ViewGrid:
        return ViewGrid(self.directions[view], scan.center_mm, self.pixel_spacing_mm,
                        self.dim, self.dim)

    def _plane(self, scan: TrainingScan, view: int, rng: np.random.Generator
               ) -> tuple[ViewGrid, float]:
        """A plane's grid and its (float) plane index in that grid."""
        if self.multi_spacing and rng.random() < self.fine_plane_fraction:
            return self._fine_plane(scan, view, rng)
        points = self._aim(scan, rng)
        grid = self.grid(scan, view)
        normal = grid.direction / np.linalg.norm(grid.direction)
        if points is not None:
            offset_mm = float(np.dot(points[rng.integers(len(points))] - scan.center_mm, normal))
        else:
            half = self.dim * self.pixel_spacing_mm / 2.0
            offset_mm = float(rng.uniform(-half, half))
        return grid, float(grid.plane_index_of_offset(offset_mm))

    def _fine_plane(self, scan: TrainingScan, view: int, rng: np.random.Generator
                    ) -> tuple[ViewGrid, float]:
        """A plane at a spacing drawn log-uniformly below the model's, near a joint space."""
        spacing = float(np.exp(rng.uniform(np.log(self.finest_pixel_spacing_mm),
                                           np.log(self.pixel_spacing_mm))))
        points = next((p for p in (scan.joint_mm, scan.foreground_mm) if len(p)), None)
        if points is None:
            half = self.dim * self.pixel_spacing_mm / 2.0
            center = scan.center_mm + rng.uniform(-half, half, 3)
        else:
            u, v, _ = view_basis(self.directions[view])
            shift = rng.uniform(-0.25, 0.25, 2) * self.dim * spacing
            center = points[rng.integers(len(points))] + shift[0] * u + shift[1] * v
        return ViewGrid(self.directions[view], center, spacing, self.dim, 1), 0.0

    def _aim(self, scan: TrainingScan, rng: np.random.Generator) -> np.ndarray | None:
        """The points a plane is aimed at (joint space or bone), or None for a uniform one."""
        if not (len(scan.foreground_mm) or len(scan.joint_mm)):
            return None
        draw = rng.random()
        if draw < self.joint_plane_fraction and len(scan.joint_mm):
            return scan.joint_mm
        if (self.joint_plane_fraction <= draw
                < self.joint_plane_fraction + self.foreground_plane_fraction
                and len(scan.foreground_mm)):
            return scan.foreground_mm
        return None

    def sample(self, batch_size: int, rng: np.random.Generator
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A batch of planes.

        Returns
        -------
        images : Tensor, shape (B, C, dim, dim), float32
            ``C``: ``config.model.in_channels`` (scaled CT, lateral coordinate).
        labels : Tensor, shape (B, dim, dim), int64
        weights : Tensor, shape (B, dim, dim), float32
            The weight map's slice (trilinear; 1 outside the scan), or ones without a map.
        """
        images, labels, weights = [], [], []
        for _ in range(batch_size):
            scan = self.scans[rng.integers(len(self.scans))]
            view = int(rng.integers(len(self.directions)))
            grid, index = self._plane(scan, view, rng)
            plane = torch.tensor([index], dtype=torch.float64, device=scan.image.device)
            to_voxel = grid.stack_to_voxel(scan.affine)
            images.append(sample_planes(scan.image, to_voxel, plane, self.dim,
                                        mode="bilinear", fill_value=scan.fill_value))
            labels.append(sample_planes(scan.labels, to_voxel, plane, self.dim, mode="nearest"))
            if scan.weights is None:
                weights.append(torch.ones_like(labels[-1]))
            else:
                weights.append(sample_planes(scan.weights, to_voxel, plane, self.dim,
                                             mode="bilinear", fill_value=1.0))
        return torch.cat(images), torch.cat(labels)[:, 0].round().long(), torch.cat(weights)[:, 0]
