"""COCO-17 keypoint datasets (COCO, OCHuman's COCO-format files) as a DataModule."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from ochmr_lit.data.datamodule import TopDownDataModule
from ochmr_lit.data.readers.coco_format import load_coco_keypoint_records
from ochmr_lit.data.schema import PersonRecord


class CocoKeypointDataModule(TopDownDataModule):
    """Splits of a COCO-17 keypoint dataset, each an annotation JSON and an image folder.

    Args:
        name: dataset name stored in the samples (``coco``, ``ochuman``).
        ann_files: split -> COCO-format keypoint JSON.
        image_roots: split -> folder the JSONs' ``file_name`` entries are relative to.
        **kwargs: :class:`TopDownDataModule` settings.
    """

    def __init__(self, name: str, ann_files: dict[str, str], image_roots: dict[str, str], **kwargs):
        super().__init__(**kwargs)
        self.name = name
        self.ann_files = {k: Path(v) for k, v in ann_files.items()}
        self.image_roots = {k: Path(v) for k, v in image_roots.items()}
        missing = set(self.ann_files) ^ set(self.image_roots)
        if missing:
            raise ValueError("data.ann_files and data.image_roots must name the same splits; "
                             f"they differ in {sorted(missing)}")

    def _split(self, split: str) -> tuple[Path, Path]:
        if split not in self.ann_files:
            raise KeyError(f"{self.name} has no '{split}' split configured; "
                           f"data.ann_files has {sorted(self.ann_files)}")
        return self.ann_files[split], self.image_roots[split]

    def load_records(self, split: str) -> tuple[list[PersonRecord], Counter]:
        ann_file, image_root = self._split(split)
        min_kp = self.min_keypoints if split == "train" else 0
        return load_coco_keypoint_records(ann_file, image_root, self.name, min_keypoints=min_kp)

    def keypoint_ground_truth(self, split: str) -> Path | None:
        return self._split(split)[0]
