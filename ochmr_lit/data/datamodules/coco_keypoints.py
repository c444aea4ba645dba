"""COCO-format keypoint datasets: COCO, CrowdPose (14 keypoints mapped to COCO-17) and OCHuman, with ground-truth or
detector boxes. OCHuman's raw ``ochuman.json`` is converted once (:mod:`ochmr_lit.data.preparation`)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from ochmr_lit.data.datamodules.base import TopDownDataModule
from ochmr_lit.data.preparation import format_report, prepare, prepared_index_dir
from ochmr_lit.data.readers.coco_format import load_coco_keypoint_records
from ochmr_lit.data.readers.crowdpose import boxes_kept_per_threshold, load_crowdpose_records, load_detection_records
from ochmr_lit.data.readers.ochuman_raw import load_ochuman_records
from ochmr_lit.data.schema import PersonRecord
from ochmr_lit.errors import ConfigError

log = logging.getLogger(__name__)

KEYPOINT_CONVENTIONS = ("coco17", "crowdpose14")


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
            raise ConfigError("data.ann_files and data.image_roots must name the same splits; "
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


class KeypointDataModule(CocoKeypointDataModule):
    """A COCO-format keypoint dataset with GT boxes, or with detector boxes above a score threshold.

    Args:
        name: dataset name stored in the samples (``coco``, ``crowdpose``, ``ochuman``).
        ann_files, image_roots: split -> COCO-format keypoint JSON / image folder.
        keypoint_convention: keypoints of the files (``coco17`` or ``crowdpose14``, mapped to COCO-17).
        det_files: split -> detection results JSON (COCO results format); those splits crop detector boxes.
        det_score_threshold: detections scoring below are skipped (and counted).
        **kwargs: :class:`TopDownDataModule` settings.
    """

    def __init__(self, name: str, ann_files: dict[str, str], image_roots: dict[str, str],
                 keypoint_convention: str = "coco17", det_files: dict[str, str] | None = None,
                 det_score_threshold: float = 0.0, **kwargs):
        super().__init__(name=name, ann_files=ann_files, image_roots=image_roots, **kwargs)
        if keypoint_convention not in KEYPOINT_CONVENTIONS:
            raise ConfigError(f"data.keypoint_convention must be one of {KEYPOINT_CONVENTIONS}, "
                              f"got {keypoint_convention!r}")
        self.keypoint_convention = keypoint_convention
        self.det_files = {k: Path(v) for k, v in (det_files or {}).items() if v}
        unknown = set(self.det_files) - set(self.ann_files)
        if unknown:
            raise ConfigError(f"data.det_files names splits {sorted(unknown)} that data.ann_files lacks")
        self.det_score_threshold = float(det_score_threshold)

    def load_gt_records(self, split: str, min_keypoints: int) -> tuple[list[PersonRecord], Counter]:
        ann_file, image_root = self._split(split)
        if self.keypoint_convention == "crowdpose14":
            return load_crowdpose_records(ann_file, image_root, self.name, min_keypoints=min_keypoints)
        return super().load_records(split)

    def load_records(self, split: str) -> tuple[list[PersonRecord], Counter]:
        if split in self.det_files:
            ann_file, image_root = self._split(split)
            return load_detection_records(self.det_files[split], ann_file, image_root, self.name,
                                          score_threshold=self.det_score_threshold,
                                          keypoint_convention=self.keypoint_convention)
        return self.load_gt_records(split, self.min_keypoints if split == "train" else 0)

    def boxes_kept(self, split: str, thresholds: Sequence[float]) -> dict[float, int]:
        """Detector boxes of ``split`` kept at each score threshold (supplementary table 4)."""
        if split not in self.det_files:
            raise KeyError(f"{self.name} split '{split}' has no detection file; set data.det_files.{split}")
        return boxes_kept_per_threshold(self.det_files[split], self._split(split)[0], thresholds)


class CrowdPoseDataModule(KeypointDataModule):
    """CrowdPose (14 keypoints -> COCO-17); AP ground truth is the split's own CrowdPose JSON."""

    def __init__(self, ann_files: dict[str, str], image_roots: dict[str, str], name: str = "crowdpose", **kwargs):
        kwargs.setdefault("keypoint_convention", "crowdpose14")
        super().__init__(name=name, ann_files=ann_files, image_roots=image_roots, **kwargs)


class OCHumanDataModule(KeypointDataModule):
    """OCHuman from its COCO-format files, or from the raw ``ochuman.json`` (converted once, as OCHumanApi).

    Args:
        ann_files: split -> COCO-format JSON (the official conversion); ignored when ``raw_file`` is set.
        image_roots: split -> image folder.
        raw_file: the raw ``ochuman.json``; val = its first 2500 images, test = the rest.
        index_dir: where the conversion is written (default: the cache).
    """

    def __init__(self, image_roots: dict[str, str], ann_files: dict[str, str] | None = None,
                 raw_file: str | None = None, index_dir: str | None = None, name: str = "ochuman", **kwargs):
        self.raw_file = Path(raw_file) if raw_file else None
        self.index_dir = prepared_index_dir(index_dir, "ochuman")
        if self.raw_file is not None:
            ann_files = {split: str(self.index_dir / f"ochuman_coco_format_{'val' if split == 'val' else 'test'}"
                                                     "_range_0.00_1.00.json") for split in image_roots}
        if not ann_files:
            raise ValueError("OCHuman needs data.ann_files (COCO-format files) or data.raw_file (ochuman.json)")
        super().__init__(name=name, ann_files=ann_files, image_roots=image_roots, **kwargs)

    def prepare_data(self) -> None:
        if self.raw_file is not None:
            log.info("%s", format_report(prepare("ochuman", self.raw_file, self.index_dir, show_progress=False)))

    def load_gt_records(self, split: str, min_keypoints: int) -> tuple[list[PersonRecord], Counter]:
        self.prepare_data()
        ann_file, image_root = self._split(split)
        return load_ochuman_records(ann_file, image_root, self.name, min_keypoints=min_keypoints)

    def load_records(self, split: str) -> tuple[list[PersonRecord], Counter]:
        self.prepare_data()
        return super().load_records(split)
