"""Results files of an evaluation (what the notebooks read) and the printed metrics table.

A results folder holds ``metrics.json`` (metrics, protocol, run config, the reference predictions'
metrics), ``per_sample.csv`` (one row per evaluated person) and ``table.md`` (the table printed at the end of
a run). Files are written to a temporary name and renamed, so an interrupted write never leaves a truncated
file behind.

:mod:`ochmr_lit.eval.records` reads them back for the analysis notebooks.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ochmr_lit.eval.bucket_tables import ERROR_METRICS, bucket_table, markdown_table
from ochmr_lit.eval.buckets import OCCLUSION_BUCKETS
from ochmr_lit.eval.references import REFERENCE_LABELS, constant_verdict

#: Error metrics of the comparison tables (mm), with their column names.
ERROR_LABELS: dict[str, str] = {"mpjpe": "MPJPE", "pa_mpjpe": "PA-MPJPE", "pve": "PVE"}

def _plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value.item() if value.ndim == 0 else value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def format_table(metrics: Mapping[str, Any], title: str = "") -> str:
    """A Markdown table of scalar metrics (millimetres for errors, fractions for AP), sorted by name."""
    rows = [(name, _plain(value)) for name, value in sorted(metrics.items())]
    lines = [f"### {title}", ""] if title else []
    lines += ["| metric | value |", "|---|---|"]
    for name, value in rows:
        if isinstance(value, float):
            shown = "nan" if math.isnan(value) else (f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}")
        else:
            shown = str(value)
        lines.append(f"| {name} | {shown} |")
    return "\n".join(lines) + "\n"


def _shown(value: Any, scale: float = 1.0) -> str:
    """A table cell: one decimal, ``-`` for a missing or NaN value."""
    value = _plain(value)
    if value is None or not math.isfinite(float(value)):
        return "-"
    return f"{scale * float(value):.1f}"


def _finite(metrics: Mapping[str, Any], key: str) -> bool:
    """Whether ``metrics`` holds a finite value under ``key`` (a missing key or NaN: not measured)."""
    value = _plain(metrics.get(key))
    return value is not None and math.isfinite(float(value))


def _buckets(named: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The columns' buckets: those any evaluation of ``named`` counts (``count_<bucket>``) and ``all``.

    The occlusion buckets in their order, ``all`` (everyone), then any other bucket (they overlap the
    occlusion buckets, e.g. ``distractor``), as the per-bucket table orders them.
    """
    counted = dict.fromkeys(k.removeprefix("count_") for m in named.values() for k in m if k.startswith("count_"))
    return [*(b for b in OCCLUSION_BUCKETS if b in counted), "all", *(b for b in counted if b not in OCCLUSION_BUCKETS)]


def _bucket_value(metrics: Mapping[str, Any], stem: str, bucket: str) -> Any:
    """``stem`` (e.g. ``mpjpe``) of one occlusion bucket, or of everyone for ``all``; None for an empty bucket."""
    if bucket == "all":
        return metrics.get(stem)
    return metrics.get(f"{stem}_{bucket}") if int(_plain(metrics.get(f"count_{bucket}", 0)) or 0) else None


