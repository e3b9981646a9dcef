"""Where the project's shared real data lies (``../shared/data`` beside the checkout).

``HIPSEG_SHARED_DATA`` points elsewhere, e.g. when the checkout is not next to ``shared/``;
tests that need a file skip with its path when it is absent. The data is never copied here.
"""

from __future__ import annotations

import os
from pathlib import Path

SHARED_DATA = Path(os.environ.get(
    "HIPSEG_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
HIP_MESHES = SHARED_DATA / "hip-meshes"
REAL_CT = SHARED_DATA / "real-ct"
