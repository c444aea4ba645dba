"""Results files of an evaluation (what the notebooks read) and the printed metrics table.

A results folder holds ``metrics.json`` (metrics, protocol, run config), ``per_sample.csv`` (one row per
evaluated person) and ``table.md`` (the table printed at the end of a run). Files are written to a
temporary name and renamed, so an interrupted write never leaves a truncated file behind.
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


def summary_table(metrics: Mapping[str, Any]) -> str | None:
    """MPJPE / PA-MPJPE / PVE (mm) by occlusion bucket and keypoint AP (%) as Markdown; None without mesh errors.

    The at-a-glance view of a mesh evaluation, shown above the full list of :func:`format_table`.
    """
    from ochmr_lit.lit.bucket_tables import ERROR_METRICS, bucket_table, markdown_table

    if any(name not in metrics for name in ERROR_METRICS):
        return None
    text = markdown_table(*bucket_table({k: _plain(v) for k, v in metrics.items()}))
    ap = {k: _plain(metrics[k]) for k in ("kp_AP", "kp_AP50", "kp_AP75") if k in metrics}
    if ap:
        shown = [f"{k.removeprefix('kp_')} {100 * float(v):.1f} %" for k, v in ap.items()]
        text += "\n\nkeypoint AP: " + ", ".join(shown)
    return text + "\n"


def print_table(metrics: Mapping[str, Any], title: str = "") -> None:
    """Print the summary by occlusion bucket (mesh evaluations) and the metrics table (rich when available)."""
    summary = summary_table(metrics)
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


def write_results(folder: Path, metrics: Mapping[str, Any], per_sample: Mapping[str, Any] | None,
                  protocol: Mapping[str, Any], run_config: Mapping[str, Any] | None = None,
                  per_joint: Mapping[str, Any] | None = None) -> Path:
    """Write ``metrics.json``, ``per_sample.csv`` and ``table.md`` into ``folder``; returns the folder.

    ``metrics.json`` holds ``metrics`` (scalars: mm for errors, fractions for AP), ``protocol``,
    ``run_config`` and ``per_joint`` (joint names and per-joint errors in mm).
    """
    folder = Path(folder)
    payload = {"metrics": _plain(metrics), "protocol": _plain(protocol), "run_config": _plain(run_config or {}),
               "per_joint": _plain(per_joint or {})}
    atomic_write_text(folder / "metrics.json", json.dumps(payload, indent=2, sort_keys=True, allow_nan=True))
    title = f"protocol: {protocol.get('name', '?')}"
    summary = summary_table(metrics)
    table = (f"### {title}\n\n{summary}\n#### all metrics\n\n{format_table(metrics)}" if summary
             else format_table(metrics, title=title))
    atomic_write_text(folder / "table.md", table)
    if per_sample:
        columns = {k: np.asarray(_plain(v)) for k, v in per_sample.items()}
        lengths = {len(v) for v in columns.values()}
        if len(lengths) != 1:
            raise ValueError(f"per-sample columns differ in length: { {k: len(v) for k, v in columns.items()} }")
        names = list(columns)
        tmp = folder / f".per_sample.csv.tmp{os.getpid()}"
        with tmp.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(names)
            for row in zip(*(columns[n] for n in names), strict=True):
                writer.writerow([f"{v:.6g}" if isinstance(v, float | np.floating) else v for v in row])
        os.replace(tmp, folder / "per_sample.csv")
    return folder
