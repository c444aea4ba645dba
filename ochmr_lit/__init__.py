"""ochmr_lit: a PyTorch Lightning framework for occlusion-robust 3D human mesh recovery (OCHMR)."""

import os

# albumentations checks PyPI for a newer release at import time; this framework never touches the
# network at run time, so the check is switched off before anything can import albumentations.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"

from ochmr_lit.console import quiet_known_noise  # noqa: E402
from ochmr_lit.hardware import register_resolvers  # noqa: E402

register_resolvers()
quiet_known_noise()
