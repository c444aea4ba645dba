"""Results folders read back for analysis: one record per distinct evaluation, with readable joint names.

The analysis notebooks load results folders (written by :func:`ochmr_lit.eval.results_files.write_results`) with
:func:`load_evaluations`: :func:`group_evaluations` shows a checkpoint that ``fit`` tested and ``evaluate`` scored
again once, saying how often it was evaluated, and :func:`joint_display_names` names joints for figures.
"""

from __future__ import annotations

import csv
import glob
import json
import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: :func:`evaluated_checkpoint` of a run's final checkpoint: the one ``fit`` tests at the end of training, and
#: the one ``evaluate`` reads with ``ckpt_path=last`` (``last.ckpt``, or ``final.ckpt`` without a checkpoint callback).
FINAL_CHECKPOINT = "final"
_FINAL_NAMES = frozenset({"last", "last.ckpt", "final.ckpt"})

#: Data settings that change how an evaluation loads its samples, never which samples it scores or their labels
#: (``predicted_centres`` caches the checkpoint's own context predictions; ``evaluate`` recomputes them elsewhere).
LOADER_SETTINGS = frozenset({"augment", "batch_size", "eval_batch_size", "num_workers", "pin_memory",
                             "persistent_workers", "prefetch_factor", "generation_workers", "index_dir",
                             "predicted_centres"})

#: Suffixes of registry joint names that say whose definition of the joint is meant, as figures show them.
_JOINT_SOURCES: dict[str, str] = {"h36m": "Human3.6M", "smpl": "SMPL", "openpose": "OpenPose", "ochuman": "OCHuman"}
#: Registry joint names whose words alone do not read as the joint.
_JOINT_PHRASES: dict[str, str] = {"head_top": "top of head", "mid_hip": "mid-hip"}


def find_results_folders(patterns: str) -> list[Path]:
    """The folders matching ``patterns`` (globs separated by commas) that hold a ``metrics.json``, sorted.

    Nothing is left out unsaid: a warning names each pattern that matches no such folder (a mistyped path) and
    each matched folder without ``metrics.json`` (an evaluation that did not finish).
    """
    found: set[Path] = set()
    for pattern in (p.strip() for p in patterns.split(",")):
        if not pattern:
            continue
        matched = [Path(p) for p in glob.glob(pattern)]
        kept = [folder for folder in matched if (folder / "metrics.json").is_file()]
        for folder in sorted(set(matched) - set(kept)):
            log.warning("%s: no metrics.json (an evaluation that did not finish?); left out", folder)
        if not kept:
            log.warning("%r matches no results folder (one holding metrics.json)", pattern)
        found.update(kept)
    return sorted(found)


def _column(values: list[str]) -> np.ndarray:
    """A ``per_sample.csv`` column as floats, or as strings when it is not numeric (e.g. bucket names)."""
    strings = np.array(values)
    try:
        return strings.astype(float)
    except ValueError:
        return strings


def read_per_sample(path: Path) -> dict[str, np.ndarray]:
    """The columns of a ``per_sample.csv`` (name -> one value per evaluated person)."""
    with Path(path).open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {key: _column([row[key] for row in rows]) for key in (rows[0] if rows else {})}


def read_evaluation(folder: Path) -> dict[str, Any]:
    """One results folder as a record.

    Keys: ``folder``; ``payload`` (its ``metrics.json``); ``samples`` (:func:`read_per_sample`, {} without
    ``per_sample.csv``); ``written`` (when ``metrics.json`` was written, seconds since the epoch).
    """
    folder = Path(folder)
    metrics, per_sample = folder / "metrics.json", folder / "per_sample.csv"
    return {"folder": folder, "payload": json.loads(metrics.read_text()),
            "samples": read_per_sample(per_sample) if per_sample.is_file() else {},
            "written": metrics.stat().st_mtime}


