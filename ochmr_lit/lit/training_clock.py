"""How long a run has trained, across its interruptions: kept in every checkpoint, continued on resume.

A long run on a shared machine is stopped and resumed (SIGTERM, preemption, a new session); the wall time of
the process that finishes it is then only its last part. :class:`TrainingClock` adds up the seconds between the
start of training and its end (or the checkpoint) of every process, so ``seconds`` is the whole run's training
time. Time spent in between (queueing, a machine switched off) does not count.
"""

from __future__ import annotations

import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback


class TrainingClock(Callback):
    """Training seconds of a run over all its processes (``seconds``), stored in its checkpoints.

    Args:
        clock: the time source in seconds (tests pass a fake one).
    """

    def __init__(self, clock: Any = time.perf_counter) -> None:
        self._clock = clock
        self._before = 0.0  # seconds of earlier processes (from the checkpoint resumed)
        self._started: float | None = None

    @property
    def seconds(self) -> float:
        """Training seconds so far: earlier processes' plus this one's since its training started."""
        running = self._clock() - self._started if self._started is not None else 0.0
        return self._before + running

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started = self._clock()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._before, self._started = self.seconds, None

    def state_dict(self) -> dict[str, float]:
        return {"seconds": self.seconds}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._before = float(state_dict["seconds"])
