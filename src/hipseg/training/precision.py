"""Mixed precision for training: the autocast dtype of the device, and a gradient scaler for
float16."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hipseg.runtime.device import training_precision

__all__ = ["AutocastPolicy"]


@dataclass
class AutocastPolicy:
    """Mixed precision for training: the autocast dtype, and a gradient scaler for float16."""

    device: torch.device
    dtype: torch.dtype | None
    scaler: torch.amp.GradScaler | None = None

    @classmethod
    def for_device(cls, device: torch.device, precision: str) -> AutocastPolicy:
        dtype = training_precision(device, precision)
        scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
        return cls(device, dtype, scaler)

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None)
