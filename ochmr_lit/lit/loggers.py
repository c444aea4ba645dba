"""A CSV logger that continues a run folder's ``metrics.csv`` when the run is resumed there.

Lightning's ``CSVLogger`` deletes an existing ``metrics.csv`` when it starts, so a run resumed in its own folder
(``ckpt_path=last``) would lose every row logged before the interruption. This one keeps them: at its first save it
drops only the rows the resumed run logs again (the tail logged after the checkpoint it resumed from, i.e. rows at
or after the first step it writes), so each step appears once and the curve is continuous. No library offers this
(Lightning's writer always starts afresh), hence the few lines here.
"""

from __future__ import annotations

import csv
import os
from typing import Any

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment


def _step(row: dict[str, str]) -> float | None:
    value = row.get("step")
    return float(value) if value not in (None, "") else None


class ContinuingExperimentWriter(ExperimentWriter):
    """Lightning's CSV writer, appending to the rows an earlier run left in ``metrics.csv``."""

    def __init__(self, log_dir: str) -> None:
        super().__init__(log_dir=log_dir)
        self._previous: list[dict[str, str]] | None = None
        if os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as file:
                reader = csv.DictReader(file)
                self._previous = list(reader)
                self.metrics_keys = sorted(reader.fieldnames or [])

    def _check_log_dir_exists(self) -> None:
        """Keep what an interrupted run logged (Lightning deletes it here)."""

    def save(self) -> None:
        if self._previous is not None and self.metrics:
            first = min(float(m["step"]) for m in self.metrics)
            kept = [row for row in self._previous if (_step(row) is None or _step(row) < first)]
            self.metrics_keys = sorted(set(self.metrics_keys).union(*self.metrics))
            tmp = f"{self.metrics_file_path}.tmp{os.getpid()}"
            with open(tmp, "w", newline="") as file:
                writer = csv.DictWriter(file, fieldnames=self.metrics_keys)
                writer.writeheader()
                writer.writerows(kept)
            os.replace(tmp, self.metrics_file_path)
            self._previous = None
        super().save()


class ContinuingCSVLogger(CSVLogger):
    """``CSVLogger`` (same arguments) whose ``metrics.csv`` survives a resume in the same folder."""

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        if self._experiment is not None:
            return self._experiment
        self._fs.makedirs(self.root_dir, exist_ok=True)
        self._experiment = ContinuingExperimentWriter(log_dir=self.log_dir)
        return self._experiment
