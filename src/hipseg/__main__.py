"""``python -m hipseg``."""

import sys

from hipseg.cli import main

sys.exit(main())
