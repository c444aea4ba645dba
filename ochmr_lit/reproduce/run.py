"""Train and evaluate the rows of a reproduction table, then write it (Markdown + JSON).

Every run lives in ``<out>/<preset>/runs/<row>/seed<k>/`` (a normal run folder: checkpoints, logs,
``results/``) with two small files beside: ``job.json`` (what it trains) and ``done.json`` (its final
checkpoint, metrics and wall time), written last and atomically. A table that is run again reuses every
finished run, resumes an interrupted one from its ``last.ckpt``, and refuses a folder whose ``job.json``
describes other settings. Runs are trained seed by seed (every row of the first seed, then of the next), and
a mesh table with seeds left to train writes what its finished seeds show as ``table.partial.md`` / ``.json``,
so an interrupted table of several hours already compares every row. Runs go through the same
:func:`~ochmr_lit.runner.run_fit` / :func:`~ochmr_lit.runner.run_evaluate` as ``python -m ochmr_lit.fit`` /
``evaluate``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from ochmr_lit.errors import ConfigError, MissingFileError
from ochmr_lit.eval.paired_gain import paired_gain, paired_person_errors
from ochmr_lit.eval.references import REFERENCE_LABELS, REFERENCES
from ochmr_lit.eval.results_files import atomic_write_text
from ochmr_lit.lit.checkpoints import load_context_checkpoint
from ochmr_lit.reproduce.formatting import CLAIM_BUCKETS, format_table_document
from ochmr_lit.reproduce.simulated_detector import write_simulated_detections
from ochmr_lit.reproduce.sweep import sweep_checkpoint
from ochmr_lit.reproduce.tables import PRESET_SPECS, Row, default_seeds, table_rows
from ochmr_lit.runner import run_evaluate, run_fit

log = logging.getLogger(__name__)

CONFIG_MODULE = "ochmr_lit.configs"

#: Context modes of the diagnostic rows (besides each OCHMR row's own, ``true``, evaluation).
DIAGNOSTIC_MODES = ("shuffled", "zeroed")


def compose(config_name: str, overrides: Sequence[str]) -> DictConfig:
    """A ``fit`` / ``evaluate`` config composed as the command line would (``run_dir`` given explicitly)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides))


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def _check_job(run_dir: Path, job: dict[str, Any]) -> None:
    """Write ``job.json``, or make sure the one there describes the same run."""
    path = run_dir / "job.json"
    if path.is_file():
        existing = _read_json(path)
        if existing != job:
            raise ConfigError(f"{path}: this run folder holds a run of other settings ({existing}); delete "
                              f"{run_dir} or choose another out= for the new settings ({job})")
        return
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
        # the row's own settings, the preset's budget, then the user's: later ones win
        budget = self.context_budget if context else self.budget
        kind = self.context_overrides if context else self.regressor_overrides
        job = {"experiment": experiment, "seed": int(seed), "overrides": [*overrides, *budget, *self.overrides, *kind]}
        run_dir.mkdir(parents=True, exist_ok=True)
        _check_job(run_dir, job)
        if done.is_file():
            log.info("reusing %s (%s)", run_dir, done)
            return _read_json(done)
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

    def train_row(self, row: Row, seed: int) -> dict[str, Any]:
        overrides = list(row.overrides)
        if row.needs_context_estimator:
            checkpoint = self.context_checkpoint()
            overrides = [o.replace("@CONTEXT_CHECKPOINT@", checkpoint) for o in overrides]
        return self.train(row.key, row.experiment, seed, overrides)

    def evaluate(self, row: Row, seed: int, checkpoint: str, data: str, protocol: str) -> dict[str, Any]:
        """Evaluate a trained row with one protocol (paper preset); reused when done."""
        eval_dir = self.run_dir(row.key, seed) / f"eval_{protocol}"
        done = eval_dir / "done.json"
        if done.is_file():
            return _read_json(done)
        cfg = compose("evaluate", [f"experiment={row.experiment}", f"data={data}", f"protocol={protocol}",
                                   f"ckpt_path={checkpoint}", f"run_dir={eval_dir}", f"seed={seed}"])
        started = time.perf_counter()
        outcome = run_evaluate(cfg)
        record = {"checkpoint": checkpoint, "seconds": round(time.perf_counter() - started, 1),
                  "metrics": outcome["results"]["metrics"], "results": str(eval_dir / "results")}
        atomic_write_text(done, json.dumps(record, indent=2))
        return record

    def diagnose(self, row: Row, seed: int, checkpoint: str, modes: Sequence[str] = DIAGNOSTIC_MODES
                 ) -> dict[str, dict[str, Any]]:
        """Evaluate a trained OCHMR row with other context maps (``context_modes``; cpu preset); reused when done.

        Returns mode -> test metrics (``ochmr_lit.eval.context_modes``: another person's maps, zero maps).
        """
        eval_dir = self.run_dir(row.key, seed) / "eval_context"
        done = eval_dir / "done.json"
        if done.is_file():
            return _read_json(done)["context_diagnostics"]
        overrides = list(row.overrides)
        if row.needs_context_estimator:
            overrides = [o.replace("@CONTEXT_CHECKPOINT@", self.context_checkpoint()) for o in overrides]
        cfg = compose("evaluate", [f"experiment={row.experiment}", *overrides, *self.overrides,
                                   *self.regressor_overrides, f"ckpt_path={checkpoint}", f"run_dir={eval_dir}",
                                   f"seed={seed}", f"context_modes=[{','.join(modes)}]"])
        started = time.perf_counter()
        outcome = run_evaluate(cfg)
        record = {"checkpoint": checkpoint, "seconds": round(time.perf_counter() - started, 1),
                  "context_diagnostics": outcome["results"]["context_diagnostics"],
                  "results": str(eval_dir / "results")}
        atomic_write_text(done, json.dumps(record, indent=2))
        return record["context_diagnostics"]