def comparison_table(named: Mapping[str, Mapping[str, Any]], first: str = "source",
                     stems: tuple[str, ...] = tuple(ERROR_LABELS), extra: Mapping[str, Mapping[str, str]] | None = None
                     ) -> str:
    """One Markdown row per evaluation of ``named`` (name -> ``MeshEvaluation.compute()`` output).

    Columns: ``first`` (the names), each error of ``stems`` (mm) per bucket of the evaluations (the buckets
    any of them counts, :func:`_buckets`) and for everyone (``all``), keypoint AP (%) when measured, then the
    columns of ``extra`` (column -> name -> cell).
    """
    buckets = _buckets(named)
    columns = [(stem, bucket) for stem in stems for bucket in buckets]
    with_ap = any("kp_AP" in m for m in named.values())
    extra = dict(extra or {})
    header = [first, *(f"{ERROR_LABELS[s]} {b}" for s, b in columns), *(["AP (%)"] if with_ap else []), *extra]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, metrics in named.items():
        cells = [_shown(_bucket_value(metrics, s, b)) for s, b in columns]
        cells += [_shown(metrics.get("kp_AP"), 100.0)] if with_ap else []
        cells += [column.get(name, "") for column in extra.values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def sources_table(metrics: Mapping[str, Any], references: Mapping[str, Mapping[str, Any]]) -> str:
    """The model and each reference prediction (``constant``, ``oracle``) as one row each (:func:`comparison_table`).

    A last column ``vs constant`` flags a model whose MPJPE or PA-MPJPE is not lower than ``constant``'s
    (``⚠ not better than constant``), says ``better`` otherwise and ``reference`` on the reference rows.
    """
    named = {"model": metrics, **{REFERENCE_LABELS.get(k, k): v for k, v in references.items()}}
    verdict = {REFERENCE_LABELS.get(k, k): "reference" for k in references}
    if "constant" in references:
        verdict["model"] = constant_verdict(metrics, references["constant"])
    return comparison_table(named, extra={"vs constant": verdict})


def summary_table(metrics: Mapping[str, Any], references: Mapping[str, Mapping[str, Any]] | None = None
                  ) -> str | None:
    """MPJPE / PA-MPJPE / PVE (mm) by occlusion bucket and keypoint AP (%) as Markdown; None without mesh errors.

    The at-a-glance view of a mesh evaluation, shown above the full list of :func:`format_table`; with
    ``references`` (reference name -> metrics) followed by :func:`sources_table`.
    """
    if any(name not in metrics for name in ERROR_METRICS):
        return None
    text = markdown_table(*bucket_table({k: _plain(v) for k, v in metrics.items()}))
    ap = {k: _plain(metrics[k]) for k in ("kp_AP", "kp_AP50", "kp_AP75") if k in metrics}
    if ap:
        shown = [f"{k.removeprefix('kp_')} {100 * float(v):.1f} %" for k, v in ap.items()]
        text += "\n\nkeypoint AP: " + ", ".join(shown)
    if references:
        text += ("\n\nThe model against reference predictions made from the mean parameters without the image "
                 "(errors in mm, AP in %):\n\n" + sources_table(metrics, references).rstrip("\n"))
    split = depth_split_table(metrics, references)
    if split:
        text += ("\n\nPA-MPJPE's parts after the alignment, everyone (mm): along the camera axis (depth) and in the "
                 "image plane; per joint depth² + plane² = error²"
                 + ("; beside them the limb keypoints' 2D error in crop px, as placed and centred on the person"
                    if _finite(metrics, "kp2d_px") else "")
                 + ":\n\n" + split.rstrip("\n"))
    return text + "\n"


def depth_split_table(metrics: Mapping[str, Any], references: Mapping[str, Mapping[str, Any]] | None = None
                      ) -> str | None:
    """PA-MPJPE with its depth and image-plane parts (mm, everyone) of the model and each reference, as Markdown.

    Where the evaluation measured the limb keypoints' 2D error, two last columns give it in crop px: as placed
    (``kp2d_px``) and after removing each person's mean offset (``kp2d_px_centred``).
    None when the evaluation measured no split (protocols without camera-frame ground truth).
    """
    if not _finite(metrics, "pa_mpjpe_depth"):
        return None
    named = {"model": metrics, **{REFERENCE_LABELS.get(k, k): v for k, v in (references or {}).items()
                                  if _finite(v, "pa_mpjpe_depth")}}
    pixels = _finite(metrics, "kp2d_px")
    lines = ["| source | PA-MPJPE | depth | image plane |" + (" 2D limbs (px) | centred (px) |" if pixels else ""),
             "|---|---|---|---|" + ("---|---|" if pixels else "")]
    lines += [f"| {name} | {_shown(m.get('pa_mpjpe'))} | {_shown(m.get('pa_mpjpe_depth'))} | "
              f"{_shown(m.get('pa_mpjpe_plane'))} |"
              + (f" {_shown(m.get('kp2d_px'))} | {_shown(m.get('kp2d_px_centred'))} |" if pixels else "")
              for name, m in named.items()]
    return "\n".join(lines) + "\n"


def context_diagnostics_table(per_mode: Mapping[str, Mapping[str, Any]]) -> str:
    """One row per context mode (``true``, ``shuffled``, ``zeroed``): MPJPE / PA-MPJPE (mm) by bucket, AP (%)."""
    return comparison_table(per_mode, first="context", stems=("mpjpe", "pa_mpjpe"))


def context_diagnostics_document(per_mode: Mapping[str, Mapping[str, Any]], protocol: str) -> str:
    """``context_diagnostics.md``: what the modes mean, then :func:`context_diagnostics_table`."""
    return (f"### context diagnostics, protocol: {protocol}\n\n"
            "The same model and test split with each person's own context maps (`true`), the maps rendered from "
            "the annotations (`exact`: what a perfect context estimator would give it), another person's maps of "
            "the batch (`shuffled`) and all-zero maps (`zeroed`); errors in mm, AP in %.\n\n"
            + context_diagnostics_table(per_mode))


def print_table(metrics: Mapping[str, Any], title: str = "",
                references: Mapping[str, Mapping[str, Any]] | None = None) -> None:
    """Print the summary by occlusion bucket with the reference rows (mesh evaluations) and the metrics table."""
    summary = summary_table(metrics, references)
    if summary:
        print(f"\n{title}\n\n{summary}" if title else f"\n{summary}")
    try:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title or None)
        table.add_column("metric")
        table.add_column("value", justify="right")
        for line in format_table(metrics).splitlines()[2:]:
            name, value = [cell.strip() for cell in line.strip("|").split("|")]
            table.add_row(name, value)
        Console().print(table)
    except ImportError:  # pragma: no cover - rich is a dependency, this is only a fallback
        print(format_table(metrics, title))


