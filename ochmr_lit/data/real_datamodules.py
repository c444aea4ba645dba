"""DataModules of the real benchmarks in their official formats, one class per dataset.

All build on :class:`~ochmr_lit.data.datamodule.TopDownDataModule` (crops, augmentation, loaders) and only
say how a split becomes person records. Datasets that need a conversion or an index (3DPW, CMU Panoptic,
OCHuman's raw file) build it in ``prepare_data`` through :mod:`ochmr_lit.data.preparation` (idempotent), into
``index_dir`` (default: the cache). Datasets whose protocol compares against joints the sample schema lacks
(H36M and MPI-INF-3DHP: SPIN's ``S``; 3DOH: LSP-14; CMU Panoptic: joints19) add them to their evaluation
samples through :class:`EvalTargetsMixin`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from ochmr_lit.data.coco_datamodule import CocoKeypointDataModule
from ochmr_lit.data.datamodule import TopDownDataModule
from ochmr_lit.data.preparation import PrepareReport, format_report, prepare
from ochmr_lit.data.readers.crowdpose import boxes_kept_per_threshold, load_crowdpose_records, load_detection_records
from ochmr_lit.data.readers.eval_targets import EvalTargetTransform
from ochmr_lit.data.readers.ochuman_raw import load_ochuman_records
from ochmr_lit.data.readers.panoptic import PANOPTIC_CAMERAS, load_panoptic_records
from ochmr_lit.data.readers.spin_npz import load_spin_npz_records
from ochmr_lit.data.readers.threedoh import load_3doh_records
from ochmr_lit.data.readers.threedpw import load_3dpw_records
from ochmr_lit.data.schema import PersonRecord
from ochmr_lit.data.transforms import TopDownTransform
from ochmr_lit.metrics.matched_mpjpe import PANOPTIC_SEQUENCES
from ochmr_lit.paths import cache_dir

log = logging.getLogger(__name__)

KEYPOINT_CONVENTIONS = ("coco17", "crowdpose14")


def _index_dir(index_dir: str | None, name: str) -> Path:
    return Path(index_dir) if index_dir else cache_dir() / "prepared" / name


def _log_report(report: PrepareReport) -> None:
    log.info("%s", format_report(report))


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
            raise ValueError(f"data.keypoint_convention must be one of {KEYPOINT_CONVENTIONS}, "
                             f"got {keypoint_convention!r}")
        self.keypoint_convention = keypoint_convention
        self.det_files = {k: Path(v) for k, v in (det_files or {}).items() if v}
        unknown = set(self.det_files) - set(self.ann_files)
        if unknown:
            raise ValueError(f"data.det_files names splits {sorted(unknown)} that data.ann_files lacks")
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
        self.index_dir = _index_dir(index_dir, "ochuman")
        if self.raw_file is not None:
            ann_files = {split: str(self.index_dir / f"ochuman_coco_format_{'val' if split == 'val' else 'test'}"
                                                     "_range_0.00_1.00.json") for split in image_roots}
        if not ann_files:
            raise ValueError("OCHuman needs data.ann_files (COCO-format files) or data.raw_file (ochuman.json)")
        super().__init__(name=name, ann_files=ann_files, image_roots=image_roots, **kwargs)

    def prepare_data(self) -> None:
        if self.raw_file is not None:
            _log_report(prepare("ochuman", self.raw_file, self.index_dir, show_progress=False))

    def load_gt_records(self, split: str, min_keypoints: int) -> tuple[list[PersonRecord], Counter]:
        self.prepare_data()
        ann_file, image_root = self._split(split)
        return load_ochuman_records(ann_file, image_root, self.name, min_keypoints=min_keypoints)

    def load_records(self, split: str) -> tuple[list[PersonRecord], Counter]:
        self.prepare_data()
        return super().load_records(split)


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
        self.index_dir = _index_dir(index_dir, "3dpw")

    def prepare_data(self) -> None:
        needed = sorted({s for splits in self.splits.values() for s in splits})
        _log_report(prepare("3dpw", self.root, self.index_dir, show_progress=False, splits=needed))

    def index_files(self, split: str) -> list[Path]:
        if split not in self.splits:
            raise KeyError(f"3DPW has no '{split}' split configured; data.splits has {sorted(self.splits)}")
        return [self.index_dir / f"3dpw_{s}.npz" for s in self.splits[split]]

    def load_records(self, split: str) -> tuple[list[PersonRecord], Counter]:
        files = self.index_files(split)
        if not all(f.is_file() for f in files):
            self.prepare_data()
        return load_3dpw_records(files, self.root, subset=self.subset, scale_factor=self.scale_factor)


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
        self.index_dir = _index_dir(index_dir, f"panoptic_step{self.frame_step}")

    def prepare_data(self) -> None:
        sequences = sorted({s for seqs in self.splits.values() for s in seqs})
        report = prepare("panoptic", self.root, self.index_dir, show_progress=False, sequences=sequences,
                         cameras=self.cameras, frame_step=self.frame_step)
        if report.missing:
            raise FileNotFoundError(f"Panoptic sequences {report.missing} not found under {self.root} "
                                    "(each needs <sequence>/hdPose3d_stage1_coco19/ and its calibration JSON)")
        _log_report(report)

    def index_files(self, split: str) -> list[Path]:
        if split not in self.splits:
            raise KeyError(f"Panoptic has no '{split}' split configured; data.splits has {sorted(self.splits)}")
        return [self.index_dir / f"panoptic_{s}_{c}.npz" for s in self.splits[split] for c in self.cameras]

    def load_records(self, split: str) -> tuple[list[PersonRecord], Counter]:
        files = self.index_files(split)
        if not all(f.is_file() for f in files):
            self.prepare_data()
        return load_panoptic_records(files, self.root, dataset=self.name)


class SpinNpzDataModule(EvalTargetsMixin, TopDownDataModule):
    """A dataset in SPIN's preprocessed npz format, one npz per split; evaluation samples carry ``joints_spin24``.

    Args:
        npz_files: split -> SPIN npz (``imgname, center, scale, part``, optionally ``S, pose, shape, has_smpl``).
        image_root: folder the npz ``imgname`` entries are relative to, or split -> folder where the splits'
            images live in different releases (LSP: training images from the original-resolution release,
            test images from ``lsp_dataset``).
        name: dataset name stored in the samples.
        **kwargs: :class:`TopDownDataModule` settings.
    """

    eval_targets = {"joints_spin24": "S"}

    def __init__(self, npz_files: dict[str, str], image_root: str | Mapping[str, str], name: str, **kwargs):
        super().__init__(**kwargs)
        self.name = name
        self.npz_files = {k: Path(v) for k, v in npz_files.items() if v}
        if isinstance(image_root, Mapping):
            self.image_roots = {k: Path(v) for k, v in image_root.items() if v}
            missing = sorted(set(self.npz_files) - set(self.image_roots))
            if missing:
                raise ValueError(f"{name}: data.image_root names no folder for the splits {missing} of "
                                 f"data.npz_files; give one folder, or one per split")
        else:
            self.image_roots = {k: Path(image_root) for k in self.npz_files}

    def load_records(self, split: str) -> tuple[list[PersonRecord], Counter]:
        if split not in self.npz_files:
            raise KeyError(f"{self.name} has no '{split}' split configured; data.npz_files has "
                           f"{sorted(self.npz_files)}")
        return load_spin_npz_records(self.npz_files[split], self.image_roots[split], self.name, self.scale_factor)


class H36MDataModule(SpinNpzDataModule):
    """Human3.6M from SPIN's npz files: ``h36m_valid_protocol1.npz`` (all cameras, protocol ``h36m_p1``) or
    ``h36m_valid_protocol2.npz`` (camera 60457274, ``h36m_p2``) for evaluation, ``h36m_train.npz`` for training."""

    def __init__(self, npz_files: dict[str, str], image_root: str, name: str = "h36m", **kwargs):
        super().__init__(npz_files, image_root, name=name, **kwargs)


class MPIINF3DHPDataModule(SpinNpzDataModule):
    """MPI-INF-3DHP from SPIN's npz files: ``mpi_inf_3dhp_valid.npz`` (test set TS1-TS6, protocol
    ``mpi_inf_3dhp``, 17 joints) for evaluation, ``mpi_inf_3dhp_train.npz`` for training."""

    def __init__(self, npz_files: dict[str, str], image_root: str, name: str = "mpi_inf_3dhp", **kwargs):
        super().__init__(npz_files, image_root, name=name, **kwargs)


class LSPDataModule(SpinNpzDataModule):
    """Leeds Sports Pose from SPIN's npz files: ``lsp_dataset_original_train.npz`` (the 1000 training images of
    the original-resolution release) for training, ``lsp_dataset_test.npz`` (the 1000 test images of the
    ``lsp_dataset`` release) for evaluation. 2D joints only (14 LSP joints in ``part``; face joints masked)."""

    def __init__(self, npz_files: dict[str, str], image_root: str | Mapping[str, str], name: str = "lsp",
                 **kwargs):
        super().__init__(npz_files, image_root, name=name, **kwargs)


class LSPExtendedDataModule(SpinNpzDataModule):
    """LSP-extended (10 000 training images, SPIN's ``lspet``) from SPIN's ``hr-lspet_train.npz``; 2D joints
    only (14 LSP joints in ``part``), training split only."""

    def __init__(self, npz_files: dict[str, str], image_root: str | Mapping[str, str], name: str = "lspet",
                 **kwargs):
        super().__init__(npz_files, image_root, name=name, **kwargs)


class MPIIDataModule(SpinNpzDataModule):
    """MPII Human Pose from SPIN's ``mpii_train.npz`` (one row per annotated person, 16 MPII joints in ``part``;
    face joints masked), training split only."""

    def __init__(self, npz_files: dict[str, str], image_root: str | Mapping[str, str], name: str = "mpii",
                 **kwargs):
        super().__init__(npz_files, image_root, name=name, **kwargs)


__all__ = ["CrowdPoseDataModule", "EvalTargetsMixin", "H36MDataModule", "KeypointDataModule", "LSPDataModule",
           "LSPExtendedDataModule", "MPIIDataModule", "MPIINF3DHPDataModule", "OCHumanDataModule",
           "PanopticDataModule", "SpinNpzDataModule", "ThreeDOHDataModule", "ThreeDPWDataModule"]
