"""Evaluation targets the sample schema lacks, added to the samples of a dataset's unaugmented splits.

Datasets whose protocol compares against other joints (H36M and MPI-INF-3DHP: SPIN's ``S``; 3DOH: LSP-14;
CMU Panoptic: joints19) mix :class:`EvalTargetsMixin` into their DataModule.
"""

from __future__ import annotations

from ochmr_lit.data.readers.eval_targets import EvalTargetTransform
from ochmr_lit.data.transforms import TopDownTransform


class EvalTargetsMixin:
    """Adds the dataset's evaluation targets (``EVAL_TARGET_KEYS``) to the samples of its unaugmented splits.

    Subclasses set ``eval_targets``: sample key -> the ``PersonRecord.extra`` key holding its value.
    """

    eval_targets: dict[str, str] = {}

    def transform(self, split: str) -> TopDownTransform | EvalTargetTransform:
        base = super().transform(split)  # type: ignore[misc]
        if not self.eval_targets or base.augment is not None:
            return base
        return EvalTargetTransform(base, self.eval_targets)
