"""What ``python -m ochmr_lit.vis.compare`` does with its composed config (the command and its settings are described
in :mod:`ochmr_lit.vis.compare`): the split's ground-truth boxes through the top-down pipeline, the annotations'
meshes through the body model, one comparison figure per image and ``summary.json``."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from ochmr_lit.body import BodyModel
from ochmr_lit.body.files import resolve_body_model_dir
from ochmr_lit.body.model import GENDER_CODES
from ochmr_lit.errors import CheckpointError, DataError
from ochmr_lit.geometry import axis_angle_to_rotmat
from ochmr_lit.inference.boxes import load_json_boxes
from ochmr_lit.inference.inputs import list_images
from ochmr_lit.inference.pipeline import Predictor, load_regressor
from ochmr_lit.inference.run import resolve_device
from ochmr_lit.vis.compare_settings import check_compare_settings
from ochmr_lit.vis.comparison_figure import comparison_figure
from ochmr_lit.vis.draw import save_image

log = logging.getLogger(__name__)

#: Annotation fields the ground-truth meshes are built from.
GT_FIELDS: tuple[str, ...] = ("smpl_pose", "smpl_betas", "gender", "transl")


def default_out_dir(ckpt_path: str | Path, split: str) -> Path:
    """``compare_<split>`` in the checkpoint's run folder (the parent of its ``checkpoints/`` folder)."""
    folder = Path(ckpt_path).resolve().parent
    if folder.name == "checkpoints":
        folder = folder.parent
    return folder / f"compare_{split}"


def synthcrowd_split_dir(run_config: dict | None, split: str, data_root: str | None = None) -> Path:
    """The SynthCrowd split folder a checkpoint's run config names (generated if missing).

    Raises:
        ValueError: no run config, or its data is not SynthCrowd (other datasets have no annotated camera).
    """
    from hydra.utils import instantiate

    data = dict((run_config or {}).get("data") or {})
    if not data:
        raise CheckpointError("the checkpoint stores no run_config.data; compare needs a checkpoint written by "
                              "python -m ochmr_lit.fit (task=regressor or task=pipeline)")
    target = str(data.get("_target_", ""))
    if not target.endswith("SynthCrowdDataModule"):
        raise CheckpointError(f"the checkpoint was trained with data._target_={target or None}; compare draws "
                              "SynthCrowd ground truth (SMPL, translation and camera per image): use a checkpoint of a "
                              "SynthCrowd run")
    if data_root:
        data["root"] = str(data_root)
    return Path(instantiate(data, _convert_="all").split_dir(split))


def gt_meshes(annotations: list[dict], body, ann_file: Path) -> np.ndarray:
    """(M, V, 3) camera-frame metres: each annotation's SMPL pose/betas/gender through ``body`` + its ``transl``.

    Args:
        annotations: SynthCrowd annotations (``smpl_pose`` 72 axis-angle radians, ``smpl_betas`` 10,
            ``gender`` name, ``transl`` 3 metres).
        body: a :class:`~ochmr_lit.body.BodyModel`.
        ann_file: the annotation file (for error messages).
    """
    num_vertices = int(body.faces.max()) + 1
    if not annotations:
        return np.zeros((0, num_vertices, 3))
    for ann in annotations:
        missing = [key for key in GT_FIELDS if key not in ann]
        if missing:
            raise DataError(f"{ann_file}: annotation {ann.get('id')} lacks {missing}; compare needs SynthCrowd "
                            "annotations (regenerate the split with python -m ochmr_lit.data.synthcrowd)")
    device = body.faces.device
    pose = torch.tensor([ann["smpl_pose"] for ann in annotations], dtype=torch.float32, device=device)
    betas = torch.tensor([ann["smpl_betas"] for ann in annotations], dtype=torch.float32, device=device)
    transl = torch.tensor([ann["transl"] for ann in annotations], dtype=torch.float32, device=device)
    gender = torch.tensor([GENDER_CODES[str(ann["gender"])] for ann in annotations], device=device)
    with torch.inference_mode():
        out = body(axis_angle_to_rotmat(pose.view(-1, 24, 3)), betas, gender=gender, transl=transl)
    return out.vertices.double().cpu().numpy()


