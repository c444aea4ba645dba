"""Small shared pieces of per-sample results: dataset codes and occlusion buckets.

Per-sample results travel between processes as tensors, so dataset names are stored as small integer
codes (``DATASET_CODES``) and turned back into names with ``dataset_name``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

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
            "(add new datasets to ochmr_lit.metrics.results.DATASET_CODES)"
        ) from None


def dataset_name(code: int) -> str:
    """The dataset name of an integer code (``"unknown"`` for -1)."""
    for name, c in DATASET_CODES.items():
        if c == int(code):
            return name
    if int(code) == UNKNOWN_DATASET:
        return "unknown"
    raise KeyError(f"unknown dataset code {code}; known: {DATASET_CODES}")


def bucket_summary(
    values: np.ndarray, occlusion: np.ndarray, edges: Sequence[float]
) -> list[dict[str, float]]:
    """Mean of ``values`` per occlusion bucket.

    Args:
        values: (N,) per-sample numbers (e.g. errors in mm); NaN entries are left out and counted.
        occlusion: (N,) occlusion ratio per sample in [0, 1]; NaN (unknown) samples are counted apart.
        edges: increasing bucket edges ``e0 < e1 < ... < eM``; bucket i holds ``e_i <= r < e_{i+1}``, the
            last one also ``r == eM``.

    Returns:
        one row per bucket: ``{low, high, count, mean}`` (mean NaN for an empty bucket), plus a final row
        with ``low = high = NaN`` counting samples whose occlusion is unknown or outside the edges.
    """
    values = np.asarray(values, dtype=np.float64)
    occlusion = np.asarray(occlusion, dtype=np.float64)
    e = np.asarray(edges, dtype=np.float64)
    if e.ndim != 1 or e.size < 2 or np.any(np.diff(e) <= 0):
        raise ValueError(f"bucket edges must be at least two increasing numbers, got {list(edges)}")
    valid = ~np.isnan(values)
    idx = np.searchsorted(e, occlusion, side="right") - 1
    idx[occlusion == e[-1]] = e.size - 2
    inside = (idx >= 0) & (idx < e.size - 1) & ~np.isnan(occlusion)
    rows = []
    for i in range(e.size - 1):
        sel = inside & (idx == i) & valid
        rows.append(
            {
                "low": float(e[i]),
                "high": float(e[i + 1]),
                "count": int(sel.sum()),
                "mean": float(values[sel].mean()) if sel.any() else float("nan"),
            }
        )
    rest = ~inside & valid
    rows.append(
        {
            "low": float("nan"),
            "high": float("nan"),
            "count": int(rest.sum()),
            "mean": float(values[rest].mean()) if rest.any() else float("nan"),
        }
    )
    return rows


def merge_per_sample(tables: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Join several metrics' ``per_sample()`` tables on (dataset, sample_id).

    Args:
        tables: metric name -> its ``per_sample()`` dict (``sample_id``, ``dataset``, ``occlusion``,
            ``error_mm``).

    Returns:
        ``sample_id``, ``dataset``, ``occlusion`` and one ``<name>_mm`` column per metric, over the union
        of samples (NaN where a metric has no value for a sample), sorted by (dataset, sample_id).
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
        "occlusion": np.full(n, np.nan),
    }
    for name, t in tables.items():
        col = np.full(n, np.nan)
        rows = [
            pos[k]
            for k in zip(np.asarray(t["dataset"]).tolist(), np.asarray(t["sample_id"]).tolist(), strict=True)
        ]
        col[rows] = np.asarray(t["error_mm"], dtype=np.float64)
        occ = np.asarray(t["occlusion"], dtype=np.float64)
        known = ~np.isnan(occ)
        out["occlusion"][np.asarray(rows, dtype=np.int64)[known]] = occ[known]
        out[f"{name}_mm"] = col
    return out
