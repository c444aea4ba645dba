"""Stores the resolved run configuration and protocol inside every checkpoint."""

from __future__ import annotations

from typing import Any


class RunConfigMixin:
    """Mixin for LightningModules: ``run_config`` (the resolved Hydra config as a plain dict) is written
    to ``checkpoint["run_config"]`` on save and restored on load, so a checkpoint says how it was made; so are
    the reports of the starting weights (``pretrained_reports``, one line per ``model.pretrained`` source)."""

    run_config: dict[str, Any] | None = None
    pretrained_reports: list[str] | None = None

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.run_config is not None:
            checkpoint["run_config"] = self.run_config
        if self.pretrained_reports:
            checkpoint["pretrained"] = list(self.pretrained_reports)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.run_config = checkpoint.get("run_config", self.run_config)
        self.pretrained_reports = checkpoint.get("pretrained", self.pretrained_reports)
