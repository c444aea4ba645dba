"""CMU Panoptic under the CRMH protocol, from the official per-frame 3D poses, indexed once."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from ochmr_lit.data.datamodules.base import TopDownDataModule
from ochmr_lit.data.datamodules.eval_targets import EvalTargetsMixin
from ochmr_lit.data.preparation import format_report, prepare, prepared_index_dir
from ochmr_lit.data.readers.panoptic import PANOPTIC_CAMERAS, load_panoptic_records
from ochmr_lit.data.schema import PersonRecord
from ochmr_lit.errors import MissingFileError
from ochmr_lit.metrics.matched_mpjpe import PANOPTIC_SEQUENCES

log = logging.getLogger(__name__)


class PanopticDataModule(EvalTargetsMixin, TopDownDataModule):
    """CMU Panoptic (CRMH protocol) from the official per-frame 3D poses, indexed once per sequence and camera.

    Evaluation samples carry ``joints_panoptic19`` and ``sequence_code``.

    Args:
        root: folder holding the sequence folders.
        splits: our split -> sequences it reads (default: val and test both take the four CRMH sequences).
        cameras: HD cameras (CRMH: 00_16 and 00_30).
        frame_step: index every n-th frame.
        index_dir: where the npz indexes are written (default: the cache).
    """

    name = "panoptic"
    eval_targets = {"joints_panoptic19": "joints_panoptic19", "sequence_code": "sequence_code"}

    def __init__(self, root: str, splits: dict[str, Sequence[str]] | None = None,
                 cameras: Sequence[str] = PANOPTIC_CAMERAS, frame_step: int = 1, index_dir: str | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        self.root = Path(root)
        self.splits = {k: list(v) for k, v in (splits or {"val": PANOPTIC_SEQUENCES,
                                                          "test": PANOPTIC_SEQUENCES}).items()}
        self.cameras = list(cameras)
        self.frame_step = int(frame_step)
        self.index_dir = prepared_index_dir(index_dir, f"panoptic_step{self.frame_step}")

    def prepare_data(self) -> None:
        sequences = sorted({s for seqs in self.splits.values() for s in seqs})
        report = prepare("panoptic", self.root, self.index_dir, show_progress=False, sequences=sequences,
                         cameras=self.cameras, frame_step=self.frame_step)
        if report.missing:
            raise MissingFileError(f"Panoptic sequences {report.missing} not found under {self.root} "
                                   "(each needs <sequence>/hdPose3d_stage1_coco19/ and its calibration JSON)")
        log.info("%s", format_report(report))

    def index_files(self, split: str) -> list[Path]:
        if split not in self.splits:
            raise KeyError(f"Panoptic has no '{split}' split configured; data.splits has {sorted(self.splits)}")
        return [self.index_dir / f"panoptic_{s}_{c}.npz" for s in self.splits[split] for c in self.cameras]

    def load_records(self, split: str) -> tuple[list[PersonRecord], Counter]:
        files = self.index_files(split)
        if not all(f.is_file() for f in files):
            self.prepare_data()
        return load_panoptic_records(files, self.root, dataset=self.name)
