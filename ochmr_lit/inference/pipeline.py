"""The batched top-down pipeline on real images: boxes -> crops -> context -> regressor -> image-space output.

A :class:`Predictor` holds a :class:`~ochmr_lit.lit.MeshRegressorModule` rebuilt from its checkpoint and
the evaluation :class:`~ochmr_lit.data.transforms.TopDownTransform` at the checkpoint's crop size. People of
consecutive images share batches; each image's :class:`ImagePrediction` is emitted as soon as all its
people are done.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import default_collate

from ochmr_lit.data.transforms import BadSampleError, TopDownTransform, read_image_rgb
from ochmr_lit.errors import ConfigError
from ochmr_lit.geometry import rotmat_to_axis_angle
from ochmr_lit.inference.boxes import ImageBoxes
from ochmr_lit.inference.camera import (
    FOCAL_FROM_DIAGONAL,
    FOCAL_GIVEN,
    crop_focal_length,
    crop_points_to_image,
    crop_to_image_camera,
    positive_pixels,
)
from ochmr_lit.lit.checkpoints import load_regressor_checkpoint

log = logging.getLogger(__name__)


@dataclass
class ImagePrediction:
    """Everything predicted for one image (N people; arrays are numpy, metres and pixels).

    The cameras are described in :mod:`ochmr_lit.inference.camera`.

    Attributes:
        boxes: the input :class:`ImageBoxes`.
        image: (H, W, 3) uint8 RGB.
        pose: (N, 72) axis-angle SMPL pose (global orientation first), radians.
        betas: (N, 10).
        cam_crop: (N, 3) weak-perspective ``[s, tx, ty]`` of the crop (normalised crop coordinates).
        cam_t_crop: (N, 3) metres, translation of the crop camera (focal ``crop_focal_length`` at ``crop_size``).
        focal_length: F px of the full-image camera (one per image, shared by its people);
            principal_point: (2,) px, the image centre.
        translation: (N, 3) metres, each person's translation in the full-image camera (also :attr:`cam_t`).
        vertices: (N, 6890, 3) metres, body frame (add ``translation`` for the camera frame).
        keypoints_3d: (N, 17, 3) COCO-17 metres, body frame.
        keypoints_2d: (N, 17, 3) COCO-17 image px ``[x, y, score]``: the model's 2D keypoints, its crop camera's
            projection of ``keypoints_3d`` mapped back to the image (as the keypoint evaluation reads them; they
            do not depend on ``focal_length``). The full-image camera's projection of ``keypoints_3d +
            translation`` equals them at the body origin and differs elsewhere by the two cameras' different
            perspective. The score is the box score (no per-joint confidence).
        crop_affine: (N, 2, 3) image px -> crop px.
        context: (N, 2, h, w) [local, global] centermaps the regressor used (None for the SPIN baseline).
        crop_size, crop_focal_length: the crop camera (px).
        focal_length_source: ``image_diagonal`` (the default) or ``given``.
    """

    boxes: ImageBoxes
    image: np.ndarray
    pose: np.ndarray
    betas: np.ndarray
    cam_crop: np.ndarray
    cam_t_crop: np.ndarray
    focal_length: float
    principal_point: np.ndarray
    translation: np.ndarray
    vertices: np.ndarray
    keypoints_3d: np.ndarray
    keypoints_2d: np.ndarray
    crop_affine: np.ndarray
    context: np.ndarray | None
    crop_size: int
    crop_focal_length: float
    focal_length_source: str = FOCAL_FROM_DIAGONAL

    @property
    def num_people(self) -> int:
        return len(self.boxes)

    @property
    def cam_t(self) -> np.ndarray:
        """(N, 3) metres: each person's translation in the full-image camera (:attr:`translation`)."""
        return self.translation

    @property
    def image_size(self) -> tuple[int, int]:
        """``(W, H)`` px."""
        return self.image.shape[1], self.image.shape[0]


