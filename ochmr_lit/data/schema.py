"""The one sample schema every dataset emits, and the per-person record datasets build it from.

A dataset reads its own file format into :class:`PersonRecord` objects (image-space labels of one
person); :class:`~ochmr_lit.data.transforms.TopDownTransform` turns a record into a *sample*, a dict of
tensors with exactly the keys of :data:`SAMPLE_KEYS`. Labels a dataset does not have are masked through
the ``has_*`` flags and keypoint confidences, never invented. The unaugmented (evaluation) splits of datasets
whose protocol compares against other joints also carry the keys of :data:`EVAL_TARGET_KEYS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: 2D and 3D keypoints in samples use this registry convention.
KEYPOINT_CONVENTION = "coco17"
NUM_KEYPOINTS = 17

#: Keys of a sample and what they hold (S = crop side in px, h = w = centermap side).
SAMPLE_KEYS: dict[str, str] = {
    "image": "(3, S, S) float32, ImageNet-normalised RGB crop",
    "centermaps": "(2, h, w) float32, [local, global] Gaussian body-centre maps of the crop, peak 1",
    "box": "(4,) float32, person box xywh in image pixels (GT or detector)",
    "box_score": "() float32, detector score (1 for GT boxes)",
    "crop_affine": "(2, 3) float32, image px -> crop px (includes augmentation)",
    "keypoints_2d": "(17, 3) float32, COCO-17 in crop px + confidence (1 labelled, 0 missing)",
    "visibility": "(17,) int64, COCO v flag of each keypoint (0 unlabelled, 1 occluded, 2 visible)",
    "keypoints_3d": "(17, 4) float32, COCO-17 camera-frame metres + confidence",
    "has_keypoints_3d": "() bool",
    "smpl_pose": "(72,) float32, axis-angle SMPL pose, global orient in the (augmented) camera frame",
    "smpl_betas": "(10,) float32",
    "has_smpl": "() bool",
    "gender": "() int64, 0 neutral / unknown, 1 male, 2 female",
    "occlusion_ratio": "() float32, share of the person hidden by others; NaN when unknown",
    "distractor": "() float32, 1 when the person's crop shows more visible pixels of one other person than of "
                  "the person (ochmr_lit.data.distractor), else 0; NaN when unknown (datasets without masks)",
    "image_id": "() int64, the dataset's image id (for keypoint AP)",
    "ann_id": "() int64, the dataset's annotation id (-1 for detector boxes)",
    "index": "() int64, position of the sample in its dataset",
    "dataset": "str, dataset name",
    "sample_id": "str, stable id of the sample (dataset/image/annotation)",
}


#: Optional evaluation-only keys, added to the samples of evaluation splits (no augmentation) of the datasets
#: whose protocol compares against them (see ``ochmr_lit.data.readers.eval_targets``). Missing joints have
#: confidence 0 (masked), never invented values.
EVAL_TARGET_KEYS: dict[str, str] = {
    "joints_spin24": "(24, 4) float32, SPIN's S: camera-frame metres + confidence (H36M, MPI-INF-3DHP)",
    "joints_lsp14": "(14, 4) float32, LSP-14 camera-frame metres + confidence (3DOH lsp_joints_3d)",
    "joints_panoptic19": "(19, 4) float32, Panoptic joints19 camera-frame metres + confidence (CMU Panoptic)",
    "sequence_code": "() int64, index of the sample's sequence in its protocol's sequence list (-1: none)",
}


@dataclass
class PersonRecord:
    """One person in one image, with labels in image space (pixels, camera-frame metres).

    ``keypoints`` is (17, 3) COCO-17 ``[x, y, v]`` with COCO's visibility flag v; ``image_centers`` holds
    the body centres (px) of every annotated person in the image, this one included (for the global
    centermap); ``keypoints_3d`` is (17, 4) camera-frame metres + confidence. ``occlusion_ratio`` (share of
    the person hidden by others) and ``distractor`` (1.0 / 0.0, see ``ochmr_lit.data.distractor``) are NaN
    where the dataset cannot tell (no masks): such people are in no occlusion or distractor bucket.
    """

    image_path: Path
    image_id: int
    ann_id: int
    box: np.ndarray
    center: np.ndarray
    image_centers: np.ndarray
    dataset: str
    box_score: float = 1.0
    keypoints: np.ndarray | None = None
    keypoints_3d: np.ndarray | None = None
    smpl_pose: np.ndarray | None = None
    smpl_betas: np.ndarray | None = None
    gender: int = 0
    occlusion_ratio: float = float("nan")
    distractor: float = float("nan")
    extra: dict = field(default_factory=dict)

    @property
    def sample_id(self) -> str:
        """``dataset/image/annotation``; detector boxes (``ann_id`` -1) are told apart by ``det<index>``."""
        if self.ann_id == -1 and "detection_index" in self.extra:
            return f"{self.dataset}/{self.image_id}/det{self.extra['detection_index']}"
        return f"{self.dataset}/{self.image_id}/{self.ann_id}"
