"""Known noise of the libraries, silenced where it is emitted, so a run's console shows the run.

- Lightning's advertising tip about its cloud logger, logged at INFO by ``lightning.pytorch.utilities.rank_zero``
  every time a Trainer attaches loggers (twice per pipeline): a logging filter on that logger drops exactly it.
- Lightning's own ``isinstance(treespec, LeafSpec)`` deprecation warning, raised inside
  ``lightning.pytorch.utilities._pytree`` against the installed torch (not about this project's code): a warnings
  filter for that message from that module.

Everything else the libraries log or warn still shows. Lightning has no setting for either (checked in its
logger connector), hence the two filters. One more filter depends on the run and lives with it:
``ochmr_lit.runner.training`` ignores Lightning's "checkpoint directory exists and is not empty" only while a fit
resumes from a checkpoint (the files are the run's own); a fresh run into a full folder still gets the warning.

:func:`quiet_lightning` is for a Trainer built only to check settings: everything it would say, the stage's own
Trainer says again.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

#: The loggers a Trainer announces its set-up on ("GPU available: ...").
LIGHTNING_LOGGERS: tuple[str, ...] = ("lightning.pytorch", "lightning.fabric")

#: Start of the tip Lightning logs when no LitLogger is attached.
LIGHTNING_TIP = "💡 Tip:"


def _not_a_tip(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith(LIGHTNING_TIP)


def quiet_known_noise() -> None:
    """Install the two filters (idempotent)."""
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if _not_a_tip not in logger.filters:
        logger.addFilter(_not_a_tip)
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                            module=r"lightning\.pytorch\.utilities\._pytree")


@contextmanager
def quiet_lightning() -> Iterator[None]:
    """Inside: Lightning's INFO and WARNING lines and every Python warning are silenced; errors still show and
    raise. The loggers' levels and the warning filters are restored on leaving, also after an exception."""
    loggers = [logging.getLogger(name) for name in LIGHTNING_LOGGERS]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
