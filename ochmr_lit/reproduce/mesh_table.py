"""The cells of a mesh table (occlusion, CoNorm depth): test metrics per row over seeds, the reference rows, the
context diagnostics and the paired intervals of the claim against SPIN."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ochmr_lit.eval.paired_gain import paired_gain, paired_person_errors
from ochmr_lit.eval.references import REFERENCE_LABELS, REFERENCES
from ochmr_lit.reproduce.formatting import CLAIM_BUCKETS
from ochmr_lit.reproduce.runs import TableRunner, diagnostic_modes, read_json
from ochmr_lit.reproduce.tables import Row


def seed_summary(values: Sequence[float]) -> dict[str, Any]:
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


def _references_in(results: str | None) -> dict[str, dict[str, Any]]:
    """The ``references`` block (reference name -> metrics) of a results folder's ``metrics.json``, or {}."""
    path = Path(results) / "metrics.json" if results else None
    if path is None or not path.is_file():
        return {}
    return read_json(path).get("references") or {}


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
             "cells": {key: seed_summary([references[name].get(key, math.nan) * scale]) for _, key, scale in columns},
             "counts": {k: references[name].get(k) for k in BUCKET_COUNTS}}
            for name in REFERENCES if name in references]


def _diagnostic_rows(runner: TableRunner, row: Row, per_seed: list[dict[str, Any]],
                     columns: list[tuple[str, str, float]]) -> list[dict[str, Any]]:
    """The rows of an OCHMR row evaluated with other context maps (one per mode of :func:`diagnostic_modes`)."""
    modes = diagnostic_modes(row)
    by_mode: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    for run in per_seed:
        diagnostics = runner.diagnose(row, run["seed"], run["checkpoint"], modes)
        for mode in modes:
            by_mode[mode].append({"seed": run["seed"], "metrics": diagnostics[mode]})
    return [{"key": f"{row.key}@{mode}", "label": f"{row.label}, context {mode}", "experiment": row.experiment,
             "context": f"{row.context}, {mode}", "depths": list(row.depths), "diagnostic": mode,
             "cells": {key: seed_summary([s["metrics"].get(key, math.nan) * scale for s in runs])
                       for _, key, scale in columns},
             "runs": runs, "counts": {k: runs[0]["metrics"].get(k) for k in BUCKET_COUNTS}}
            for mode, runs in by_mode.items()]


def mesh_table(runner: TableRunner, table: str, rows: list[Row], seeds: list[int],
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
        cells = {key: seed_summary([s["metrics"].get(key, math.nan) * scale for s in per_seed])
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
