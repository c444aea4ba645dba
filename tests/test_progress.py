"""Progress lines of long steps outside the Trainer: when they are logged and what they say."""

import logging

from ochmr_lit.progress import ProgressLog


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_lines_come_every_tenth_and_at_the_end_with_rate_and_time_left(caplog):
    clock = Clock()
    progress = ProgressLog(logging.getLogger("test.progress"), "generating SynthCrowd train", 100, "images",
                           interval=1e9, clock=clock)
    with caplog.at_level(logging.INFO, logger="test.progress"):
        for _ in range(100):
            clock.now += 0.5  # 2 images per second
            progress.update()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 10  # at 10, 20, ..., 100
    assert lines[0] == "generating SynthCrowd train: 10/100 images (10 %), 2.0/s, about 45 s left"
    assert lines[-1] == "generating SynthCrowd train: 100/100 images (100 %), 2.0/s, done in 50 s"


def test_a_slow_step_logs_after_the_interval_even_below_a_tenth(caplog):
    clock = Clock()
    progress = ProgressLog(logging.getLogger("test.progress"), "predicting", 1000, "crops", interval=30.0,
                           clock=clock)
    with caplog.at_level(logging.INFO, logger="test.progress"):
        clock.now = 31.0
        progress.update(5)
        clock.now = 32.0
        progress.update(5)  # neither a tenth nor 30 s since the last line
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["predicting: 5/1000 crops (0 %), 0.2/s, about 102 min 49 s left"]