def results_document(metrics: Mapping[str, Any], protocol: str,
                     references: Mapping[str, Mapping[str, Any]] | None = None,
                     context_diagnostics: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """``table.md``: the summary with the reference rows, the context diagnostics, then every metric."""
    title = f"protocol: {protocol}"
    summary = summary_table(metrics, references)
    diagnostics = (f"#### context diagnostics\n\n{context_diagnostics_table(context_diagnostics)}\n"
                   if context_diagnostics else "")
    if summary:
        return f"### {title}\n\n{summary}\n{diagnostics}#### all metrics\n\n{format_table(metrics)}"
    if diagnostics and not metrics:
        return f"### {title}\n\n{diagnostics}"
    return format_table(metrics, title=title) + (f"\n{diagnostics}" if diagnostics else "")


def write_results(folder: Path, metrics: Mapping[str, Any], per_sample: Mapping[str, Any] | None,
                  protocol: Mapping[str, Any], run_config: Mapping[str, Any] | None = None,
                  per_joint: Mapping[str, Any] | None = None,
                  references: Mapping[str, Mapping[str, Any]] | None = None,
                  context_diagnostics: Mapping[str, Mapping[str, Any]] | None = None) -> Path:
    """Write ``metrics.json``, ``per_sample.csv`` and ``table.md`` into ``folder``; returns the folder.

    ``metrics.json`` holds ``metrics`` (the model's scalars: mm for errors, fractions for AP), ``protocol``,
    ``run_config``, ``per_joint`` (joint names and per-joint errors in mm) and, when given, ``references``
    (reference name, e.g. ``constant`` / ``oracle``, -> its metrics, same units) and ``context_diagnostics``
    (context mode -> the model's metrics under that mode).
    """
    folder = Path(folder)
    payload = {"metrics": _plain(metrics), "protocol": _plain(protocol), "run_config": _plain(run_config or {}),
               "per_joint": _plain(per_joint or {})}
    if references is not None:
        payload["references"] = _plain(references)
    if context_diagnostics is not None:
        payload["context_diagnostics"] = _plain(context_diagnostics)
    atomic_write_text(folder / "metrics.json", json.dumps(payload, indent=2, sort_keys=True, allow_nan=True))
    table = results_document(metrics, str(protocol.get("name", "?")), references, context_diagnostics)
    atomic_write_text(folder / "table.md", table)
    if per_sample:
        write_columns_csv(folder / "per_sample.csv", per_sample)
    return folder


def write_columns_csv(path: str | Path, columns: Mapping[str, Any]) -> Path:
    """``path`` as a CSV with one row per index of the equally long ``columns`` (name -> values), floats with six
    significant digits; written atomically."""
    path = Path(path)
    columns = {k: np.asarray(_plain(v)) for k, v in columns.items()}
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1:
        raise ValueError(f"per-sample columns differ in length: { {k: len(v) for k, v in columns.items()} }")
    names = list(columns)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(names)
        for row in zip(*(columns[n] for n in names), strict=True):
            writer.writerow([f"{v:.6g}" if isinstance(v, float | np.floating) else v for v in row])
    os.replace(tmp, path)
    return path

