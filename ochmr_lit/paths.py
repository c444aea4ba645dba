"""Where the framework keeps generated files (synthetic body model, SynthCrowd, ...)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The cache root: ``$OCHMR_CACHE`` if set, else ``$XDG_CACHE_HOME/ochmr_lit`` or ``~/.cache/ochmr_lit``.

    The folder is created on first use.
    """
    env = os.environ.get("OCHMR_CACHE")
    if env:
        root = Path(env).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "ochmr_lit"
    root.mkdir(parents=True, exist_ok=True)
    return root
