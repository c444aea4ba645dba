"""Validation metrics per bucket as one table: rows none / partial / heavy / all / distractor.

The occlusion buckets none / partial / heavy split the people with a known occlusion ratio, and ``all`` counts
every evaluated person; ``distractor`` (people whose crop shows more of one other person than of themselves)
overlaps them, so it comes after ``all`` and is not part of its sum.

:func:`bucket_table` is pure (metrics dict in, columns and rows out); :func:`log_bucket_table` sends the
table to every logger that takes tables. Scalars such as ``val/mpjpe_heavy`` reach the CSV and TensorBoard
loggers through ``LightningModule.log`` already (``MeshEvaluation.compute`` returns them).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ochmr_lit.eval.buckets import DISTRACTOR_BUCKET, OCCLUSION_BUCKETS

#: Row names, top to bottom: the occlusion buckets, every evaluated person, then the distractor bucket.
BUCKET_ROWS: tuple[str, ...] = (*OCCLUSION_BUCKETS, "all", DISTRACTOR_BUCKET)
#: Column names, left to right; the errors are in millimetres.
BUCKET_COLUMNS: tuple[str, ...] = ("bucket", "people", "MPJPE (mm)", "PA-MPJPE (mm)", "PVE (mm)")
#: Metric-name stems of the error columns, in :data:`BUCKET_COLUMNS` order.
ERROR_METRICS: tuple[str, ...] = ("mpjpe", "pa_mpjpe", "pve")


def _number(value: Any) -> float | None:
    """A finite float, or None for a missing or NaN value (an empty bucket)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _bucket_row(metrics: Mapping[str, Any], bucket: str) -> list[Any]:
    """``[bucket, people, MPJPE, PA-MPJPE, PVE]`` of one bucket (errors in mm, None for an empty bucket)."""
    count = int(metrics.get(f"count_{bucket}", 0))
    errors = [_number(metrics.get(f"{name}_{bucket}")) if count else None for name in ERROR_METRICS]
    return [bucket, count, *errors]


def bucket_table(metrics: Mapping[str, Any], num_people: int | None = None) -> tuple[list[str], list[list[Any]]]:
    """The per-bucket table of one evaluation.

    Args:
        metrics: ``MeshEvaluation.compute()`` output: ``mpjpe``, ``pa_mpjpe``, ``pve`` (mm, all people) and
            ``count_<bucket>``, ``<metric>_<bucket>`` for each bucket of :data:`OCCLUSION_BUCKETS` and for
            ``distractor`` (a missing count reads as 0).
        num_people: people in the ``all`` row (those without an occlusion ratio included); None = the sum
            of the occlusion bucket counts.
    Returns:
        ``columns`` (:data:`BUCKET_COLUMNS`) and ``rows``, one per :data:`BUCKET_ROWS` entry:
        ``[bucket, people (int), MPJPE, PA-MPJPE, PVE]``, errors in mm as floats, None where a bucket is empty.
    Raises:
        KeyError: ``metrics`` lacks the overall errors (not a mesh evaluation).
    """
    missing = [name for name in ERROR_METRICS if name not in metrics]
    if missing:
        raise KeyError(f"bucket_table: metrics lack {missing}; pass MeshEvaluation.compute() output")
    rows = [_bucket_row(metrics, bucket) for bucket in OCCLUSION_BUCKETS]
    total = int(num_people) if num_people is not None else sum(row[1] for row in rows)
    rows.append(["all", total, *(_number(metrics[name]) if total else None for name in ERROR_METRICS)])
    rows.append(_bucket_row(metrics, DISTRACTOR_BUCKET))
    return list(BUCKET_COLUMNS), rows


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table; floats with one decimal, None as ``-``."""
    def cell(value: Any) -> str:
        if value is None:
            return "-"
        return f"{value:.1f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def log_bucket_table(loggers: Sequence, key: str, columns: list[str], rows: list[list[Any]], step: int) -> list[str]:
    """Send a table to every logger that takes tables: W&B (``wandb.Table``), TensorBoard (Markdown text).

    Returns:
        the class names of the loggers that received it.
    """
    used = []
    for logger in loggers:
        name = type(logger).__name__
        if name == "WandbLogger":
            logger.log_table(key=key, columns=columns, data=rows, step=step)
        elif name == "TensorBoardLogger":
            logger.experiment.add_text(key, markdown_table(columns, rows), global_step=step)
        else:
            continue
        used.append(name)
    return used
