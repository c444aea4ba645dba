"""3DOH (3DOH50K, object-occluded humans) from its official per-split ``annots.json``.

``annots.json`` maps an image id to one person: ``extri`` (4, 4) world -> camera, ``intri`` (3, 3),
``img_path`` (relative to the split folder, possibly with Windows separators), ``bbox`` (2, 2)
``[[x1, y1], [x2, y2]]`` px, ``betas`` (1, 10), ``pose`` (1, 72) world-frame axis-angle, ``trans`` (1, 3),
``smpl_joints_2d`` (24, 2), ``smpl_joints_3d`` (24, 3), ``lsp_joints_2d`` (14, 2), ``lsp_joints_3d`` (14, 3)
metres and ``mask_path``. The global orientation is rotated into the camera frame with ``extri`` (as PARE's
3DOH preprocessing); 2D and 3D keypoints go LSP-14 -> COCO-17 through the keypoint registry, joints LSP lacks
masked. The 14 LSP joints the 3DOH protocol evaluates on stay in ``extra['lsp_joints_3d']``.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from ochmr_lit.body.keypoints import convert_keypoints
from ochmr_lit.data.centermaps import body_centers
from ochmr_lit.data.readers.threedpw import rotate_global_orient
from ochmr_lit.data.schema import PersonRecord
from ochmr_lit.errors import MissingFileError

REQUIRED_KEYS: tuple[str, ...] = ("extri", "img_path", "bbox", "betas", "pose", "lsp_joints_2d", "lsp_joints_3d")


def _array(entry: dict, key: str, shape: tuple[int, ...], where: str) -> np.ndarray:
    try:
        value = np.asarray(entry[key], dtype=np.float64)
    except KeyError:
        raise KeyError(f"{where}: key '{key}' missing; 3DOH annots.json entries hold {list(REQUIRED_KEYS)}") from None
    size = int(np.prod(shape))
    if value.size != size:
        raise ValueError(f"{where}: '{key}' has {value.size} values (shape {value.shape}), expected {shape}")
    return value.reshape(shape)


def read_3doh_annotations(ann_file: str | Path) -> dict[str, dict]:
    """The ``annots.json`` of one split, checked to be an id -> annotation mapping."""
    ann_file = Path(ann_file)
    if not ann_file.is_file():
        raise MissingFileError(f"3DOH annotation file not found: {ann_file} (set data.ann_files in the data config "
                               "to <3DOH root>/<split>/annots.json)")
    with ann_file.open() as f:
        data = json.load(f)
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValueError(f"{ann_file}: expected a JSON object mapping image ids to annotations (3DOH annots.json)")
    return data


def load_3doh_records(ann_file: str | Path, image_root: str | Path | None = None,
                      dataset: str = "3doh") -> tuple[list[PersonRecord], Counter]:
    """Records of one 3DOH split; skipped reason ``invalid_box`` for boxes without area.

    Args:
        ann_file: the split's ``annots.json``.
        image_root: folder ``img_path`` is relative to (default: the folder of ``ann_file``).
        dataset: dataset name stored in each record.
    """
    ann_file = Path(ann_file)
    image_root = Path(image_root) if image_root is not None else ann_file.parent
    annotations = read_3doh_annotations(ann_file)
    records: list[PersonRecord] = []
    skipped: Counter = Counter()
    for position, key in enumerate(sorted(annotations)):
        entry = annotations[key]
        where = f"{ann_file} entry '{key}'"
        (x1, y1), (x2, y2) = _array(entry, "bbox", (2, 2), where)
        box = np.array([x1, y1, x2 - x1, y2 - y1])
        if not (np.all(np.isfinite(box)) and box[2] > 1 and box[3] > 1):
            skipped["invalid_box"] += 1
            continue
        extrinsics = _array(entry, "extri", (4, 4), where)
        pose = rotate_global_orient(_array(entry, "pose", (72,), where), extrinsics[:3, :3])
        kp2 = np.asarray(entry.get("lsp_joints_2d"), dtype=np.float64)
        if kp2.ndim != 2 or kp2.shape[0] != 14 or kp2.shape[1] not in (2, 3):
            raise ValueError(f"{where}: 'lsp_joints_2d' has shape {kp2.shape}, expected (14, 2) or (14, 3)")
        labelled = kp2[:, 2] > 0 if kp2.shape[1] == 3 else np.ones(14, bool)
        kp2 = np.concatenate([kp2[:, :2], np.where(labelled, 2.0, 0.0)[:, None]], axis=1)
        keypoints, present = convert_keypoints(kp2, "lsp14", "coco17")
        keypoints = keypoints * present[:, None]
        lsp3d = _array(entry, "lsp_joints_3d", (14, 3), where)
        kp3, present3 = convert_keypoints(np.concatenate([lsp3d, np.ones((14, 1))], axis=1), "lsp14", "coco17")
        center = body_centers(keypoints[None], box[None])
        image_id = int(key) if str(key).isdigit() else position
        img_path = str(entry["img_path"]).replace("\\", "/")
        records.append(PersonRecord(
            image_path=image_root / img_path, image_id=image_id, ann_id=image_id, box=box, center=center[0],
            image_centers=center, dataset=dataset, keypoints=keypoints, keypoints_3d=kp3 * present3[:, None],
            smpl_pose=pose, smpl_betas=_array(entry, "betas", (10,), where), gender=0,
            extra={"lsp_joints_3d": lsp3d, "intrinsics": np.asarray(entry.get("intri", np.eye(3)), np.float64),
                   "extrinsics": extrinsics, "trans": np.asarray(entry.get("trans", np.zeros(3))).reshape(-1)[:3]}))
    return records, skipped
