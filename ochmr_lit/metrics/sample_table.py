"""A per-sample results table as a torchmetric: named numeric columns gathered over processes.

Evaluations that have no point-error metric to carry their per-sample rows (keypoint AP, matched MPJPE)
keep them here. Every column is a 1-D float64 ``cat`` state (integers such as ids and dataset codes are
exact up to 2**53), so under DDP :meth:`SampleTable.rows` returns the rows of every process.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat


class SampleTable(Metric):
    """Rows of named numbers, one per evaluated sample.

    Args:
        columns: column names; ``sample_id`` and ``dataset`` must be among them (the row key: a
            distributed sampler may repeat samples, and :meth:`rows` keeps one row per key).

    ``update(**columns)`` takes (B,) tensors or arrays, one per column; ``rows()`` returns the columns
    as numpy arrays sorted by (dataset, sample_id).
    """

    full_state_update = False
    is_differentiable = False

    def __init__(self, columns: Sequence[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.columns = tuple(columns)
        missing = {"sample_id", "dataset"} - set(self.columns)
        if missing:
            raise ValueError(f"SampleTable columns must include {sorted(missing)}, got {list(self.columns)}")
        for name in self.columns:
            self.add_state(f"col_{name}", default=[], dist_reduce_fx="cat")
        self.set_dtype(torch.float64)

    def update(self, **columns: Tensor | np.ndarray) -> None:
        """Add B rows; every column of the table must be given, each with B values."""
        if set(columns) != set(self.columns):
            raise ValueError(f"SampleTable.update needs exactly the columns {list(self.columns)}, "
                             f"got {sorted(columns)}")
        values = {k: torch.as_tensor(v).detach().to(self.device, torch.float64).reshape(-1)
                  for k, v in columns.items()}
        lengths = {k: v.shape[0] for k, v in values.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"SampleTable.update columns differ in length: {lengths}")
        for name, value in values.items():
            getattr(self, f"col_{name}").append(value)

    def _local_rows(self) -> dict[str, np.ndarray]:
        cols = {name: dim_zero_cat(getattr(self, f"col_{name}")).cpu().numpy()
                if len(getattr(self, f"col_{name}")) else np.zeros(0) for name in self.columns}
        ids, ds = cols["sample_id"].astype(np.int64), cols["dataset"].astype(np.int64)
        order = np.lexsort((ids, ds))
        if order.size:
            pairs = np.stack([ds[order], ids[order]], axis=1)
            keep = np.ones(order.size, dtype=bool)
            keep[1:] = np.any(pairs[1:] != pairs[:-1], axis=1)
            order = order[keep]
        return {name: values[order] for name, values in cols.items()}

    def rows(self) -> dict[str, np.ndarray]:
        """All rows (gathered over processes), one per (dataset, sample_id), sorted by that key."""
        with self.sync_context():
            return self._local_rows()

    def compute(self) -> Tensor:
        """Number of distinct rows (0-dim float64)."""
        return torch.tensor(float(len(self._local_rows()["sample_id"])), dtype=torch.float64)
