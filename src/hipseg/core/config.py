"""Typed, frozen configuration: one dataclass per concern, saved as YAML next to the model.

Loading is strict: an unknown key, a value of the wrong type or out of its sane range is a
:class:`ConfigError` that names the key, so a typo in a hand-edited (or tampered) ``config.yaml``
never passes silently, nor fails later as a traceback or as an error blamed on a scan. The file
itself is capped in size and may not use YAML anchors or aliases (a few KB of nested aliases
expand to gigabytes: the "billion laughs").
"""

from __future__ import annotations

import dataclasses
import math
import reprlib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from hipseg.core.atomic import atomic_write_text
from hipseg.core.errors import ConfigError, InputError
from hipseg.core.labels import DEFAULT_LABELS, LabelTable

__all__ = [
    "FINETUNE_TRAIN",
    "W0_WITHOUT_EROSION",
    "AugmentConfig",
    "HipsegConfig",
    "ModelConfig",
    "PreprocessConfig",
    "SamplingConfig",
    "TrainConfig",
    "ViewConfig",
    "WeightMapConfig",
    "config_from_dict",
    "config_to_dict",
    "dataclass_from_dict",
    "load_config",
    "load_yaml_dataclass",
    "save_config",
]

#: A config is a few KB; anything much larger is not one, and is not parsed.
MAX_CONFIG_BYTES = 2**20

#: Values quoted in error messages are cut to a few dozen characters and items.
_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 60
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = 6
_SHORT.maxlevel = 3

#: Predicted label maps are uint8.
MAX_CLASSES = 256
#: Channels of the widest (deepest) layer, ``base_width * 2**depth``: beyond this the network
#: alone would not fit in memory.
MAX_WIDEST_CHANNELS = 4096
#: The paper uses 6; each view costs a pass of the network over the whole scan.
MAX_VIEWS = 64
#: Seeds every generator (numpy, torch) takes.
MAX_SEED = 2**32 - 1


def _short(value: object) -> str:
    """``repr(value)`` cut short, so that no error message grows with the input."""
    return _SHORT.repr(value)


def _clip(text: str, limit: int = 200) -> str:
    """``text`` cut to ``limit`` characters: messages of other libraries quote the input too."""
    return text if len(text) <= limit else text[:limit] + "..."


def _key_list(keys: set, prefix: str) -> str:
    """Unknown keys for a message: YAML keys may be any scalar, and any number of them."""
    names = sorted(prefix + _clip(str(k), 60) for k in keys)
    more = f" and {len(names) - 6} more" if len(names) > 6 else ""
    return ", ".join(names[:6]) + more