def image_camera(image_info: dict, ann_file: Path) -> tuple[float, np.ndarray]:
    """Focal length (px) and principal point (2,) px of an image's annotated camera (square pixels)."""
    camera = image_info.get("camera")
    if not camera or "focal" not in camera or "principal_point" not in camera:
        raise DataError(f"{ann_file}: image {image_info.get('id')} has no camera {{focal, principal_point}}; "
                        "regenerate the split with python -m ochmr_lit.data.synthcrowd")
    fx, fy = (float(v) for v in camera["focal"])
    if abs(fx - fy) > 1e-6 * abs(fx):
        raise DataError(f"{ann_file}: image {image_info.get('id')} has fx={fx} != fy={fy}; the renderer "
                        "takes square pixels")
    return fx, np.asarray(camera["principal_point"], np.float64)


def run_compare(cfg: DictConfig) -> dict[str, Any]:
    """Write the comparison PNGs of ``cfg.num_images`` images of ``cfg.split``; returns the summary."""
    check_compare_settings(cfg)
    device = resolve_device(cfg.get("device"))
    module = load_regressor(cfg.ckpt_path, device)
    split_dir = synthcrowd_split_dir(module.run_config, str(cfg.split), cfg.get("data_root"))
    ann_file = split_dir / "annotations.json"
    data = json.loads(ann_file.read_text())
    items, report = load_json_boxes(ann_file, list_images(split_dir / "images"))
    items = [item for item in items if len(item)][:int(cfg.num_images)]
    if not items:
        raise DataError(f"{ann_file}: no image with people; pick another split=")
    images_by_id = {int(im["id"]): im for im in data["images"]}
    anns_by_image: dict[int, list[dict]] = {}
    for ann in data["annotations"]:
        anns_by_image.setdefault(int(ann["image_id"]), []).append(ann)

    data_body_dir = (module.run_config or {}).get("data", {}).get("body_model_dir")
    same_body = resolve_body_model_dir(data_body_dir) == module.body.model_dir
    body = module.body if same_body else BodyModel(data_body_dir).to(device)
    faces = module.body.faces.cpu().numpy()
    out_dir = Path(cfg.out) if cfg.get("out") else default_out_dir(cfg.ckpt_path, str(cfg.split))
    out_dir.mkdir(parents=True, exist_ok=True)
    predictor = Predictor(module, batch_size=int(cfg.batch_size), keep_context=False)
    rows = []
    for pred in predictor.predict(items):
        image_id = int(pred.boxes.image_id)
        boxed = [int(a) for a in pred.boxes.ann_ids]
        by_id = {int(a["id"]): a for a in anns_by_image[image_id]}
        order = boxed + sorted(set(by_id) - set(boxed))  # boxed people first: same colours as the predictions
        gt_vertices = gt_meshes([by_id[a] for a in order], body, ann_file)
        focal, principal = image_camera(images_by_id[image_id], ann_file)
        pred_vertices = pred.vertices.astype(np.float64) + pred.translation[:, None]
        in_front = pred_vertices[..., 2].min(axis=1) > 0 if len(pred_vertices) else np.zeros(0, bool)
        figure, _ = comparison_figure(pred.image, pred.boxes.boxes, pred_vertices[in_front], pred.focal_length,
                                      pred.principal_point, gt_vertices, focal, principal, faces,
                                      pred_ids=np.flatnonzero(in_front), side=bool(cfg.side_view))
        path = save_image(out_dir / f"{pred.boxes.image_path.stem}.png", figure)
        rows.append({"image": pred.boxes.image_path.name, "image_id": image_id, "figure": path.name,
                     "ann_ids": order, "predicted_people": int(in_front.sum()), "gt_people": len(order),
                     "behind_camera": int((~in_front).sum())})
        log.info("%s: %d predicted, %d ground-truth people", path.name, int(in_front.sum()), len(order))
    summary = {"checkpoint": str(cfg.ckpt_path), "split": str(cfg.split), "split_dir": str(split_dir),
               "context_source": module.hparams.context_source, "boxes": report.to_dict(), "images": rows}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    behind = sum(r["behind_camera"] for r in rows)
    note = f" ({behind} predicted people behind the camera left out)" if behind else ""
    print(f"compare: {len(rows)} images of SynthCrowd {cfg.split} -> {out_dir}{note}")
    return summary
