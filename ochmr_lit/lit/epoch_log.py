"""One log line per training epoch: what a log file or a batch job's output shows instead of a progress bar.

Lightning's progress bar redraws one terminal line; written to a file it shows nothing useful until the end.
:class:`EpochLog` logs, after each epoch (and its validation), the epoch, the steps, the time and the epoch's
metrics that Lightning collected (``train/loss_total``, ``val/mpjpe``, ...), so a run can be followed with
``tail -f``; a validation inside an epoch (``trainer.val_check_interval`` < 1) gets a line of its own, and a
test (after fit, or ``evaluate`` on a split of tens of thousands of people) logs its progress in batches.
:func:`progress_bar_setting` turns the bar off when standard error is not a terminal.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Sequence
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import TrainerFn

from ochmr_lit.progress import ProgressLog

log = logging.getLogger(__name__)

#: A step line shows a rate (and the time left) only once this many batches have run after the first batch of
#: the process in the epoch; that first batch pays the start-up (data loader, first forward), which on a resume
#: lands right before a step line and would make a pace of one step in many seconds.
MIN_TIMED_STEPS = 5

#: Metrics an epoch line shows when they were logged, in this order (others are left to the loggers).
SHOWN_METRICS: tuple[str, ...] = ("train/loss_total", "train/loss", "val/mpjpe", "val/pa_mpjpe", "val/kp_AP",
                                  "val/peak_dist", "val/pck_centre", "val/global_recall")
#: The validation metrics among them (the line of a validation inside an epoch).
SHOWN_VAL_METRICS: tuple[str, ...] = tuple(name for name in SHOWN_METRICS if name.startswith("val/"))


def format_metrics(metrics: dict[str, Any], names: Sequence[str] = SHOWN_METRICS) -> str:
    """``name value`` pairs of the finite metrics among ``names`` (4 significant digits), in that order."""
    parts = []
    for name in names:
        if name not in metrics:
            continue
        value = float(metrics[name])
        if math.isfinite(value):
            parts.append(f"{name} {value:.4g}")
    return ", ".join(parts)


class EpochLog(Callback):
    """Logs ``epoch E/N: S steps in T s; <metrics>`` at the end of every training epoch (global rank zero), and,
    when the Trainer shows no progress bar, ``epoch E, step s/S of the epoch, r steps/s, about T left; <loss>``
    every ``every_n_steps`` steps (0: never; the rate is timed from the end of the epoch's first batch in this
    process, and left out until :data:`MIN_TIMED_STEPS` more have run), and
    ``validation at step G (epoch E, batch b/S); <val metrics>``
    after a validation that does not end its epoch. Without a progress bar a test logs ``testing: b/B batches
    (p %), r/s, about T left`` every tenth of its batches or every ``test_interval`` seconds.
    """

    def __init__(self, every_n_steps: int = 50, test_interval: float = 60.0) -> None:
        if every_n_steps < 0:
            raise ValueError(f"every_n_steps must be 0 (no step lines) or positive, got {every_n_steps}")
        if test_interval <= 0:
            raise ValueError(f"test_interval must be positive (seconds between test progress lines), "
                             f"got {test_interval}")
        self.every_n_steps = every_n_steps
        self.test_interval = test_interval
        self._test_progress: ProgressLog | None = None
        self._started = time.perf_counter()
        self._first_step: int | None = None
        self._first_batch: int | None = None
        self._position = 0  # batches of the current epoch behind us
        self._clock: tuple[int, float] | None = None  # (position, time) at the end of the epoch's first batch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started = time.perf_counter()
        self._first_step = self._first_batch = None
        self._position = 0
        self._clock = None

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        # Read at the epoch's first batch, not at its start: a run resumed in the middle of an epoch starts at
        # a later batch, and its step counter is only restored once training begins.
        if self._first_batch is None:
            self._first_batch, self._first_step = batch_idx, trainer.global_step

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        position = batch_idx + 1  # batches of this epoch behind us, those before a resume included
        self._position = position
        if self._clock is None:
            self._clock = (position, time.perf_counter())
        if (not self.every_n_steps or position % self.every_n_steps or not trainer.is_global_zero
                or trainer.progress_bar_callback is not None):
            return
        total = trainer.num_training_batches
        line = f"epoch {trainer.current_epoch + 1}, step {position}/{total} of the epoch"
        clocked_from, clocked_at = self._clock
        timed = position - clocked_from  # batches since the first one of this process in this epoch
        if timed >= MIN_TIMED_STEPS:
            rate = timed / max(time.perf_counter() - clocked_at, 1e-9)
            left = f", about {(total - position) / rate:.0f} s left in the epoch" if isinstance(total, int) else ""
            line += f", {rate:.2f} steps/s{left}"
        shown = format_metrics(dict(trainer.callback_metrics), ("train/loss_total", "train/loss"))
        log.info(f"{line}; {shown}" if shown else line)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # A validation at the end of the epoch is shown in the epoch's line; one inside it would otherwise only
        # reach the loggers.
        total = trainer.num_training_batches
        inside_epoch = isinstance(total, int) and 0 < self._position < total
        if (trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING or not trainer.is_global_zero
                or not inside_epoch):
            return
        shown = format_metrics(dict(trainer.callback_metrics), SHOWN_VAL_METRICS)
        line = (f"validation at step {trainer.global_step} (epoch {trainer.current_epoch + 1}, "
                f"batch {self._position}/{total})")
        log.info(f"{line}; {shown}" if shown else line)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        total = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else "?"
        first = trainer.global_step if self._first_step is None else self._first_step
        steps = trainer.global_step - first
        resumed = f", resumed at batch {self._first_batch + 1}" if self._first_batch else ""
        line = (f"epoch {trainer.current_epoch + 1}/{total}: {steps} step{'' if steps == 1 else 's'} in "
                f"{time.perf_counter() - self._started:.0f} s (step {trainer.global_step}{resumed})")
        shown = format_metrics(dict(trainer.callback_metrics))
        log.info(f"{line}; {shown}" if shown else line)

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._test_progress = None
        if not trainer.is_global_zero or trainer.progress_bar_callback is not None:
            return
        total = sum(n for n in trainer.num_test_batches if isinstance(n, int))
        if total > 0:
            self._test_progress = ProgressLog(log, "testing", total, unit="batches", interval=self.test_interval)

    def on_test_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                          batch_idx: int, dataloader_idx: int = 0) -> None:
        if self._test_progress is not None:
            self._test_progress.update()


def progress_bar_setting(requested: Any, stream: Any = None) -> bool | None:
    """The Trainer's ``enable_progress_bar``: off when the config asks for it but ``stream`` (standard error) is
    not a terminal, where the bar's redraws pile up unread; otherwise as requested (None = Lightning's default)."""
    stream = sys.stderr if stream is None else stream
    if requested is False:
        return False
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and not isatty():
        return False
    return requested
