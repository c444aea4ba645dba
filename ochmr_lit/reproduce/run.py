"""Train and evaluate the rows of a reproduction table, then write it (Markdown + JSON).

Runs are trained seed by seed (every row of the first seed, then of the next; :mod:`ochmr_lit.reproduce.runs`
trains, reuses and resumes each), and a mesh table with seeds left to train writes what its finished seeds show
as ``table.partial.md`` / ``.json``, so an interrupted table of several hours already compares every row. The
cells come from :mod:`~ochmr_lit.reproduce.mesh_table` or :mod:`~ochmr_lit.reproduce.sweep_table`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from ochmr_lit.errors import ConfigError
from ochmr_lit.eval.results_files import atomic_write_text
from ochmr_lit.inference.run import resolve_device
from ochmr_lit.reproduce.formatting import format_table_document
from ochmr_lit.reproduce.mesh_table import mesh_table
from ochmr_lit.reproduce.runs import TableRunner, given_context_checkpoint, machine_description
from ochmr_lit.reproduce.sweep_table import given_detections, sweep_table
from ochmr_lit.reproduce.tables import Row, default_seeds, table_rows

log = logging.getLogger(__name__)


def train_seed_major(runner: TableRunner, rows: Sequence[Row], seeds: Sequence[int],
                     on_seeds_done: Callable[[list[int]], None] | None = None) -> None:
    """Train every row for the first seed, then every row for the next, ... (finished runs are reused).

    ``on_seeds_done(seeds so far)`` is called after each seed's last row: a table interrupted after its first seed
    holds every row once instead of one row's every seed.
    """
    for count, seed in enumerate(seeds, start=1):
        for index, row in enumerate(rows, start=1):
            log.info("run %d of %d: %s, seed %d", (count - 1) * len(rows) + index, len(rows) * len(seeds), row.key,
                     seed)
            runner.train_row(row, seed)
        if on_seeds_done is not None:
            on_seeds_done(list(seeds[:count]))


class TableDocuments:
    """A table's files in ``folder``: ``table.md`` / ``table.json`` once every seed is trained, ``table.partial.*``
    while some are left (removed by the whole table). Each records ``header`` (the settings) and the wall time."""

    def __init__(self, folder: Path, header: dict[str, Any], seeds: Sequence[int]) -> None:
        self.folder, self.header, self.seeds = folder, header, list(seeds)
        self.started = time.perf_counter()

    def write(self, body: dict[str, Any], done_seeds: Sequence[int]) -> dict[str, Any]:
        """Write the table of ``done_seeds`` with the cells ``body``; returns what its JSON file holds."""
        done_seeds = list(done_seeds)
        partial = len(done_seeds) < len(self.seeds)
        result = {**self.header, "seeds": done_seeds, **({"partial_of": self.seeds} if partial else {}),
                  "machine": machine_description(), "seconds": round(time.perf_counter() - self.started, 1), **body}
        stem = "table.partial" if partial else "table"
        atomic_write_text(self.folder / f"{stem}.json", json.dumps(result, indent=2))
        atomic_write_text(self.folder / f"{stem}.md", format_table_document(result))
        if partial:
            log.info("every row trained for seeds %s: %s (the whole table follows once seeds %s are)", done_seeds,
                     self.folder / "table.partial.md", self.seeds)
        else:
            for name in ("table.partial.md", "table.partial.json"):  # the whole table supersedes them
                (self.folder / name).unlink(missing_ok=True)
        return result


def run_table(cfg: DictConfig) -> dict[str, Any]:
    """Run the table ``cfg.table`` (see ``configs/reproduce.yaml``); returns what ``table.json`` holds."""
    table, preset = str(cfg.table), str(cfg.preset)
    rows = table_rows(table, preset)
    seeds = [int(s) for s in (cfg.seeds if cfg.seeds is not None else default_seeds(table))]
    if not seeds:
        raise ConfigError("seeds=[]: give at least one seed (e.g. seeds=[0,1])")
    resolve_device(cfg.get("device"))  # the detector sweep's inference device, checked before hours of training
    budget = list((cfg.get("budget") or {}).get(preset) or [])
    context_budget = list((cfg.get("context_budget") or {}).get(preset) or [])
    context_checkpoint = given_context_checkpoint(cfg.get("context_checkpoint"))
    if context_checkpoint and cfg.context_overrides:
        raise ConfigError(f"context_overrides={list(cfg.context_overrides)} do not apply to a given "
                          "context_checkpoint (it is not trained again); drop one of the two")
    runner = TableRunner(preset, cfg.out, overrides=list(cfg.overrides or []), budget=budget,
                         context_budget=context_budget,
                         context_overrides=list(cfg.context_overrides or []),
                         regressor_overrides=list(cfg.regressor_overrides or []),
                         context_checkpoint=context_checkpoint)
    if table == "detector_sweep" and preset == "paper":  # the user's detection files, before hours of training
        for dataset in runner.spec.sweep_datasets:
            given_detections(cfg, dataset)
    documents = TableDocuments(runner.root / table, {
        "table": table, "preset": preset, "budget": runner.budget, "context_budget": runner.context_budget,
        "context_checkpoint": context_checkpoint, "overrides": runner.overrides,
        "context_overrides": runner.context_overrides, "regressor_overrides": runner.regressor_overrides}, seeds)
    diagnose = bool(cfg.get("context_diagnostics")) and preset == "cpu" and table == "occlusion"
    runner.check_settings(rows, seeds)

    def write_partial(done_seeds: list[int]) -> None:
        if len(done_seeds) < len(seeds) and table != "detector_sweep":
            documents.write(mesh_table(runner, table, rows, done_seeds, context_diagnostics=diagnose), done_seeds)

    train_seed_major(runner, rows, seeds, write_partial)
    if table == "detector_sweep":
        body = sweep_table(runner, cfg, rows, seeds)
    else:
        body = mesh_table(runner, table, rows, seeds, context_diagnostics=diagnose)
    result = documents.write(body, seeds)
    print(format_table_document(result))
    return result
