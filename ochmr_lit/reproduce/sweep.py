"""Keypoint AP of a regressor checkpoint on detector boxes, at every detection-score threshold.

The top-down pipeline of ``predict`` (:class:`~ochmr_lit.inference.pipeline.Predictor`: crop, context
estimator for a ``predicted``-context model, regressor, full-image camera) runs once over every detection;
:class:`~ochmr_lit.eval.detector_sweep.DetectorSweep` then keeps the boxes scoring at least each threshold
and runs the protocol's keypoint evaluation (pycocotools' COCOeval, or CrowdPose's semantics) on the
keypoints projected from each mesh, scored by the box score.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ochmr_lit.body.keypoints import get_convention
from ochmr_lit.eval.detector_sweep import DetectorSweep
from ochmr_lit.eval.protocols import get_protocol
from ochmr_lit.geometry import axis_angle_to_rotmat
from ochmr_lit.inference.boxes import load_json_boxes
from ochmr_lit.inference.camera import crop_points_to_image
from ochmr_lit.inference.inputs import list_images
from ochmr_lit.inference.pipeline import Predictor, load_regressor


def image_keypoints(module, pred, convention: str) -> np.ndarray:
    """(N, K, 2) image px of one image's people in ``convention``, projected from their meshes.

    COCO-17 is the predictor's own output; other conventions (CrowdPose-14) are taken from the body model
    (:meth:`~ochmr_lit.body.model.BodyOutput.keypoints`) and projected as the predictor's COCO-17 keypoints are:
    by each person's crop camera, mapped back to the image (so the image camera's focal length plays no part).
    """
    if convention == "coco17":
        return pred.keypoints_2d[..., :2].astype(np.float64)
    n = pred.num_people
    device = next(module.parameters()).device
    pose = torch.from_numpy(pred.pose).to(device, torch.float32).reshape(n, 24, 3)
    betas = torch.from_numpy(pred.betas).to(device, torch.float32)
    with torch.inference_mode():
        points, _ = module.body(axis_angle_to_rotmat(pose), betas).keypoints(convention)
    points = points.double().cpu()
    return crop_points_to_image(points, torch.from_numpy(pred.cam_t_crop).double(), pred.crop_focal_length,
                                pred.crop_size, torch.from_numpy(pred.crop_affine).double()).numpy()


def sweep_checkpoint(checkpoint: str | Path, ann_file: str | Path, image_dir: str | Path, det_file: str | Path,
                     protocol: str = "detector_sweep_coco", thresholds: Sequence[float] | None = None,
                     batch_size: int = 64, device: str = "cpu") -> dict[str, list[float]]:
    """AP and kept box count per threshold of one checkpoint on one split's detections.

    Args:
        checkpoint: a mesh-regressor checkpoint (``task=regressor`` or ``task=pipeline``).
        ann_file: the split's keypoint JSON (the AP ground truth; its ``images`` map file names to ids).
        image_dir: folder of the split's images.
        det_file: COCO detection results for the split's images.
        protocol: a ``detector_sweep_*`` protocol: its keypoint convention, AP flavour and thresholds.
        thresholds: detection-score thresholds (a box is kept when its score is >= the threshold); None =
            the protocol's.
        batch_size: people per forward pass; device: ``cpu`` or ``cuda``.

    Returns:
        ``threshold``, ``num_boxes`` and the flavour's keypoint statistics (``AP``, ``AP50``, ... fractions),
        each a list with one value per threshold.
    """
    p = get_protocol(protocol)
    if not p.score_thresholds:
        raise ValueError(f"protocol {protocol!r} is not a detector sweep; use one of detector_sweep_coco, "
                         "detector_sweep_crowdpose, detector_sweep_ochuman")
    convention = p.keypoint_convention
    metric = DetectorSweep(str(ann_file), get_convention(convention).sigmas, flavour=p.ap_flavour or "coco",
                           thresholds=thresholds or p.score_thresholds)
    module = load_regressor(checkpoint, device=device)
    items, _ = load_json_boxes(det_file, list_images(image_dir), score_threshold=0.0, image_info=ann_file)
    for pred in Predictor(module, batch_size=batch_size, keep_context=False).predict(items):
        n = pred.num_people
        if n == 0:
            continue
        keypoints = torch.from_numpy(image_keypoints(module, pred, convention))
        confidence = torch.ones(n, keypoints.shape[1], 1, dtype=torch.float64)
        scores = torch.from_numpy(pred.boxes.scores.astype(np.float64))
        metric.update(torch.full((n,), int(pred.boxes.image_id), dtype=torch.int64),
                      torch.cat([keypoints, confidence], dim=-1), scores, scores)
    return {k: [float(v) for v in values.tolist()] for k, values in metric.compute().items()}