def _evaluated_with(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    """The settings ``evaluate`` scored a checkpoint with ({} for the test at the end of ``fit``)."""
    return (payload.get("run_config") or {}).get("evaluated_with") or {}


def evaluated_checkpoint(payload: Mapping[str, Any]) -> str:
    """The checkpoint an evaluation scored: :data:`FINAL_CHECKPOINT` for its run's final one, else its file name.

    ``fit`` tests its run's final checkpoint; ``evaluate`` records the ``ckpt_path`` it was given (the run that
    made the checkpoint is the run config that ``evaluate`` read from it).
    """
    given = _evaluated_with(payload).get("ckpt_path")
    name = Path(str(given)).name if given else FINAL_CHECKPOINT
    return FINAL_CHECKPOINT if name in _FINAL_NAMES else name


def evaluated_split(payload: Mapping[str, Any]) -> str:
    """The split an evaluation scored: ``evaluate``'s ``split``, ``test`` for ``fit``'s own test."""
    return str(_evaluated_with(payload).get("split") or "test")


def context_mode_of(folder: Path) -> str:
    """The context maps of an evaluation: ``<mode>`` of a ``context_<mode>`` folder, else ``true`` (its own)."""
    name = Path(folder).name
    return name.removeprefix("context_") if name.startswith("context_") else "true"


def _trained_with(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The config that trained the checkpoint: the run config without ``evaluate``'s settings."""
    return {k: v for k, v in (payload.get("run_config") or {}).items() if k != "evaluated_with"}


def _evaluated_data(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The data settings of the evaluated split, without :data:`LOADER_SETTINGS`."""
    data = _evaluated_with(payload).get("data") or (payload.get("run_config") or {}).get("data") or {}
    return {k: v for k, v in data.items() if k not in LOADER_SETTINGS}


def _rounded(value: Any, significant: int) -> Any:
    """``value`` with every float written to ``significant`` digits (NaN as ``nan``), for comparisons."""
    if isinstance(value, float):
        return f"{value:.{significant}g}"
    if isinstance(value, Mapping):
        return {str(k): _rounded(v, significant) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v, significant) for v in value]
    return value


def evaluation_key(record: Mapping[str, Any], significant: int = 6) -> str:
    """What two results folders of one evaluation share, as a string (equal strings: the same evaluation).

    The checkpoint (the config that trained it and :func:`evaluated_checkpoint`), the split
    (:func:`evaluated_split`) and the data settings it was read with (:data:`LOADER_SETTINGS` aside), the
    protocol, the context maps (:func:`context_mode_of` of ``record["folder"]``) and the metrics to
    ``significant`` digits.
    """
    payload = record["payload"]
    key = {"trained_with": _trained_with(payload), "checkpoint": evaluated_checkpoint(payload),
           "split": evaluated_split(payload), "data": _evaluated_data(payload),
           "protocol": payload.get("protocol") or {}, "context": context_mode_of(record["folder"]),
           "metrics": _rounded(payload.get("metrics") or {}, significant)}
    return json.dumps(key, sort_keys=True, default=str)


def _newest(group: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The most recently written record of ``group``, with ``times_evaluated`` and ``folders`` (newest first)."""
    ordered = sorted(group, key=lambda record: record.get("written", 0.0), reverse=True)
    return {**ordered[0], "times_evaluated": len(group), "folders": [record["folder"] for record in ordered]}


def group_evaluations(records: Iterable[Mapping[str, Any]], significant: int = 6) -> list[dict[str, Any]]:
    """One record per evaluation: results folders with the same :func:`evaluation_key` count once.

    A checkpoint tested at the end of ``fit`` and scored again by ``evaluate`` on the same split, protocol and
    context maps, with the same metrics, is one evaluation; another checkpoint, split, context mode or other
    numbers are another. Each returned record is the most recently written (``written``) of its group with
    ``times_evaluated`` (how many folders hold it) and ``folders`` (all of them, newest first), in the order in
    which each group's first record came.
    """
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        groups.setdefault(evaluation_key(record, significant), []).append(record)
    return [_newest(group) for group in groups.values()]


def _label_details(record: Mapping[str, Any]) -> list[str]:
    """What sets an evaluation apart from its run's plain test, and how often it was evaluated."""
    payload = record["payload"]
    checkpoint, split = evaluated_checkpoint(payload), evaluated_split(payload)
    mode, times = context_mode_of(record["folder"]), int(record.get("times_evaluated", 1))
    return [*([f"checkpoint {checkpoint}"] if checkpoint != FINAL_CHECKPOINT else []),
            *([f"{split} split"] if split != "test" else []),
            *([f"context maps {mode}"] if mode != "true" else []),
            *([f"evaluated {times} times"] if times > 1 else [])]


def run_label(record: Mapping[str, Any]) -> str:
    """An evaluation's name in tables and legends.

    The experiment with its context source and CoNorm depths, then what sets the evaluation apart (a checkpoint
    other than the final one, a split other than ``test``, other context maps) and, when more than one results
    folder holds it, how often it was evaluated (``times_evaluated`` of :func:`group_evaluations`).
    """
    config = record["payload"].get("run_config") or {}
    model = config.get("model") or {}
    name = (f"{config.get('experiment_name', '?')} (context={model.get('context_source', '-')}, "
            f"CoNorm={model.get('conorm_depths', [])})")
    return ", ".join([name, *_label_details(record)])


def distinct_labels(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """:func:`run_label` of each record; labels that several records share end with their folder (last 3 parts)."""
    labels = [run_label(record) for record in records]
    shared = {label for label in labels if labels.count(label) > 1}
    return [f"{label} [{'/'.join(Path(record['folder']).parts[-3:])}]" if label in shared else label
            for label, record in zip(labels, records, strict=True)]


def load_evaluations(patterns: str) -> list[dict[str, Any]]:
    """The evaluations of the results folders matching ``patterns`` (:func:`find_results_folders`), each once.

    Records of :func:`read_evaluation` grouped by :func:`group_evaluations`, each with its ``label``
    (:func:`distinct_labels`); [] when no folder matches.
    """
    evaluations = group_evaluations(read_evaluation(folder) for folder in find_results_folders(patterns))
    labels = distinct_labels(evaluations)
    return [{**evaluation, "label": label} for evaluation, label in zip(evaluations, labels, strict=True)]


def _newest_checkpoint(run_dir: Path) -> Path | None:
    """The most recently written ``checkpoints/*.ckpt`` of a run folder, None without one."""
    found = sorted(Path(run_dir).glob("checkpoints/*.ckpt"), key=lambda path: path.stat().st_mtime)
    return found[-1] if found else None


def checkpoint_file(record: Mapping[str, Any]) -> Path | None:
    """The checkpoint file an evaluation scored, None when it is gone.

    The file ``evaluate`` was given when it still exists, else the newest checkpoint of the run folder of any of
    the evaluation's results folders (``folders``, else ``folder``), else of the run that trained it.
    """
    given = _evaluated_with(record["payload"]).get("ckpt_path")
    if given and Path(str(given)).is_file():
        return Path(str(given))
    trained_in = (record["payload"].get("run_config") or {}).get("run_dir")
    run_dirs = [Path(folder).parent for folder in record.get("folders", [record["folder"]])]
    for run_dir in [*run_dirs, *([Path(trained_in)] if trained_in else [])]:
        newest = _newest_checkpoint(run_dir)
        if newest is not None:
            return newest
    return None


def joint_display_name(joint: str) -> str:
    """A registry joint name as figures and tables show it: ``right_ankle`` -> ``right ankle``.

    Whose definition a joint follows is spelt out in brackets (``head_h36m`` -> ``head (Human3.6M)``), numbered
    joints are split (``spine1`` -> ``spine 1``) and ``head_top`` reads ``top of head``.
    """
    words = joint.split("_")
    source = _JOINT_SOURCES.get(words[-1]) if len(words) > 1 else None
    base = "_".join(words[:-1]) if source else joint
    text = _JOINT_PHRASES.get(base) or re.sub(r"(?<=[a-z])(?=\d)", " ", base.replace("_", " "))
    return f"{text} ({source})" if source else text


def joint_display_names(joints: Iterable[str]) -> list[str]:
    """:func:`joint_display_name` of each joint, in order."""
    return [joint_display_name(joint) for joint in joints]


def _joint_errors(record: Mapping[str, Any], error: str) -> dict[str, float]:
    """Joint name -> ``error`` of an evaluation's ``per_joint`` results ({} when it has none)."""
    per_joint = record["payload"].get("per_joint") or {}
    if per_joint.get(error) is None:
        return {}
    return {joint: float(value) for joint, value in zip(per_joint["joint_names"], per_joint[error], strict=True)}


def per_joint_errors(records: Iterable[Mapping[str, Any]], error: str = "mpjpe_mm"
                     ) -> tuple[list[str], list[tuple[str, np.ndarray]]]:
    """Per-joint ``error`` (mm) of evaluations that measured it, aligned on one list of joints.

    Returns the joints (registry names, in the order they first appear) and, per evaluation with per-joint
    errors, its ``label`` and the error of each of those joints (NaN for a joint it did not evaluate).
    """
    measured = [(record.get("label", ""), errors) for record in records
                if (errors := _joint_errors(record, error))]
    order = list(dict.fromkeys(joint for _, errors in measured for joint in errors))
    return order, [(label, np.array([errors.get(j, math.nan) for j in order])) for label, errors in measured]


def _cell(value: float) -> str:
    """A table cell: one decimal, ``-`` for a missing or NaN value."""
    return "-" if value is None or not math.isfinite(float(value)) else f"{float(value):.1f}"


def per_joint_table(records: Iterable[Mapping[str, Any]], error: str = "mpjpe_mm") -> str:
    """Markdown: one row per joint (:func:`joint_display_name`), one ``error`` column (mm) per evaluation."""
    joints, series = per_joint_errors(records, error)
    lines = ["| joint | " + " | ".join(label for label, _ in series) + " |", "|" + "---|" * (len(series) + 1)]
    for j, joint in enumerate(joints):
        lines.append(f"| {joint_display_name(joint)} | " + " | ".join(_cell(values[j]) for _, values in series) + " |")
    return "\n".join(lines) + "\n"
