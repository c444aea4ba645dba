"""3DOH from the official ``annots.json`` of each split."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from ochmr_lit.data.datamodules.base import TopDownDataModule
from ochmr_lit.data.datamodules.eval_targets import EvalTargetsMixin
from ochmr_lit.data.readers.threedoh import load_3doh_records
from ochmr_lit.data.schema import PersonRecord


class ThreeDOHDataModule(EvalTargetsMixin, TopDownDataModule):
    """3DOH from the official ``annots.json`` of each split; evaluation samples carry ``joints_lsp14``.

    Args:
        ann_files: split -> ``annots.json``.
        image_roots: split -> folder ``img_path`` is relative to (default: the JSON's folder).
    """

    name = "3doh"
    eval_targets = {"joints_lsp14": "lsp_joints_3d"}

    def __init__(self, ann_files: dict[str, str], image_roots: dict[str, str] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.ann_files = {k: Path(v) for k, v in ann_files.items()}
        self.image_roots = {k: Path(v) for k, v in (image_roots or {}).items() if v}

    def load_records(self, split: str) -> tuple[list[PersonRecord], Counter]:
        if split not in self.ann_files:
            raise KeyError(f"3DOH has no '{split}' split configured; data.ann_files has {sorted(self.ann_files)}")
        return load_3doh_records(self.ann_files[split], self.image_roots.get(split), dataset=self.name)