def load_regressor(ckpt_path: str | Path, device: str | torch.device = "cpu"):
    """A :class:`~ochmr_lit.lit.MeshRegressorModule` in eval mode from its checkpoint (``weights_only=True``).

    Self-contained and checked as :func:`~ochmr_lit.lit.checkpoints.load_regressor_checkpoint` describes.
    """
    return load_regressor_checkpoint(ckpt_path).eval().to(device)


def _crop_settings(module) -> dict:
    """Crop size, centermap size, box scale factor and sigma the checkpoint was trained with."""
    data = (module.run_config or {}).get("data") or {}
    crop = int(module.hparams.crop_size)
    return {"crop_size": crop, "map_size": int(data.get("map_size", crop // 4)),
            "scale_factor": float(data.get("scale_factor", 1.2)), "sigma": float(data.get("sigma", 2.0))}


@dataclass
class _Pending:
    boxes: ImageBoxes
    image: np.ndarray
    outputs: list

    @property
    def done(self) -> bool:
        return len(self.outputs) == len(self.boxes)


class Predictor:
    """Runs a mesh-regressor checkpoint on images with person boxes.

    Args:
        module: a MeshRegressorModule (see :func:`load_regressor`).
        batch_size: people per forward pass.
        keep_context: keep each person's context maps (for figures; the context estimator of a
            ``predicted``-context model then runs once more per batch).
        focal_length: focal length in px of every image's full-image camera; None = each image's diagonal
            ``sqrt(W^2 + H^2)`` (:func:`~ochmr_lit.inference.camera.image_focal_length`).

    Attributes:
        crop_focal_length: the model's crop camera focal length in px (its ``focal_length`` hyper-parameter;
            when that is None, :func:`~ochmr_lit.inference.camera.crop_focal_length` of its crop size).
    """

    def __init__(self, module, batch_size: int = 16, keep_context: bool = True, focal_length: float | None = None):
        self.module = module
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise ConfigError(f"batch_size={batch_size}: must be at least 1")
        self.keep_context = keep_context
        self.focal_length = None if focal_length is None else positive_pixels(focal_length)
        self.settings = _crop_settings(module)
        self.crop_focal_length = crop_focal_length(self.settings["crop_size"], module.hparams.get("focal_length"))
        self.transform = TopDownTransform(augment=None, **self.settings)
        self.device = next(module.parameters()).device

    @property
    def faces(self) -> np.ndarray:
        """(F, 3) int64 triangle indices of the body model."""
        return self.module.body.faces.cpu().numpy()

    @torch.inference_mode()
    def _run(self, chunk: list[tuple[_Pending, dict]]) -> None:
        batch = default_collate([sample for _, sample in chunk])
        batch = {k: v.to(self.device) if torch.is_tensor(v) else v for k, v in batch.items()}
        context = self.module.context_for(batch)  # once: the regressor and the figures share it
        pred = self.module.predict_batch(batch, context=context)
        context = context if self.keep_context else None
        pose = rotmat_to_axis_angle(pred["rotmat"]).reshape(len(chunk), 72)
        fields = {"pose": pose, "betas": pred["betas"], "cam_crop": pred["cam"], "cam_t_crop": pred["cam_t"],
                  "vertices": pred["vertices"], "keypoints_3d": pred["keypoints_3d"],
                  "crop_affine": batch["crop_affine"], "box_score": batch["box_score"]}
        if context is not None:
            fields["context"] = context.float()
        rows = {k: v.detach().float().cpu() for k, v in fields.items()}
        for i, (owner, _) in enumerate(chunk):
            owner.outputs.append({k: v[i] for k, v in rows.items()})

    def _finish(self, pending: _Pending) -> ImagePrediction:
        n = len(pending.boxes)
        height, width = pending.image.shape[:2]
        crop_size = self.settings["crop_size"]
        if n:
            out = {k: torch.stack([o[k] for o in pending.outputs]) for k in pending.outputs[0]}
        else:
            num_vertices = int(self.module.body.faces.max()) + 1
            out = {"pose": torch.zeros(0, 72), "betas": torch.zeros(0, 10), "cam_crop": torch.zeros(0, 3),
                   "cam_t_crop": torch.zeros(0, 3), "vertices": torch.zeros(0, num_vertices, 3),
                   "keypoints_3d": torch.zeros(0, 17, 3), "crop_affine": torch.zeros(0, 2, 3),
                   "box_score": torch.zeros(0)}
        cam, affine = out["cam_crop"].double(), out["crop_affine"].double()
        F, principal, transl = crop_to_image_camera(cam, affine, (width, height), crop_size,
                                                    focal_length=self.focal_length)
        kp3 = out["keypoints_3d"].double()
        kp2 = (crop_points_to_image(kp3, out["cam_t_crop"].double(), self.crop_focal_length, crop_size, affine)
               if n else torch.zeros(0, 17, 2, dtype=torch.float64))
        scores = out["box_score"].double()[:, None, None].expand(n, 17, 1)
        context = out.get("context")
        return ImagePrediction(
            boxes=pending.boxes, image=pending.image, pose=out["pose"].numpy(), betas=out["betas"].numpy(),
            cam_crop=out["cam_crop"].numpy(), cam_t_crop=out["cam_t_crop"].numpy(), focal_length=F,
            principal_point=principal.numpy(), translation=transl.numpy(), vertices=out["vertices"].numpy(),
            keypoints_3d=kp3.numpy(), keypoints_2d=torch.cat([kp2, scores], dim=-1).numpy(),
            crop_affine=out["crop_affine"].numpy(), context=None if context is None else context.numpy(),
            crop_size=crop_size, crop_focal_length=self.crop_focal_length,
            focal_length_source=FOCAL_FROM_DIAGONAL if self.focal_length is None else FOCAL_GIVEN)

    def predict(self, items: Iterable[ImageBoxes | tuple[ImageBoxes, np.ndarray]],
                on_bad_image: str = "raise", skipped: list[dict] | None = None) -> Iterator[ImagePrediction]:
        """Predictions of each image, in input order.

        Args:
            items: :class:`ImageBoxes`, or ``(ImageBoxes, RGB image)`` pairs when the image is already decoded.
            on_bad_image: ``raise`` (an unreadable image stops with one line naming it) or ``skip`` (it is left out,
                named in ``skipped`` with the reason, and the other images are predicted).
            skipped: receives ``{"image", "reason", "error"}`` for each image left out under ``skip``.
        """
        if on_bad_image not in ("raise", "skip"):
            raise ConfigError(f"on_bad_sample={on_bad_image!r}; use raise or skip")
        pending: list[_Pending] = []
        queue: list[tuple[_Pending, dict]] = []
        for item in items:
            if isinstance(item, tuple):
                boxes, image = item
            else:
                boxes = item
                try:
                    image = read_image_rgb(item.image_path)
                except BadSampleError as error:
                    if on_bad_image == "raise":
                        raise BadSampleError(f"{error}; or predict the others with on_bad_sample=skip",
                                             reason=error.reason) from None
                    log.warning("skipped %s: %s", item.image_path, error)
                    if skipped is not None:
                        skipped.append({"image": str(item.image_path), "reason": error.reason, "error": str(error)})
                    continue
            owner = _Pending(boxes, image, [])
            pending.append(owner)
            queue.extend((owner, self.transform(record, image=image)) for record in boxes.records())
            while len(queue) >= self.batch_size:
                self._run(queue[:self.batch_size])
                queue = queue[self.batch_size:]
            while pending and pending[0].done:
                yield self._finish(pending.pop(0))
        if queue:
            self._run(queue)
        for owner in pending:
            yield self._finish(owner)
