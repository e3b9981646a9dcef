"""Networks and their checkpoints."""

from hipseg.models.checkpoint import load_state_dict, save_state_dict
from hipseg.models.unet2d import UNet2D
from hipseg.models.unet3d import UNet3D

__all__ = ["UNet2D", "UNet3D", "load_state_dict", "save_state_dict"]
