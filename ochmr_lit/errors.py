"""The project's errors: a mistake in what the user gave (a setting, a data file, a checkpoint, a weight file).

Each message names the key or the file, what was found and the fix, in one line. The entry points print such an
error as one line ``error: ...`` on stderr and exit with status 2 (:func:`user_errors`); the traceback appears with
``HYDRA_FULL_ERROR=1``. Anything else is a bug and keeps its traceback. The classes also derive from the built-in
error they refine (ValueError, FileNotFoundError), so existing ``except`` clauses keep working.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

#: Exit status of a command stopped by a user error (as argparse and Hydra's own command-line errors use).
USER_ERROR_EXIT_CODE = 2


class OchmrError(Exception):
    """A mistake in the user's input, explained in one line."""


class ConfigError(OchmrError, ValueError):
    """A configuration key with a value that cannot work."""


class DataError(OchmrError, ValueError):
    """A data or annotation file that cannot be read as its format says."""


class CheckpointError(OchmrError, ValueError):
    """A checkpoint that is missing, unreadable or of another kind than the command needs."""


class WeightsError(OchmrError, ValueError):
    """A pretrained weight file that is missing or does not fit the model."""


class MissingFileError(OchmrError, FileNotFoundError):
    """A file or folder named by the user that does not exist."""


def _leaves_nothing(run_dir: Path) -> bool:
    """Whether a run folder holds only what Hydra writes at start (its config copy and the job log)."""
    return run_dir.is_dir() and all(p.name == ".hydra" or p.suffix == ".log" for p in run_dir.iterdir())


def user_error_cause(error: BaseException) -> OchmrError | None:
    """``error`` itself when it is a user error, or the user error it was raised from (``raise ... from``): Hydra's
    ``instantiate`` wraps what a class raises in an InstantiationException of several lines. None otherwise."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, OchmrError):
            return error
        seen.add(id(error))
        error = error.__cause__
    return None


def existing_folder(path: str | os.PathLike) -> Path:
    """The nearest folder at or above ``path`` (made absolute) that exists: taken before a command creates its run
    folder, the folder below which everything on the way to the run folder is the command's own."""
    folder = Path(path).absolute()
    while not folder.is_dir() and folder != folder.parent:
        folder = folder.parent
    return folder


def _remove_empty_parents(run_dir: Path, existed: Path | None) -> None:
    """Remove the folders above ``run_dir`` that the command made and that are now empty: those below ``existed``
    (:func:`existing_folder` before the command), or, without it, the run folder's parent (the experiment's
    folder, if this was its only run)."""
    here = run_dir.absolute().parent
    if existed is None:
        folders = [here]
    else:
        folders = []
        while existed in here.parents:
            folders.append(here)
            here = here.parent
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # not empty: another run's, or the user's
            return


@contextmanager
def user_errors(run_dir: str | os.PathLike | None = None, existed: str | os.PathLike | None = None) -> Iterator[None]:
    """Print a user error (or an error raised from one, :func:`user_error_cause`) as one line on stderr and exit
    with status 2; a run folder the failed command left empty (Hydra's config copy and log only) is removed, and so
    are the empty folders above it that the command made (below ``existed``, see :func:`_remove_empty_parents`).
    ``HYDRA_FULL_ERROR=1`` re-raises with the traceback."""
    try:
        yield
    except Exception as raised:
        error = user_error_cause(raised)
        if error is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        if run_dir is not None and _leaves_nothing(Path(run_dir)):
            shutil.rmtree(run_dir, ignore_errors=True)
            _remove_empty_parents(Path(run_dir), None if existed is None else Path(existed).absolute())
        raise SystemExit(report_user_error(error)) from None


def report_user_error(error: OchmrError) -> int:
    """Print ``error`` as one line ``error: ...`` on stderr and return the exit status 2, for a command whose
    ``main`` returns its status (:func:`user_errors` exits instead); ``HYDRA_FULL_ERROR=1`` re-raises it."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        raise error
    message = " ".join(str(error).split())
    print(f"error: {message}", file=sys.stderr)
    return USER_ERROR_EXIT_CODE


class OneLineArgumentParser(argparse.ArgumentParser):
    """An ``argparse`` parser whose mistakes (a missing or unknown argument, a bad value) raise a
    :class:`ConfigError` naming the argument, printed by :func:`user_errors` as one line, instead of argparse's
    usage block and its own exit."""

    def error(self, message: str) -> NoReturn:
        """Raise the mistake argparse found as a :class:`ConfigError`."""
        raise ConfigError(f"{self.prog}: {message}; {self.prog} --help lists the arguments")
