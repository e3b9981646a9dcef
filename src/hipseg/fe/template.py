"""Materials and the load case of an exported FE model, overridable from a YAML file.

Defaults, each from the literature:

- Bone: linear elastic, E = 17 GPa, nu = 0.3: cortical bone along the femoral shaft (Reilly &
  Burstein 1975, J Biomech 8:393); one homogeneous material, as in LibHip's template models.
- Cartilage: neo-Hookean, E = 40.7 MPa, nu = 0.495: the shear modulus 13.6 MPa and bulk
  modulus 1359 MPa Anderson et al. (2008, J Biomech Eng 130:051008) validated for hip
  cartilage, written as E and nu (E = 9KG / (3K + G), nu = (3K - 2G) / (2 (3K + G))).
- Load: 1750 N on each femur, about the peak hip contact force of walking (238 % of body
  weight, Bergmann et al. 2001, J Biomech 34:859) for a 75 kg person, spread over the nodes of
  the femur's distal end (the scan's cut) and pointing superior; the sacrum's superior end
  fixed. A template to adapt to a study, not a validated load case.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from hipseg.core.atomic import atomic_write_text
from hipseg.core.config import config_to_dict, load_yaml_dataclass

__all__ = ["FeTemplate", "LoadCase", "Material", "load_template", "save_template"]

MODELS = ("isotropic elastic", "neo-Hookean")


@dataclass(frozen=True)
class Material:
    """One material: FEBio's ``type`` name, Young's modulus (MPa) and Poisson's ratio."""

    model: str
    youngs_modulus_mpa: float
    poisson_ratio: float

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"material model {self.model!r} is not one of {list(MODELS)}")
        if not (np.isfinite(self.youngs_modulus_mpa) and self.youngs_modulus_mpa > 0):
            raise ValueError(f"youngs_modulus_mpa must be a positive number, got "
                             f"{self.youngs_modulus_mpa!r}")
        if not (np.isfinite(self.poisson_ratio) and -1.0 < self.poisson_ratio < 0.5):
            raise ValueError(f"poisson_ratio must lie in (-1, 0.5), got {self.poisson_ratio!r}")


@dataclass(frozen=True)
class LoadCase:
    """Sacrum fixed at its superior end, a superior force on each femur's distal end.

    ``fixed_depth_mm`` / ``loaded_depth_mm``: how far from the body's most superior (sacrum) or
    most inferior (femur) node the fixed or loaded nodes reach, along the scanner's S axis.
    """

    femur_force_n: float = 1750.0
    fixed_depth_mm: float = 10.0
    loaded_depth_mm: float = 10.0

    def __post_init__(self) -> None:
        for name in ("femur_force_n", "fixed_depth_mm", "loaded_depth_mm"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value!r}")


@dataclass(frozen=True)
class FeTemplate:
    """Materials per kind of body and the load case."""

    bone: Material = field(default_factory=lambda: Material("isotropic elastic", 17000.0, 0.3))
    cartilage: Material = field(default_factory=lambda: Material("neo-Hookean", 40.7, 0.495))
    load: LoadCase = field(default_factory=LoadCase)


def load_template(path: Path) -> FeTemplate:
    """Read a template YAML; any bad key or value is an ``InputError`` naming the file."""
    return load_yaml_dataclass(path, FeTemplate)  # type: ignore[return-value]


def save_template(template: FeTemplate, path: Path) -> None:
    atomic_write_text(Path(path), yaml.safe_dump(config_to_dict(template), sort_keys=False))
