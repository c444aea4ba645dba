"""Progress of long steps outside the Trainer (SynthCrowd generation, caching predicted centres) as log lines.

A progress bar redrawn in place shows nothing useful in a log file or a batch job's output until it ends; a few
log lines do: ``generating SynthCrowd train: 240/800 images (30 %), 4.1/s, about 2 min 17 s left``. Written by
hand because the bars of rich and tqdm are terminal-first and Lightning's only covers its own loops.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    minutes, secs = divmod(seconds, 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


class ProgressLog:
    """Logs ``done/total`` with the rate and the time left, at most every ``fraction`` of the work or every
    ``interval`` seconds (whichever comes first), and once at the end.

    Args:
        logger: where the lines go (INFO).
        what: what is being done, e.g. ``generating SynthCrowd train``.
        total: units of work (> 0).
        unit: their name, e.g. ``images``.
        fraction: log at least every this share of ``total``.
        interval: and at least every this many seconds.
        clock: seconds, monotonic (for tests).
    """

    def __init__(self, logger: logging.Logger, what: str, total: int, unit: str = "items", fraction: float = 0.1,
                 interval: float = 30.0, clock: Callable[[], float] = time.perf_counter) -> None:
        self.logger, self.what, self.total, self.unit = logger, what, max(int(total), 1), unit
        self.fraction, self.interval, self.clock = fraction, interval, clock
        self.done = 0
        self.started = self.last_time = clock()
        self.last_done = 0

    def update(self, count: int = 1) -> None:
        """``count`` more units done; logs a line when one is due."""
        self.done += count
        now = self.clock()
        finished = self.done >= self.total
        due = (self.done - self.last_done >= self.fraction * self.total) or (now - self.last_time >= self.interval)
        if finished or due:
            self.logger.info(self.line(now))
            self.last_time, self.last_done = now, self.done

    def line(self, now: float) -> str:
        """The progress line at time ``now``."""
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        share = 100.0 * self.done / self.total
        text = f"{self.what}: {self.done}/{self.total} {self.unit} ({share:.0f} %), {rate:.1f}/s"
        if self.done >= self.total:
            return f"{text}, done in {_duration(elapsed)}"
        return f"{text}, about {_duration((self.total - self.done) / max(rate, 1e-9))} left"