def _summary(values: Sequence[float]) -> dict[str, Any]:
    """Mean, sample standard deviation (0 for one seed) and the values, ignoring NaN."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not finite:
        return {"mean": math.nan, "sd": math.nan, "values": [float("nan") if v is None else float(v) for v in values]}
    sd = float(np.std(finite, ddof=1)) if len(finite) > 1 else 0.0
    return {"mean": float(np.mean(finite)), "sd": sd, "values": [float(v) for v in values]}


#: Columns of the CPU (SynthCrowd) mesh tables: (header, metric key, scale). Errors in mm, AP in %.
OCCLUSION_COLUMNS = (
    ("MPJPE none", "mpjpe_none", 1.0), ("MPJPE partial", "mpjpe_partial", 1.0),
    ("MPJPE heavy", "mpjpe_heavy", 1.0), ("MPJPE distractor", "mpjpe_distractor", 1.0), ("MPJPE all", "mpjpe", 1.0),
    ("PA-MPJPE none", "pa_mpjpe_none", 1.0), ("PA-MPJPE partial", "pa_mpjpe_partial", 1.0),
    ("PA-MPJPE heavy", "pa_mpjpe_heavy", 1.0), ("PA-MPJPE distractor", "pa_mpjpe_distractor", 1.0),
    ("PA-MPJPE all", "pa_mpjpe", 1.0), ("AP", "kp_AP", 100.0),
)
DEPTH_COLUMNS = (
    ("MPJPE all", "mpjpe", 1.0), ("PA-MPJPE all", "pa_mpjpe", 1.0), ("MPJPE heavy", "mpjpe_heavy", 1.0),
    ("PA-MPJPE heavy", "pa_mpjpe_heavy", 1.0), ("MPJPE distractor", "mpjpe_distractor", 1.0),
    ("PA-MPJPE distractor", "pa_mpjpe_distractor", 1.0), ("AP", "kp_AP", 100.0),
)
#: The people counts a table reports per bucket (keys of the test metrics).
BUCKET_COUNTS = ("count_none", "count_partial", "count_heavy", "count_distractor")


def machine_description() -> str:
    """The machine a table ran on, in one line."""
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"
    return (f"{platform.machine()}, {os.cpu_count()} CPU cores{gpu}, Python {platform.python_version()}, "
            f"torch {torch.__version__}, {torch.get_num_threads()} torch threads")


def _references_in(results: str | None) -> dict[str, dict[str, Any]]:
    """The ``references`` block (reference name -> metrics) of a results folder's ``metrics.json``, or {}."""
    path = Path(results) / "metrics.json" if results else None
    if path is None or not path.is_file():
        return {}
    return _read_json(path).get("references") or {}


