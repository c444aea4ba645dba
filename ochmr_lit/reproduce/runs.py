"""The runs of a reproduction table: train one (or reuse it when finished), evaluate it, diagnose its context.

Every run lives in ``<out>/<preset>/runs/<row>/seed<k>/`` (a normal run folder: checkpoints, logs,
``results/``) with two small files beside: ``job.json`` (what it trains) and ``done.json`` (its final
checkpoint, metrics and wall time), written last and atomically. A run asked for again is reused when finished,
resumed from its ``last.ckpt`` when interrupted, and refused when its folder's ``job.json`` describes other
settings. Runs go through the same :func:`~ochmr_lit.runner.run_fit` / :func:`~ochmr_lit.runner.run_evaluate`
as ``python -m ochmr_lit.fit`` / ``evaluate``.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from ochmr_lit.errors import ConfigError, MissingFileError, OchmrError
from ochmr_lit.eval.results_files import atomic_write_text
from ochmr_lit.lit.checkpoints import load_context_checkpoint
from ochmr_lit.reproduce.tables import PRESET_SPECS, Row
from ochmr_lit.runner import check_fit_config, run_evaluate, run_fit
from ochmr_lit.runner.command_line import compose_command_line, pass_trainer_arguments

log = logging.getLogger(__name__)

#: Context modes of the diagnostic rows (besides each OCHMR row's own, ``true``, evaluation).
DIAGNOSTIC_MODES = ("shuffled", "zeroed")


def diagnostic_modes(row: Row) -> tuple[str, ...]:
    """The diagnostic modes of an OCHMR row: a row on predicted context also gets ``exact`` (the annotations' maps:
    what a perfect context estimator would give it), first; for a GT-context row that is its own evaluation."""
    return ("exact", *DIAGNOSTIC_MODES) if row.needs_context_estimator else DIAGNOSTIC_MODES


def compose(config_name: str, overrides: Sequence[str]) -> DictConfig:
    """A ``fit`` / ``evaluate`` config composed as the command line would (``run_dir`` given explicitly): any
    ``trainer.<Trainer argument>`` is accepted, and an unknown key or config option is a :class:`ConfigError`
    naming it (:func:`~ochmr_lit.runner.command_line.compose_command_line`)."""
    cfg, message = compose_command_line(config_name, pass_trainer_arguments(list(overrides)))
    if message is not None:
        raise ConfigError(message)
    if cfg is None:
        raise ConfigError(f"{config_name} with {list(overrides)}: a table's run is composed from key=value overrides, "
                          "not Hydra's own flags, and not inside a running Hydra application")
    return cfg


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def _trained_nothing(run_dir: Path) -> bool:
    """Whether a run folder holds no trained state: neither ``done.json`` nor a checkpoint."""
    return not (run_dir / "done.json").exists() and not any((run_dir / "checkpoints").glob("*.ckpt"))


def _check_job(run_dir: Path, job: dict[str, Any]) -> None:
    """Write ``job.json``, or make sure the one there describes the same run (the settings of a run that stopped
    before it trained anything, e.g. at a mistyped override, are replaced: nothing is lost)."""
    path = run_dir / "job.json"
    if path.is_file():
        existing = read_json(path)
        if existing == job:
            return
        if not _trained_nothing(run_dir):
            raise ConfigError(f"{path}: this run folder holds a run of other settings ({existing}); delete "
                              f"{run_dir} or choose another out= for the new settings ({job})")
        log.info("%s: replacing the settings of a run that trained nothing (%s)", path, existing)
    atomic_write_text(path, json.dumps(job, indent=2))


class TableRunner:
    """Runs (or reuses) the trainings and evaluations of tables under one preset and output folder.

    Args:
        preset: ``cpu`` or ``paper``.
        out: the output folder (``<out>/<preset>/...``).
        overrides: Hydra overrides for every training run, after the preset's budget.
        budget: the preset's training budget of the regressor runs (the same for every row).
        context_budget: the preset's training budget of its context-estimator run.
        context_overrides, regressor_overrides: Hydra overrides for the context-estimator run / the regressor
            runs only, after ``overrides``.
        context_checkpoint: a trained context estimator the rows with predicted context read instead of one this
            runner trains (``context_budget`` and ``context_overrides`` then do not apply).
    """

    def __init__(self, preset: str, out: str | Path, overrides: Sequence[str] = (), budget: Sequence[str] = (),
                 context_budget: Sequence[str] = (), context_overrides: Sequence[str] = (),
                 regressor_overrides: Sequence[str] = (), context_checkpoint: str | Path | None = None):
        if preset not in PRESET_SPECS:
            raise KeyError(f"preset={preset!r}: unknown preset; choose one of {', '.join(PRESET_SPECS)}")
        self.preset, self.spec = preset, PRESET_SPECS[preset]
        self.root = Path(out) / preset
        self.runs_dir = self.root / "runs"
        self.budget = [*budget]
        self.context_budget = [*context_budget]
        self.overrides = [*overrides]
        self.context_overrides = [*context_overrides]
        self.regressor_overrides = [*regressor_overrides]
        self.given_context_checkpoint = str(context_checkpoint) if context_checkpoint else None

    def settings(self, overrides: Sequence[str], context: bool = False) -> list[str]:
        """The overrides a run trains with, and its evaluations read the data with: the row's own, the preset's
        budget, the user's for every run, then the user's for its kind (context estimator or regressor); later
        ones win."""
        budget = self.context_budget if context else self.budget
        kind = self.context_overrides if context else self.regressor_overrides
        return [*overrides, *budget, *self.overrides, *kind]

    def check_settings(self, rows: Sequence[Row], seeds: Sequence[int]) -> None:
        """Compose and check the settings of every run the table trains (:func:`~ochmr_lit.runner.check_fit_config`)
        before the first one starts: a mistake in the budget or in the overrides of the context estimator or of a
        later row stops the table at once, not after hours of training."""
        pending = not self.given_context_checkpoint
        jobs = []
        if pending and any(row.needs_context_estimator for row in rows):
            jobs.append(("context", self.spec.context_experiment, self.settings([], context=True), False))
        for row in rows:
            overrides = self.row_overrides(row, stand_in=True)
            jobs.append((row.key, row.experiment, self.settings(overrides), pending and row.needs_context_estimator))
        for key, experiment, overrides, context_pending in jobs:
            try:
                cfg = compose("fit", [f"experiment={experiment}", *overrides, f"seed={seeds[0]}",
                                      f"run_dir={self.run_dir(key, seeds[0])}", f"paths.output_dir={self.runs_dir}"])
                check_fit_config(cfg, context_estimator_pending=context_pending)
            except OchmrError as error:  # the same class, saying which of the table's runs it is
                raise type(error)(f"the table's {key} run (experiment={experiment}): {error}") from None

    def run_dir(self, key: str, seed: int) -> Path:
        return self.runs_dir / key / f"seed{seed}"

    def train(self, key: str, experiment: str, seed: int, overrides: Sequence[str], context: bool = False
              ) -> dict[str, Any]:
        """Train one run (or reuse it when finished); returns its ``done.json`` content.

        ``context``: a context-estimator run (``context_budget`` and ``context_overrides`` apply, not the
        regressor budget).
        """
        run_dir = self.run_dir(key, seed)
        done = run_dir / "done.json"
        job = {"experiment": experiment, "seed": int(seed), "overrides": self.settings(overrides, context)}
        run_dir.mkdir(parents=True, exist_ok=True)
        _check_job(run_dir, job)
        if done.is_file():
            log.info("reusing %s (%s)", run_dir, done)
            return read_json(done)
        last = run_dir / "checkpoints" / "last.ckpt"
        resume = [f"ckpt_path={last}"] if last.is_file() else []
        cfg = compose("fit", [f"experiment={experiment}", *job["overrides"], f"seed={seed}", f"run_dir={run_dir}",
                              f"paths.output_dir={self.runs_dir}", *resume])
        log.info("training %s (seed %d) -> %s%s", key, seed, run_dir, " (resumed)" if resume else "")
        started = time.perf_counter()
        outcome = run_fit(cfg)
        record = {"checkpoint": str(outcome["checkpoint"]), "seconds": round(time.perf_counter() - started, 1),
                  "training_seconds": outcome.get("training_seconds"),
                  "metrics": (outcome.get("results") or {}).get("metrics"),
                  "results": str(run_dir / "results") if outcome.get("results") else None}
        atomic_write_text(done, json.dumps(record, indent=2))
        return record

    def context_checkpoint(self) -> str:
        """The given context estimator, or the preset's (trained once, seed 0)."""
        if self.given_context_checkpoint:
            return self.given_context_checkpoint
        return self.train("context", self.spec.context_experiment, 0, [], context=True)["checkpoint"]

    def row_overrides(self, row: Row, stand_in: bool = False) -> list[str]:
        """A row's own overrides with ``@CONTEXT_CHECKPOINT@`` filled in by the table's context estimator
        (:meth:`context_checkpoint`: trained first when it is not yet).

        ``stand_in``: fill in the path the table's estimator will have instead, training nothing (for checking
        settings before the first run; the file is never read).
        """
        if not row.needs_context_estimator:
            return list(row.overrides)
        if stand_in:
            checkpoint = self.given_context_checkpoint or str(self.run_dir("context", 0) / "checkpoints" / "last.ckpt")
        else:
            checkpoint = self.context_checkpoint()
        return [o.replace("@CONTEXT_CHECKPOINT@", checkpoint) for o in row.overrides]

    def train_row(self, row: Row, seed: int) -> dict[str, Any]:
        return self.train(row.key, row.experiment, seed, self.row_overrides(row))

    def evaluate(self, row: Row, seed: int, checkpoint: str, data: str, protocol: str) -> dict[str, Any]:
        """Evaluate a trained row with one protocol (paper preset); reused when done."""
        eval_dir = self.run_dir(row.key, seed) / f"eval_{protocol}"
        done = eval_dir / "done.json"
        if done.is_file():
            return read_json(done)
        cfg = compose("evaluate", [f"experiment={row.experiment}", f"data={data}", f"protocol={protocol}",
                                   f"ckpt_path={checkpoint}", f"run_dir={eval_dir}", f"seed={seed}"])
        started = time.perf_counter()
        outcome = run_evaluate(cfg)
        record = {"checkpoint": checkpoint, "seconds": round(time.perf_counter() - started, 1),
                  "metrics": outcome["results"]["metrics"], "results": str(eval_dir / "results")}
        atomic_write_text(done, json.dumps(record, indent=2))
        return record

    def diagnose(self, row: Row, seed: int, checkpoint: str, modes: Sequence[str] | None = None
                 ) -> dict[str, dict[str, Any]]:
        """Evaluate a trained OCHMR row with other context maps (``context_modes``; cpu preset); reused when done.

        The evaluation reads the data as the row trained on (its overrides, the budget, the user's). ``modes``
        defaults to :func:`diagnostic_modes`. A finished evaluation that lacks one of them or was made with other
        settings (written by an earlier version) is run again. Returns mode -> test metrics
        (``ochmr_lit.eval.context_modes``).
        """
        modes = tuple(modes) if modes is not None else diagnostic_modes(row)
        eval_dir = self.run_dir(row.key, seed) / "eval_context"
        done = eval_dir / "done.json"
        overrides = self.settings(self.row_overrides(row))
        if done.is_file():
            finished = read_json(done)
            if finished.get("overrides") == overrides and all(m in finished["context_diagnostics"] for m in modes):
                return finished["context_diagnostics"]
            log.info("evaluating the context diagnostics of %s (seed %d) again: %s", row.key, seed,
                     "made with other settings" if finished.get("overrides") != overrides else "a mode is missing")
        cfg = compose("evaluate", [f"experiment={row.experiment}", *overrides, f"ckpt_path={checkpoint}",
                                   f"run_dir={eval_dir}", f"seed={seed}", f"context_modes=[{','.join(modes)}]"])
        started = time.perf_counter()
        outcome = run_evaluate(cfg)
        record = {"checkpoint": checkpoint, "overrides": overrides, "seconds": round(time.perf_counter() - started, 1),
                  "context_diagnostics": outcome["results"]["context_diagnostics"],
                  "results": str(eval_dir / "results")}
        atomic_write_text(done, json.dumps(record, indent=2))
        return record["context_diagnostics"]


def machine_description() -> str:
    """The machine a table ran on, in one line."""
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"
    return (f"{platform.machine()}, {os.cpu_count()} CPU cores{gpu}, Python {platform.python_version()}, "
            f"torch {torch.__version__}, {torch.get_num_threads()} torch threads")


def given_context_checkpoint(path: Any) -> str | None:
    """``context_checkpoint=<file>`` checked before any run starts: it exists and holds a context estimator."""
    if not path:
        return None
    if not Path(str(path)).is_file():
        raise MissingFileError(f"context_checkpoint={path}: no such file; give a checkpoint of a trained context "
                               "estimator (python -m ochmr_lit.fit experiment=synthcrowd_context, "
                               "<run>/checkpoints/*.ckpt), or drop the key to train one")
    load_context_checkpoint(path)  # refuses a regressor's checkpoint or foreign weights, naming the file
    return str(Path(str(path)).resolve())