def _check(key: str, value: object, ok: bool, expected: str) -> None:
    """Raise a :class:`ConfigError` ``"<key>: <value> is not <expected>"`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"{key}: {_short(value)} is not {expected}")


def _check_between(key: str, value: float, low: float, high: float) -> None:
    """``low <= value <= high`` (NaN never is)."""
    _check(key, value, low <= value <= high, f"in {low}..{high}")


def _check_finite_at_least(key: str, value: float, low: float) -> None:
    _check(key, value, math.isfinite(value) and value >= low, f"a finite number >= {low:g}")


def _check_finite_positive(key: str, value: float) -> None:
    _check(key, value, math.isfinite(value) and value > 0, "a finite number > 0")


def _check_range_pair(key: str, pair: tuple[float, float], limit: float) -> None:
    """A ``(low, high)`` range to draw from uniformly, ``0 <= low <= high <= limit``."""
    _check(key, pair, len(pair) == 2 and 0 <= pair[0] <= pair[1] <= limit,
           f"a range (low, high) with 0 <= low <= high <= {limit:g}")


#: How the CT's HU become the network's input (``PreprocessConfig.intensity_scaling``).
INTENSITY_SCALINGS = ("robust", "fixed")


@dataclass(frozen=True)
class PreprocessConfig:
    """SPEC step 1: values below ``clip_below_hu`` are set to it, then scaled.

    ``intensity_scaling`` "robust" is the paper's per-scan ``(x - median) / IQR``; "fixed"
    (the default, not in the paper) maps HU by one affine map for every scan
    (:data:`hipseg.preprocess.FIXED_CENTRE_HU`, :data:`hipseg.preprocess.FIXED_SCALE_HU`), so
    a tissue gives the network the same input whatever else the scan holds: the per-scan IQR
    of the voxels above 0 HU is set by the soft tissue's noise and make-up (2-217 HU on two
    generators' CTs of four anatomies), and the same bone reached the network up to 14x as
    bright on one generator's CT as on the other's (docs/design.md). On real anatomy it lifted
    seed 1 from Dice 0.946 to 0.979 and GapDice 0.889 to 0.960, and kept them on another
    generator's CT (docs/accuracy.md, run 10).
    A model saved before the field existed was trained with "robust" and reads as such
    (:func:`load_config`).
    """

    clip_below_hu: float = 0.0
    intensity_scaling: str = "fixed"

    def __post_init__(self) -> None:
        # A threshold above the CT range would flatten every scan into a constant one, which
        # would then be reported as a bad scan.
        _check_between("preprocess.clip_below_hu", self.clip_below_hu, -4096.0, 3071.0)
        _check("preprocess.intensity_scaling", self.intensity_scaling,
               self.intensity_scaling in INTENSITY_SCALINGS, " or ".join(INTENSITY_SCALINGS))


@dataclass(frozen=True)
class ViewConfig:
    """View directions (unit vectors in RAS scanner space).

    ``directions`` is empty until a model is trained; training draws them from ``seed``
    (the three scanner axes plus random ones at least ``min_angle_deg`` apart) and stores them,
    so a saved model always predicts with the views it was trained on.
    """

    n_views: int = 6
    min_angle_deg: float = 30.0
    seed: int = 0
    directions: tuple[tuple[float, float, float], ...] = ()

    def __post_init__(self) -> None:
        _check_between("views.n_views", self.n_views, 1, MAX_VIEWS)
        _check_between("views.min_angle_deg", self.min_angle_deg, 0.0, 90.0)
        _check_between("views.seed", self.seed, 0, MAX_SEED)
        _check("views.directions", len(self.directions), len(self.directions) <= MAX_VIEWS,
               f"at most {MAX_VIEWS} directions")
        for i, direction in enumerate(self.directions):
            # A zero (or denormal) vector has no plane; the grid would divide by its norm.
            _check(f"views.directions[{i}]", direction,
                   len(direction) == 3 and all(math.isfinite(c) for c in direction)
                   and math.hypot(*direction) >= 1e-6, "a finite non-zero 3-vector")


@dataclass(frozen=True)
class SamplingConfig:
    """Plane size while training (SPEC step 2).

    ``dim`` (pixels) and ``sphere_diameter_mm`` are 0 until measured on the training data
    (``percentile`` of voxel counts and of physical extents over all axes and images); a
    measured ``dim`` is lowered until the pixel spacing is at least ``min_pixel_spacing_mm``
    (0: no floor, the paper's rule). At prediction the pixel spacing ``sphere_diameter_mm /
    dim`` is kept and the sphere grows to the scan's largest extent, so nothing near the border
    is cut off.

    Why a floor: the network's cost grows with the inverse cube of the pixel spacing. On a
    0.78 mm CT the paper's rule gives 0.82 mm pixels and about 7 minutes per scan on a 2-core
    CPU; at the floor (2.4x coarser per axis) about a minute (docs/performance.md). The
    label map is still made on the scan's own grid, from interpolated probabilities.

    Training planes: a fraction ``joint_plane_fraction`` passes through a random joint-space
    voxel (background between two bones at most
    ``hipseg.training.data.JOINT_SPACE_MM`` apart), a fraction
    ``foreground_plane_fraction`` through a random bone voxel, the rest lie uniformly in the
    sphere.

    Several pixel spacings: with ``finest_pixel_spacing_mm`` > 0 a fraction
    ``fine_plane_fraction`` of the training planes has its spacing drawn log-uniformly between
    it and ``pixel_spacing_mm`` and is aimed at a joint space (a bone where there is none); a
    plane keeps ``dim`` pixels, so a finer one covers a smaller field centred near that point.
    The other planes, and validation, stay at ``pixel_spacing_mm``. Such a model predicts at any
    spacing in that range (``hipseg predict --pixel-mm``), e.g. the coarse default over the
    whole scan and its own resolution where the gaps are. ``-1``: the paper's rule's spacing
    (the measured ``dim`` before the floor), filled in with the plane size. ``0``: one spacing.
    """

    dim: int = 0
    sphere_diameter_mm: float = 0.0
    percentile: float = 75.0
    min_pixel_spacing_mm: float = 2.0
    foreground_plane_fraction: float = 0.5
    joint_plane_fraction: float = 0.0
    finest_pixel_spacing_mm: float = 0.0
    fine_plane_fraction: float = 0.5

    def __post_init__(self) -> None:
        _check("sampling.dim", self.dim, self.dim == 0 or 1 <= self.dim <= 4096,
               "0 (unmeasured) or in 1..4096")
        _check("sampling.finest_pixel_spacing_mm", self.finest_pixel_spacing_mm,
               self.finest_pixel_spacing_mm in (-1.0, 0.0)
               or 0.01 <= self.finest_pixel_spacing_mm <= 100.0,
               "-1 (the paper's rule), 0 (one spacing) or in 0.01..100")
        _check_between("sampling.fine_plane_fraction", self.fine_plane_fraction, 0.0, 1.0)
        _check("sampling.sphere_diameter_mm", self.sphere_diameter_mm,
               0 <= self.sphere_diameter_mm <= 10_000, "0 (unmeasured) or in 0..10000")
        _check_between("sampling.percentile", self.percentile, 0.0, 100.0)
        _check_between("sampling.min_pixel_spacing_mm", self.min_pixel_spacing_mm, 0.0, 100.0)
        _check_between("sampling.foreground_plane_fraction", self.foreground_plane_fraction,
                       0.0, 1.0)
        _check_between("sampling.joint_plane_fraction", self.joint_plane_fraction, 0.0,
                       1.0 - self.foreground_plane_fraction)
        if self.dim > 0 and self.sphere_diameter_mm > 0:
            # Prediction keeps this spacing over the whole scan: far too fine a one would be
            # refused as a scan too large for memory.
            _check_between("sampling.sphere_diameter_mm / sampling.dim", self.pixel_spacing_mm,
                           0.01, 100.0)
            if self.finest_pixel_spacing_mm > 0:
                _check_between("sampling.finest_pixel_spacing_mm", self.finest_pixel_spacing_mm,
                               0.01, self.pixel_spacing_mm)

    @property
    def pixel_spacing_mm(self) -> float:
        if self.dim <= 0 or self.sphere_diameter_mm <= 0:
            raise ConfigError("sampling.dim and sampling.sphere_diameter_mm are not set")
        return self.sphere_diameter_mm / self.dim

    @property
    def trained_pixel_spacings_mm(self) -> tuple[float, float]:
        """``(finest, coarsest)`` pixel spacing of the training planes, mm."""
        base = self.pixel_spacing_mm
        return (self.finest_pixel_spacing_mm if self.finest_pixel_spacing_mm > 0 else base, base)

    @property
    def several_spacings(self) -> bool:
        """Whether the training planes came at more than one pixel spacing."""
        finest, coarsest = self.trained_pixel_spacings_mm
        return finest < coarsest

    def prediction_pixel_spacing_mm(self, requested_mm: float | None = None) -> float:
        """The pixel spacing to predict at: ``requested_mm``, or the trained one when None.

        Raises
        ------
        ConfigError
            ``requested_mm`` lies outside :attr:`trained_pixel_spacings_mm` (0.5 % slack).
        """
        if requested_mm is None:
            return self.pixel_spacing_mm
        finest, coarsest = self.trained_pixel_spacings_mm
        if not finest * 0.995 <= requested_mm <= coarsest * 1.005:
            hint = "" if self.several_spacings else (
                "; a model trained with --finest-pixel-mm predicts at several")
            raise ConfigError(f"pixel spacing {requested_mm:g} mm is outside the "
                              f"{finest:.3g}-{coarsest:.3g} mm this model was trained at{hint}")
        return float(requested_mm)


@dataclass(frozen=True)
class ModelConfig:
    """Network: ``depth`` poolings, ``base_width`` channels at full resolution.

    ``architecture`` is ``"unet2d"`` (the method: multi-planar 2D UNet) or ``"unet3d"`` (the
    ablation's baseline: a 3D UNet on cubic patches of ``patch_vox`` voxels of the scan's grid,
    predicted by a sliding window).

    ``lateral_channel`` adds a second input channel, the RAS x of each pixel relative to the
    body's midline (:func:`hipseg.preprocess.network_input`). Without it a plane through one
    femur looks the same on either side, and the network confuses left and right on real
    anatomy (docs/accuracy.md).
    """

    base_width: int = 16
    depth: int = 4
    kernel_size: int = 3
    architecture: str = "unet2d"
    patch_vox: int = 48
    lateral_channel: bool = True

    def __post_init__(self) -> None:
        _check_between("model.base_width", self.base_width, 1, 512)
        _check_between("model.depth", self.depth, 1, 8)
        _check("model.kernel_size", self.kernel_size,
               1 <= self.kernel_size <= 15 and self.kernel_size % 2 == 1, "odd and in 1..15")
        _check_between("model.patch_vox", self.patch_vox, 1, 256)
        widest = self.base_width * 2**self.depth
        _check("model.base_width * 2**model.depth", widest, widest <= MAX_WIDEST_CHANNELS,
               f"at most {MAX_WIDEST_CHANNELS} channels")

    @property
    def in_channels(self) -> int:
        """Input channels of the network: the scaled CT, and the lateral coordinate if on."""
        return 2 if self.lateral_channel else 1


#: The paper's weight-map height without erosion (with it: ``WeightMapConfig.w0``'s default).
W0_WITHOUT_EROSION = 10.0


@dataclass(frozen=True)
class WeightMapConfig:
    """SPEC step 4: loss weights ``1 + w0 exp(-(d1 + d2)^2 / (2 sigma^2))``, distances in voxels.

    ``enabled`` is off for pre-training on coarse labels (they fill the gaps, so there is no gap
    to weight) and on for fine-tuning, as in the paper. ``w0`` is 20 with erosion by a ball of
    ``erosion_radius_vox`` voxels and 10 without it (paper).

    ``ignore_contacts_mm`` > 0 sets the loss weight to 0 within that distance (mm) of every
    voxel where two bones touch in the labels, whether the map is enabled or not: coarse labels
    close the joint spaces, so there they teach the network to close them (docs/accuracy.md).
    """

    enabled: bool = False
    w0: float = 20.0
    sigma_vox: float = 5.0
    erode: bool = True
    erosion_radius_vox: float = 3.0
    ignore_contacts_mm: float = 0.0

    def __post_init__(self) -> None:
        _check_finite_at_least("weight_map.w0", self.w0, 0.0)
        _check_finite_positive("weight_map.sigma_vox", self.sigma_vox)
        _check_finite_at_least("weight_map.erosion_radius_vox", self.erosion_radius_vox, 0.0)
        _check_finite_at_least("weight_map.ignore_contacts_mm", self.ignore_contacts_mm, 0.0)

    @property
    def needs_weights(self) -> bool:
        """Whether the loss needs a per-voxel weight (the map, the contact band, or both)."""
        return self.enabled or self.ignore_contacts_mm > 0


@dataclass(frozen=True)
class AugmentConfig:
    """SPEC step 5: elastic deformation (Simard et al. 2003) of a ``fraction`` of each batch.

    Each deformed plane gets a displacement field of uniform noise in [-1, 1] smoothed by a
    Gaussian of ``sigma`` pixels and scaled by ``alpha`` pixels, both drawn uniformly from their
    ranges (the original MPUNet's ranges); its loss weight is multiplied by ``deformed_weight``.

    Appearance (``hipseg.augment.appearance_augment``, not in the paper): an
    ``appearance_fraction`` of the planes get their CT channel's contrast (log-uniform range),
    offset and white noise (units of the scaled CT: the scan's inter-quartile range with the
    robust scaling, 100 HU with the fixed one) and a
    Gaussian blur (pixels) drawn from the ranges below; 0 turns it off. On by default: the
    training CT comes from one generator, the scans to segment from others, and on real
    anatomy it raised Dice 0.957 -> 0.970 and GapDice 0.829 -> 0.918 on the generator's own
    CT (docs/accuracy.md, run 7).
    """

    fraction: float = 1.0 / 3.0
    alpha_px: tuple[float, float] = (0.0, 450.0)
    sigma_px: tuple[float, float] = (20.0, 30.0)
    deformed_weight: float = 1.0 / 3.0
    appearance_fraction: float = 0.5
    contrast: tuple[float, float] = (0.7, 1.4)
    offset: tuple[float, float] = (-0.3, 0.3)
    blur_px: tuple[float, float] = (0.0, 1.0)
    noise: tuple[float, float] = (0.0, 0.2)

    def __post_init__(self) -> None:
        _check_between("augment.fraction", self.fraction, 0.0, 1.0)
        _check_range_pair("augment.alpha_px", self.alpha_px, 10_000.0)
        # The Gaussian's kernel grows with sigma; planes are at most 4096 pixels.
        _check_range_pair("augment.sigma_px", self.sigma_px, 4096.0)
        _check_finite_at_least("augment.deformed_weight", self.deformed_weight, 0.0)
        _check_between("augment.appearance_fraction", self.appearance_fraction, 0.0, 1.0)
        _check("augment.contrast", self.contrast,
               len(self.contrast) == 2 and 0 < self.contrast[0] <= self.contrast[1] <= 10,
               "a range (low, high) with 0 < low <= high <= 10")
        _check("augment.offset", self.offset,
               len(self.offset) == 2 and -10 <= self.offset[0] <= self.offset[1] <= 10,
               "a range (low, high) with -10 <= low <= high <= 10")
        _check_range_pair("augment.blur_px", self.blur_px, 20.0)
        _check_range_pair("augment.noise", self.noise, 10.0)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; the defaults train from scratch (``FINETUNE_TRAIN``: the paper's).

    108 epochs of 40 steps at lr 2e-3 with a patience of 15 epochs is the schedule measured best
    on real anatomy with 2 accurate scans and their new anatomies (docs/accuracy.md, run 6):
    the paper's patience of 5 ended runs on a noisy validation loss before the femurs were
    learned, and 36 epochs left the joint spaces half-learned.

    ``validation`` says where the signal for the lr schedule and early stopping comes from:
    ``"split"`` holds out ``val_fraction`` of the scans; ``"planes"`` trains on every scan and
    validates on ``val_planes`` fixed planes of them (drawn once from their own seed, never
    augmented); ``"auto"`` takes ``"planes"`` below ``min_split_cases`` scans, where holding
    one out would take a large share of the few accurate scans away (2 scans: half).

    ``monitor`` is what the best model, the lr schedule and early stopping follow: the
    validation planes' mean foreground Dice (``"dice"``, higher is better; the original
    MPUNet's ``val_dice``) or their weighted cross-entropy (``"loss"``). With few scans the
    loss swung by 2-3x from epoch to epoch while the Dice rose steadily, and stopping on it
    ended a run at validation Dice 0.69 with test Dice 0.41 (docs/accuracy.md, run 7).
    """

    epochs: int = 108
    steps_per_epoch: int = 40
    batch_size: int = 10
    learning_rate: float = 2e-3
    lr_factor: float = 0.9
    lr_patience: int = 2
    early_stop_patience: int = 15
    val_fraction: float = 0.2
    val_planes: int = 40
    validation: str = "auto"
    min_split_cases: int = 5
    seed: int = 0
    monitor: str = "dice"

    def __post_init__(self) -> None:
        if self.validation not in ("auto", "split", "planes"):
            raise ConfigError(f"train.validation: {_short(self.validation)} is not auto, split "
                              "or planes")
        if self.monitor not in ("dice", "loss"):
            raise ConfigError(f"train.monitor: {_short(self.monitor)} is not dice or loss")
        for name in ("epochs", "steps_per_epoch", "batch_size", "val_planes"):
            _check(f"train.{name}", getattr(self, name), getattr(self, name) >= 1, ">= 1")
        for name in ("lr_patience", "early_stop_patience", "min_split_cases"):
            _check(f"train.{name}", getattr(self, name), getattr(self, name) >= 0, ">= 0")
        _check_finite_positive("train.learning_rate", self.learning_rate)
        # ReduceLROnPlateau needs a factor below 1 (1 would never lower the rate).
        _check("train.lr_factor", self.lr_factor, 0 < self.lr_factor < 1, "in (0, 1)")
        _check_between("train.val_fraction", self.val_fraction, 0.0, 1.0)
        _check_between("train.seed", self.seed, 0, MAX_SEED)

    def validates_on_planes(self, n_cases: int) -> bool:
        """Whether ``n_cases`` training scans are validated on their own planes (no split)."""
        return self.validation == "planes" or (
            self.validation == "auto" and n_cases < self.min_split_cases)


#: The paper's fine-tuning settings (SPEC step 6): Adam, lr 1e-5, batch 10, at most 40 epochs,
#: lr x 0.9 after 2 epochs without validation improvement, early stop after 5. TrainConfig's
#: own defaults are for training from scratch, the protocol measured best on real anatomy
#: (docs/design.md, "Training schedule").
FINETUNE_TRAIN = TrainConfig(epochs=40, steps_per_epoch=50, learning_rate=1e-5,
                             early_stop_patience=5)


@dataclass(frozen=True)
class HipsegConfig:
    """Everything needed to train and to predict with a model."""

    labels: LabelTable = DEFAULT_LABELS
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    views: ViewConfig = field(default_factory=ViewConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    weight_map: WeightMapConfig = field(default_factory=WeightMapConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        names = self.labels.names
        _check("labels.names", len(names), len(names) <= MAX_CLASSES,
               f"at most {MAX_CLASSES} classes (label maps are uint8)")
        for i, name in enumerate(names):
            _check(f"labels.names[{i}]", name, bool(name.strip()), "a non-empty name")


def _convert(value: object, hint: object, key: str) -> object:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__}")
        return _from_dict(hint, value, key)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__}")
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"{key}: expected {len(args)} values, got {len(value)}")
        return tuple(_convert(v, a, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            try:
                return _convert(value, arg, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: {_short(value)} matches none of {hint}")
    if hint is type(None):
        if value is not None:
            raise ConfigError(f"{key}: expected null, got {_short(value)}")
        return None
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {_short(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {_short(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {_short(value)}")
        try:
            return float(value)
        except OverflowError:  # an integer of hundreds of digits
            raise ConfigError(f"{key}: {_short(value)} is too large") from None
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {_short(value)}")
        return value
    raise ConfigError(f"{key}: unsupported type {hint}")


def _from_dict(cls: type, data: dict, where: str) -> object:
    if cls is LabelTable:
        unknown = set(data) - {"names", "symmetric_pairs"}
        if unknown:
            raise ConfigError(f"unknown config key(s): {_key_list(unknown, where + '.')}")
        names = _convert(data.get("names"), tuple[str, ...], f"{where}.names")
        pairs = _convert(data.get("symmetric_pairs", []), tuple[tuple[int, int], ...],
                         f"{where}.symmetric_pairs")
        try:
            return LabelTable(names=names, symmetric_pairs=pairs)  # type: ignore[arg-type]
        except ValueError as err:
            raise ConfigError(f"{where}: {_clip(str(err))}") from None
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(f"unknown config key(s): {_key_list(unknown, prefix)}")
    kwargs = {
        name: _convert(value, hints[name], f"{where}.{name}" if where else name)
        for name, value in data.items()
    }
    return cls(**kwargs)


def config_from_dict(data: dict) -> HipsegConfig:
    """Build a :class:`HipsegConfig` from plain data, rejecting unknown keys and wrong types."""
    return dataclass_from_dict(HipsegConfig, data)  # type: ignore[return-value]


def config_to_dict(config: HipsegConfig) -> dict:
    """Plain data (lists, numbers, strings) for YAML."""

    def plain(value: object) -> object:
        if isinstance(value, LabelTable):
            return value.to_dict()
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        return value

    return plain(config)  # type: ignore[return-value]


def save_config(config: HipsegConfig, path: Path) -> None:
    """Write ``config`` as YAML, atomically (temporary file, then rename)."""
    atomic_write_text(Path(path), yaml.safe_dump(config_to_dict(config), sort_keys=False))


class _AliasRefused(yaml.YAMLError):
    """An anchor or alias in a config file."""


class _ConfigLoader(yaml.SafeLoader):
    """The safe loader, refusing anchors and aliases before any node is composed.

    Without aliases every node comes from its own text, so the loaded data is no larger than
    the (capped) file; with them a few KB of nested aliases expand to gigabytes.
    """

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _AliasRefused(f"line {event.start_mark.line + 1}")
        return super().compose_node(parent, index)


def _parse_yaml(raw: bytes) -> object:
    """The one document in ``raw``; bytes, so that the reader detects and checks the encoding."""
    loader = _ConfigLoader(raw)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def load_config(path: Path) -> HipsegConfig:
    """Read a YAML config with a safe loader; errors name the file and the key.

    Raises
    ------
    InputError
        Naming ``path``: unreadable, larger than :data:`MAX_CONFIG_BYTES`, not YAML, using
        anchors or aliases, or a key unknown, of the wrong type or out of its range.
    """
    return load_yaml_dataclass(path, HipsegConfig, upgrade=_robust_when_unstated)


def _robust_when_unstated(data: object) -> object:
    """A config written before ``preprocess.intensity_scaling`` existed (2026-12-08) belongs
    to a model trained with the paper's robust scaling, not with today's default."""
    if isinstance(data, dict) and isinstance(data.get("preprocess"), dict):
        data["preprocess"].setdefault("intensity_scaling", "robust")
    return data


def dataclass_from_dict(cls: type, data: object) -> object:
    """Build the frozen dataclass ``cls`` from plain data, rejecting unknown keys, wrong types
    and (through its ``__post_init__``) values out of range, as :class:`ConfigError`."""
    if not isinstance(data, dict):
        raise ConfigError("a config must be a mapping at its top level")
    try:
        return _from_dict(cls, data, "")
    except ValueError as err:  # a dataclass's own range checks
        raise ConfigError(_clip(str(err))) from None


def load_yaml_dataclass(path: Path, cls: type,
                        upgrade: typing.Callable[[object], object] | None = None) -> object:
    """Read the YAML file ``path`` with a safe loader into the dataclass ``cls``; ``upgrade``
    may first fill in what older files lack.

    Raises
    ------
    InputError
        Naming ``path``: unreadable, larger than :data:`MAX_CONFIG_BYTES`, not YAML, using
        anchors or aliases, or a key unknown, of the wrong type or out of its range.
    """
    path = Path(path)
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_CONFIG_BYTES + 1)
    except OSError as err:
        raise InputError(path, f"cannot read config ({err.strerror or err})") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise InputError(path, f"larger than {MAX_CONFIG_BYTES // 2**10} KiB: not a config")
    try:
        data = _parse_yaml(raw)
    except _AliasRefused as err:
        raise InputError(path, f"YAML anchors/aliases are not allowed in a config ({err})"
                         ) from None
    except yaml.YAMLError as err:
        # One line: PyYAML's messages quote the offending line below a caret.
        raise InputError(path, f"not valid YAML ({_clip(' '.join(str(err).split()), 400)})"
                         ) from None
    try:
        return dataclass_from_dict(cls, data if upgrade is None else upgrade(data))
    except ConfigError as err:
        raise InputError(path, str(err)) from None