def _reference_metrics(per_seed: dict[str, Any], evaluated: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each reference's metrics under the table's metric keys, from one run's test (and evaluation) results.

    ``per_seed``: the run (its ``results`` folder); ``evaluated``: metric key (``<protocol>/<metric>``) -> the
    record of the evaluation that measured it (paper preset). References missing there are left out.
    """
    own = _references_in(per_seed.get("results"))
    out = {name: dict(own[name]) for name in REFERENCES if name in own}
    for key, record in evaluated.items():
        theirs = _references_in(record.get("results"))
        metric = key.rpartition("/")[2]
        for name in REFERENCES:
            if metric in theirs.get(name, {}):
                out.setdefault(name, {})[key] = theirs[name][metric]
    return out


def _reference_rows(references: dict[str, dict[str, Any]], columns: list[tuple[str, str, float]]
                    ) -> list[dict[str, Any]]:
    """Table rows of the reference predictions (``constant``, ``oracle``), one value each (no seed spread)."""
    return [{"key": name, "label": REFERENCE_LABELS[name], "experiment": None, "context": "-", "depths": [],
             "reference": True, "runs": [],
             "cells": {key: _summary([references[name].get(key, math.nan) * scale]) for _, key, scale in columns},
             "counts": {k: references[name].get(k) for k in BUCKET_COUNTS}}
            for name in REFERENCES if name in references]


def _diagnostic_rows(runner: TableRunner, row: Row, per_seed: list[dict[str, Any]],
                     columns: list[tuple[str, str, float]]) -> list[dict[str, Any]]:
    """The rows of an OCHMR row evaluated with other context maps (one per mode of :data:`DIAGNOSTIC_MODES`)."""
    by_mode: dict[str, list[dict[str, Any]]] = {mode: [] for mode in DIAGNOSTIC_MODES}
    for run in per_seed:
        diagnostics = runner.diagnose(row, run["seed"], run["checkpoint"])
        for mode in DIAGNOSTIC_MODES:
            by_mode[mode].append({"seed": run["seed"], "metrics": diagnostics[mode]})
    return [{"key": f"{row.key}@{mode}", "label": f"{row.label}, context {mode}", "experiment": row.experiment,
             "context": f"{row.context}, {mode}", "depths": list(row.depths), "diagnostic": mode,
             "cells": {key: _summary([s["metrics"].get(key, math.nan) * scale for s in runs])
                       for _, key, scale in columns},
             "runs": runs, "counts": {k: runs[0]["metrics"].get(k) for k in BUCKET_COUNTS}}
            for mode, runs in by_mode.items()]


def _mesh_table(runner: TableRunner, table: str, rows: list[Row], seeds: list[int],
                context_diagnostics: bool = False) -> dict[str, Any]:
    """Train every row for every seed; cells are mean and spread over seeds of the test metrics.

    ``references`` holds the rows of the reference predictions (``constant``, ``oracle``), printed below the
    trained rows, from the first run's results: they do not depend on the weights, only on the test split and
    the mean parameters every row shares. ``context_diagnostics``: each row with context is also evaluated with
    another person's maps and with zero maps (:meth:`TableRunner.diagnose`), as rows after the trained ones.
    """
    evaluations = runner.spec.evaluations.get(table)
    if evaluations:
        columns = [(e.column, f"{e.protocol}/{e.metric}", 100.0 if e.metric == "kp_AP" else 1.0)
                   for e in evaluations]
    else:
        columns = list(OCCLUSION_COLUMNS if table == "occlusion" else DEPTH_COLUMNS)
    out_rows, diagnostic_rows, references = [], [], None
    for row in rows:
        per_seed = []
        for seed in seeds:
            record = runner.train_row(row, seed)
            metrics, evaluated = dict(record.get("metrics") or {}), {}
            for e in evaluations or ():
                key = f"{e.protocol}/{e.metric}"
                evaluated[key] = runner.evaluate(row, seed, record["checkpoint"], e.data, e.protocol)
                metrics[key] = evaluated[key]["metrics"][e.metric]
            per_seed.append({"seed": seed, "metrics": metrics, "checkpoint": record["checkpoint"],
                             "results": record.get("results"), "seconds": record.get("seconds"),
                             "training_seconds": record.get("training_seconds")})
            if references is None:
                references = _reference_metrics(per_seed[-1], evaluated)
        cells = {key: _summary([s["metrics"].get(key, math.nan) * scale for s in per_seed])
                 for _, key, scale in columns}
        counts = {k: per_seed[0]["metrics"].get(k) for k in BUCKET_COUNTS}
        out_rows.append({"key": row.key, "label": row.label, "experiment": row.experiment, "context": row.context,
                         "depths": list(row.depths), "cells": cells, "runs": per_seed, "counts": counts})
        if context_diagnostics and row.context != "none":
            diagnostic_rows.extend(_diagnostic_rows(runner, row, per_seed, columns))
    return {"columns": [[h, k] for h, k, _ in columns], "rows": [*out_rows, *diagnostic_rows],
            "references": _reference_rows(references or {}, columns),
            "claim_intervals": _claim_intervals(out_rows)}


def _claim_intervals(rows: list[dict[str, Any]], baseline: str = "spin") -> dict[str, dict[str, Any]]:
    """Row key -> bucket -> paired bootstrap interval of the row's MPJPE reduction against ``baseline``.

    For every row with context, on each bucket of the supplementary's claim (:data:`CLAIM_BUCKETS`): per-person
    MPJPE averaged over the seeds (the same people for both rows, read from each run's ``per_sample.csv``), its
    relative reduction and 95 % interval (:func:`ochmr_lit.eval.paired_gain.paired_gain`). Rows whose runs kept no
    per-person results (e.g. the paper preset's, evaluated elsewhere) or buckets with fewer than 2 people are left
    out.
    """
    by_key = {row["key"]: row for row in rows}
    if baseline not in by_key:
        return {}

    def folders(row: dict[str, Any]) -> list[str] | None:
        found = [run.get("results") for run in row["runs"]]
        return found if all(f and (Path(f) / "per_sample.csv").is_file() for f in found) else None

    base_folders = folders(by_key[baseline])
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        ours = folders(row) if row["context"] != "none" else None
        if not ours or not base_folders:
            continue
        for metric, _ in CLAIM_BUCKETS:
            bucket = metric.removeprefix("mpjpe_")
            people, base, errors = paired_person_errors(base_folders, ours, "mpjpe_mm", bucket)
            if len(people) >= 2:
                out.setdefault(row["key"], {})[bucket] = paired_gain(base, errors)
    return out


def _sweep_inputs(runner: TableRunner, cfg: DictConfig, dataset: str, row: Row) -> tuple[Path, Path, Path]:
    """(annotation file, image folder, detections file) of a sweep dataset (its data as ``row`` trains on)."""
    if runner.preset == "cpu":
        from hydra.utils import instantiate

        fit_cfg = compose("fit", [f"experiment={row.experiment}", *row.overrides, *runner.budget, *runner.overrides,
                                  *runner.regressor_overrides])
        datamodule = instantiate(fit_cfg.data, _convert_="all")
        split_dir = datamodule.split_dir("test")
        ann_file = split_dir / "annotations.json"
        det_file = runner.root / "detections" / f"{dataset}_test_seed{int(cfg.detector_seed)}.json"
        summary_file = det_file.with_suffix(".summary.json")
        if not det_file.is_file():
            summary = write_simulated_detections(ann_file, det_file, seed=int(cfg.detector_seed))
            atomic_write_text(summary_file, json.dumps(summary, indent=2))
        return ann_file, split_dir / "images", det_file
    det = _given_detections(cfg, dataset)
    data_cfg = compose("evaluate", [f"data={dataset}", "experiment=spin_r50", "ckpt_path=unused"]).data
    return Path(data_cfg.ann_files.test), Path(data_cfg.image_roots.test), det


def _given_detections(cfg: DictConfig, dataset: str) -> Path:
    """``detections.<dataset>`` of the paper preset's sweep: given, and an existing file."""
    det = (cfg.get("detections") or {}).get(dataset)
    if not det:
        raise ConfigError(f"table=detector_sweep preset=paper needs detections.{dataset}=<COCO results JSON of "
                          f"the {dataset} test split> (Faster R-CNN person boxes with scores)")
    if not Path(det).is_file():
        raise MissingFileError(f"detections.{dataset}={det}: no such file; give the COCO results JSON of the "
                               f"{dataset} test split")
    return Path(det)


def _sweep_table(runner: TableRunner, cfg: DictConfig, rows: list[Row], seeds: list[int]) -> dict[str, Any]:
    """Per dataset: boxes kept and AP of each row at every detection-score threshold (seed-averaged)."""
    datasets = {}
    for dataset in runner.spec.sweep_datasets:
        ann_file, image_dir, det_file = _sweep_inputs(runner, cfg, dataset, rows[0])
        protocol = f"detector_sweep_{dataset}"
        per_row = []
        for row in rows:
            per_seed = []
            for seed in seeds:
                record = runner.train_row(row, seed)
                target = runner.run_dir(row.key, seed) / f"sweep_{dataset}"
                done = target / "sweep_columns.json"
                if done.is_file():
                    result = _read_json(done)
                else:
                    result = sweep_checkpoint(record["checkpoint"], ann_file, image_dir, det_file, protocol=protocol,
                                              device=str(cfg.device))
                    _write_sweep_results(target, result, protocol, record, det_file)
                per_seed.append(result)
            ap = [_summary([s["AP"][i] * 100.0 for s in per_seed]) for i in range(len(per_seed[0]["threshold"]))]
            per_row.append({"key": row.key, "label": row.label, "ap": ap})
        first = _read_json(runner.run_dir(rows[0].key, seeds[0]) / f"sweep_{dataset}" / "sweep_columns.json")
        datasets[dataset] = {"thresholds": first["threshold"], "num_boxes": first["num_boxes"],
                             "detections": str(det_file), "rows": per_row}
    return {"datasets": datasets}


def _write_sweep_results(folder: Path, result: dict[str, list[float]], protocol: str, record: dict[str, Any],
                         det_file: Path) -> None:
    """``detector_sweep.json`` (rows and columns) and a ``metrics.json`` the results notebook reads."""
    rows = [{k: result[k][i] for k in result} for i in range(len(result["threshold"]))]
    run_results = Path(record["results"]) / "metrics.json" if record.get("results") else None
    run_config = _read_json(run_results).get("run_config", {}) if run_results and run_results.is_file() else {}
    atomic_write_text(folder / "metrics.json", json.dumps({
        "metrics": {f"kp_{k}": v[0] for k, v in result.items() if k not in ("threshold", "num_boxes")},
        "protocol": {"name": protocol, "detections": str(det_file)}, "run_config": run_config}, indent=2))
    atomic_write_text(folder / "detector_sweep.json", json.dumps(rows, indent=2))
    atomic_write_text(folder / "sweep_columns.json", json.dumps(result, indent=2))  # written last: the sweep is done


def _given_context_checkpoint(path: Any) -> str | None:
    """``context_checkpoint=<file>`` checked before any run starts: it exists and holds a context estimator."""
    if not path:
        return None
    if not Path(str(path)).is_file():
        raise MissingFileError(f"context_checkpoint={path}: no such file; give a checkpoint of a trained context "
                               "estimator (python -m ochmr_lit.fit experiment=synthcrowd_context, "
                               "<run>/checkpoints/*.ckpt), or drop the key to train one")
    load_context_checkpoint(path)  # refuses a regressor's checkpoint or foreign weights, naming the file
    return str(Path(str(path)).resolve())


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


def run_table(cfg: DictConfig) -> dict[str, Any]:
    """Run the table ``cfg.table`` (see ``configs/reproduce.yaml``); returns what ``table.json`` holds."""
    table, preset = str(cfg.table), str(cfg.preset)
    rows = table_rows(table, preset)
    seeds = [int(s) for s in (cfg.seeds if cfg.seeds is not None else default_seeds(table))]
    if not seeds:
        raise ConfigError("seeds=[]: give at least one seed (e.g. seeds=[0,1])")
    budget = list((cfg.get("budget") or {}).get(preset) or [])
    context_budget = list((cfg.get("context_budget") or {}).get(preset) or [])
    context_checkpoint = _given_context_checkpoint(cfg.get("context_checkpoint"))
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
            _given_detections(cfg, dataset)
    started = time.perf_counter()
    folder = runner.root / table
    diagnose = bool(cfg.get("context_diagnostics")) and preset == "cpu" and table == "occlusion"

    def result_of(body: dict[str, Any], done_seeds: list[int]) -> dict[str, Any]:
        partial = {"partial_of": seeds} if len(done_seeds) < len(seeds) else {}
        return {"table": table, "preset": preset, "seeds": done_seeds, **partial, "budget": runner.budget,
                "context_budget": runner.context_budget, "context_checkpoint": context_checkpoint,
                "overrides": runner.overrides,
                "context_overrides": runner.context_overrides, "regressor_overrides": runner.regressor_overrides,
                "machine": machine_description(), "seconds": round(time.perf_counter() - started, 1), **body}

    def write_partial(done_seeds: list[int]) -> None:
        if len(done_seeds) == len(seeds) or table == "detector_sweep":
            return
        result = result_of(_mesh_table(runner, table, rows, done_seeds, context_diagnostics=diagnose), done_seeds)
        atomic_write_text(folder / "table.partial.json", json.dumps(result, indent=2))
        atomic_write_text(folder / "table.partial.md", format_table_document(result))
        log.info("every row trained for seeds %s: %s (the whole table follows once seeds %s are)", done_seeds,
                 folder / "table.partial.md", seeds)

    train_seed_major(runner, rows, seeds, write_partial)
    if table == "detector_sweep":
        body = _sweep_table(runner, cfg, rows, seeds)
    else:
        body = _mesh_table(runner, table, rows, seeds, context_diagnostics=diagnose)
    result = result_of(body, seeds)
    atomic_write_text(folder / "table.json", json.dumps(result, indent=2))
    document = format_table_document(result)
    atomic_write_text(folder / "table.md", document)
    for name in ("table.partial.md", "table.partial.json"):  # the whole table supersedes them
        (folder / name).unlink(missing_ok=True)
    print(document)
    return result
