"""Evaluation metrics as torchmetrics: mesh errors (mm), keypoint AP (OKS) and 2D error (px), matched MPJPE, centres."""

from ochmr_lit.metrics.centre_localisation import CentreLocalisation, match_centres
from ochmr_lit.metrics.keypoint_ap import COCO_STAT_NAMES, KeypointAP, evaluate_coco_keypoints
from ochmr_lit.metrics.keypoint_pixel_error import CentredKeypointPixelError, KeypointPixelError
from ochmr_lit.metrics.matched_mpjpe import PANOPTIC_SEQUENCES, MatchedMPJPE, match_people
from ochmr_lit.metrics.mesh_errors import MPJPE, PAMPJPE, PVE, PAMPJPEDepth, PAMPJPEPlane
from ochmr_lit.metrics.per_sample import (
    DATASET_CODES,
    bucket_summary,
    dataset_code,
    dataset_name,
    merge_per_sample,
)

__all__ = [
    "COCO_STAT_NAMES",
    "CentreLocalisation",
    "CentredKeypointPixelError",
    "DATASET_CODES",
    "KeypointAP",
    "KeypointPixelError",
    "MPJPE",
    "MatchedMPJPE",
    "PAMPJPE",
    "PAMPJPEDepth",
    "PAMPJPEPlane",
    "PANOPTIC_SEQUENCES",
    "PVE",
    "bucket_summary",
    "dataset_code",
    "dataset_name",
    "evaluate_coco_keypoints",
    "match_centres",
    "match_people",
    "merge_per_sample",
]
