"""Model weights on disk: written atomically, read without ever unpickling code."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from hipseg.core.atomic import atomic_path
from hipseg.core.errors import InputError

__all__ = ["load_state_dict", "save_state_dict"]


def save_state_dict(state: dict, path: Path) -> None:
    """``torch.save`` a dict of tensors (and plain values) atomically."""
    with atomic_path(Path(path)) as tmp:
        torch.save(state, tmp)


def load_state_dict(path: Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint with ``weights_only=True``: a file crafted to run code is refused.

    Raises
    ------
    InputError
        Missing, truncated or unsafe file, named with the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "model file not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise InputError(path, f"refused: not a plain weights file ({str(err).splitlines()[0]})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as err:
        raise InputError(path, f"unreadable or truncated model file ({str(err).splitlines()[0]})") from None
    if not isinstance(state, dict):
        raise InputError(path, f"expected a dict of weights, got {type(state).__name__}")
    return state
