"""Small shared pieces of per-sample results: dataset codes, occlusion buckets and the distractor bucket.

Per-sample results travel between processes as tensors, so dataset names are stored as small integer
codes (``DATASET_CODES``) and turned back into names with ``dataset_name``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

#: Integer code of each dataset name in per-sample results (stable: append, never renumber).
DATASET_CODES: dict[str, int] = {
    "3dpw": 0,
    "3doh": 1,
    "h36m": 2,
    "mpi_inf_3dhp": 3,
    "panoptic": 4,
    "coco": 5,
    "ochuman": 6,
    "crowdpose": 7,
    "synthcrowd": 8,
    "lsp": 9,
    "mpii": 10,
    "lspet": 11,
}
UNKNOWN_DATASET = -1


def dataset_code(name: str) -> int:
    """The integer code of a dataset name; raises KeyError listing the known names."""
    try:
        return DATASET_CODES[name]
    except KeyError:
        raise KeyError(
            f"unknown dataset {name!r}; known: {sorted(DATASET_CODES)} "
            "(add new datasets to ochmr_lit.metrics.per_sample.DATASET_CODES)"
        ) from None


def dataset_name(code: int) -> str:
    """The dataset name of an integer code (``"unknown"`` for -1)."""
    for name, c in DATASET_CODES.items():
        if c == int(code):
            return name
    if int(code) == UNKNOWN_DATASET:
        return "unknown"
    raise KeyError(f"unknown dataset code {code}; known: {DATASET_CODES}")


def bucket_index(values: np.ndarray | float, edges: Sequence[float]) -> np.ndarray:
    """The bucket of each value between increasing edges: the one rule of every occlusion bucket.

    Bucket ``i`` holds ``e_i <= r < e_{i+1}``; the last one also holds ``r == e_M``. With the occlusion edges
    ``(0, 0.10, 0.40, 1)`` that is none ``[0, 0.10)``, partial ``[0.10, 0.40)``, heavy ``[0.40, 1]``.

    Args:
        values: (N,) numbers (or one number), e.g. occlusion ratios in [0, 1].
        edges: increasing bucket edges ``e0 < e1 < ... < eM`` (at least two).

    Returns:
        (N,) int64 bucket indices in ``0 .. M-1`` (a 0-dim array for one number); -1 for NaN and values
        outside ``[e0, eM]``.
    """
    v = np.asarray(values, dtype=np.float64)
    e = np.asarray(edges, dtype=np.float64)
    if e.ndim != 1 or e.size < 2 or np.any(np.diff(e) <= 0):
        raise ValueError(f"bucket edges must be at least two increasing numbers, got {list(edges)}")
    idx = np.searchsorted(e, v, side="right") - 1
    idx = np.where(v == e[-1], e.size - 2, idx)
    inside = (idx >= 0) & (idx < e.size - 1) & ~np.isnan(v)
    return np.where(inside, idx, -1).astype(np.int64)


def _mean_row(values: np.ndarray, chosen: np.ndarray, name: str, low: float, high: float) -> dict[str, Any]:
    """``{name, low, high, count, mean}`` of ``values[chosen]`` (mean NaN when nothing is chosen)."""
    return {"name": name, "low": low, "high": high, "count": int(chosen.sum()),
            "mean": float(values[chosen].mean()) if chosen.any() else float("nan")}


def bucket_summary(
    values: np.ndarray, occlusion: np.ndarray, edges: Sequence[float], distractor: np.ndarray | None = None
) -> list[dict[str, Any]]:
    """Mean of ``values`` per occlusion bucket (and in the distractor bucket).

    Args:
        values: (N,) per-sample numbers (e.g. errors in mm); NaN entries are left out and counted.
        occlusion: (N,) occlusion ratio per sample in [0, 1]; NaN (unknown) samples are counted apart.
        edges: increasing bucket edges ``e0 < e1 < ... < eM``; bucket i holds ``e_i <= r < e_{i+1}``, the
            last one also ``r == eM`` (:func:`bucket_index`, the rule of ``occlusion_bucket`` too).
        distractor: (N,) per-sample distractor flag, 1 / 0 / NaN (unknown); None: no distractor row.

    Returns:
        one row per bucket: ``{name, low, high, count, mean}`` (``name`` ``"[low, high)"``, the last bucket
        ``"[low, high]"``; mean NaN for an empty bucket), then a row named ``unknown`` with ``low = high =
        NaN`` counting samples whose occlusion is unknown or outside the edges, then, with ``distractor``, a
        row named ``distractor`` (``low = high = NaN``) over the samples flagged 1, whatever their occlusion.
    """
    values = np.asarray(values, dtype=np.float64)
    idx = bucket_index(occlusion, edges)
    e = np.asarray(edges, dtype=np.float64)
    valid = ~np.isnan(values)
    rows = []
    for i in range(e.size - 1):
        close = "]" if i == e.size - 2 else ")"
        rows.append(_mean_row(values, (idx == i) & valid, f"[{e[i]:g}, {e[i + 1]:g}{close}", float(e[i]),
                              float(e[i + 1])))
    nan = float("nan")
    rows.append(_mean_row(values, (idx < 0) & valid, "unknown", nan, nan))
    if distractor is not None:
        flagged = np.asarray(distractor, dtype=np.float64) == 1.0
        rows.append(_mean_row(values, flagged & valid, "distractor", nan, nan))
    return rows


#: Per-sample columns that describe the person, not a metric: the same in every metric's table.
PERSON_COLUMNS: tuple[str, ...] = ("occlusion", "distractor")


def merge_per_sample(tables: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Join several metrics' ``per_sample()`` tables on (dataset, sample_id).

    Args:
        tables: metric name -> its ``per_sample()`` dict (``sample_id``, ``dataset``, ``occlusion``,
            ``distractor`` (optional), ``error_mm``).

    Returns:
        ``sample_id``, ``dataset``, ``occlusion``, ``distractor`` (1 / 0, NaN where unknown) and one
        ``<name>_mm`` column per metric, over the union of samples (NaN where a metric has no value for a
        sample), sorted by (dataset, sample_id).
    """
    keys = set()
    for t in tables.values():
        keys.update(zip(np.asarray(t["dataset"]).tolist(), np.asarray(t["sample_id"]).tolist(), strict=True))
    ordered = sorted(keys)
    pos = {k: i for i, k in enumerate(ordered)}
    n = len(ordered)
    out: dict[str, np.ndarray] = {
        "sample_id": np.array([k[1] for k in ordered], dtype=np.int64),
        "dataset": np.array([k[0] for k in ordered], dtype=np.int64),
        **{column: np.full(n, np.nan) for column in PERSON_COLUMNS},
    }
    for name, t in tables.items():
        col = np.full(n, np.nan)
        rows = np.asarray([
            pos[k]
            for k in zip(np.asarray(t["dataset"]).tolist(), np.asarray(t["sample_id"]).tolist(), strict=True)
        ], dtype=np.int64)
        col[rows] = np.asarray(t["error_mm"], dtype=np.float64)
        for column in PERSON_COLUMNS:
            if column in t:
                values = np.asarray(t[column], dtype=np.float64)
                known = ~np.isnan(values)
                out[column][rows[known]] = values[known]
        out[f"{name}_mm"] = col
    return out
