"""3DPW (and its 3DPW-PC and 3DPW-OCC subsets) from the official sequence pickles, indexed once."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from ochmr_lit.data.datamodules.base import TopDownDataModule
from ochmr_lit.data.preparation import format_report, prepare, prepared_index_dir
from ochmr_lit.data.readers.threedpw import load_3dpw_records
from ochmr_lit.data.schema import PersonRecord

log = logging.getLogger(__name__)


class ThreeDPWDataModule(TopDownDataModule):
    """3DPW from the official sequence pickles (indexed once), optionally the 3DPW-PC or 3DPW-OCC subset.

    Args:
        root: the 3DPW folder (``sequenceFiles/``, ``imageFiles/``).
        subset: ``all``, ``pc`` (ROMP's person-crowded frames) or ``occ`` (PARE's occluded sequences).
        splits: our split -> official splits it reads (PC and OCC take every official split).
        index_dir: where the npz indexes are written (default: the cache).
        **kwargs: :class:`TopDownDataModule` settings.
    """

    name = "3dpw"

    def __init__(self, root: str, subset: str = "all", splits: dict[str, Sequence[str]] | None = None,
                 index_dir: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.root = Path(root)
        self.subset = subset
        self.splits = {k: list(v) for k, v in (splits or {"train": ["train"], "val": ["validation"],
                                                          "test": ["test"]}).items()}
        self.index_dir = prepared_index_dir(index_dir, "3dpw")

    def prepare_data(self) -> None:
        needed = sorted({s for splits in self.splits.values() for s in splits})
        log.info("%s", format_report(prepare("3dpw", self.root, self.index_dir, show_progress=False, splits=needed)))

    def index_files(self, split: str) -> list[Path]:
        if split not in self.splits:
            raise KeyError(f"3DPW has no '{split}' split configured; data.splits has {sorted(self.splits)}")
        return [self.index_dir / f"3dpw_{s}.npz" for s in self.splits[split]]

    def load_records(self, split: str) -> tuple[list[PersonRecord], Counter]:
        files = self.index_files(split)
        if not all(f.is_file() for f in files):
            self.prepare_data()
        return load_3dpw_records(files, self.root, subset=self.subset, scale_factor=self.scale_factor)
