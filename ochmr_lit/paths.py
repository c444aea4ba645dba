"""Where the framework keeps generated files (synthetic body model, SynthCrowd, ...), and whether a folder can be
made."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

log = logging.getLogger(__name__)


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


@contextmanager
def cache_entry_lock(entry: Path, task: str) -> Iterator[None]:
    """Held while one process checks and (re)writes the cache entry ``entry`` (a file or folder): runs started
    together on an empty cache (two seeds in two terminals, the nodes of a job on one shared file system) would
    otherwise clear and write the same files at once. The others wait here (logged once, with ``task``: what the
    holder is doing), then find the entry complete. A file lock beside the entry (``.<name>.lock``), released when
    the holding process ends, however it ends."""
    entry = Path(entry)
    entry.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(entry.parent / f".{entry.name}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("waiting for another process that is %s", task)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def folder_problem(folder: Path) -> str | None:
    """Why ``folder`` cannot be created (``"<path> is a file"``, ``"<path>: Permission denied"``, ...), or None when
    it exists as a folder or can be made. Probed by creating and removing its first missing parent, so that nothing
    is left behind."""
    missing = Path(folder).absolute()
    while not missing.parent.exists() and missing.parent != missing:
        missing = missing.parent
    if missing.exists():
        return None if missing.is_dir() else f"{missing} is a file"
    try:
        missing.mkdir()
        missing.rmdir()
    except OSError as error:
        return f"{missing}: {error.strerror}"
    return None
