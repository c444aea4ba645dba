"""SynthCrowd files in the formats real datasets use, written atomically and byte-for-byte reproducibly.

A split folder holds::

    images/000000.jpg ...   the rendered images (JPEG quality 95)
    annotations.json        COCO keypoint format + SynthCrowd's 3D fields (see ANNOTATION_FIELDS)
    smpl_gt.npz             SPIN's preprocessed keys, one row per person (see NPZ_FIELDS)
    DONE                    JSON of the generation parameters, written last

Every file is written to a temporary name and renamed, so an interrupted generation never leaves a file
that looks complete; JSON has sorted keys and fixed float rounding and the npz has fixed zip timestamps,
so equal inputs give identical bytes.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ochmr_lit.eval.buckets import describe_occlusion_buckets
from ochmr_lit.vis.draw import COCO17_SKELETON

#: Decimal places kept in the files: pixels, metres/radians/ratios.
PIXEL_DECIMALS = 3
METRIC_DECIMALS = 6

COCO_KEYPOINT_NAMES: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)

#: The COCO person category (keypoint names and the 1-based skeleton of COCO's annotation files).
PERSON_CATEGORY: dict[str, Any] = {
    "id": 1,
    "name": "person",
    "supercategory": "person",
    "keypoints": list(COCO_KEYPOINT_NAMES),
    "skeleton": [[a + 1, b + 1] for a, b in COCO17_SKELETON],
}

#: Per-annotation fields beyond COCO's own (id, image_id, category_id, bbox, area, iscrowd, keypoints,
#: num_keypoints, segmentation).
ANNOTATION_FIELDS: dict[str, str] = {
    "bbox_amodal": "[x, y, w, h] px around all projected vertices, not clipped to the image",
    "visibility_code": "17 ints, 0 outside, 1 visible, 2 self-occluded, 3 occluded by another person",
    "occlusion_ratio": "share of the amodal silhouette (inside the image) hidden by other people",
    "occlusion_bucket": f"bucket of occlusion_ratio: {describe_occlusion_buckets()}",
    "body_center": "[x, y] px, mean of the labelled shoulders and hips, else the visible box centre",
    "smpl_pose": "72 axis-angle radians, global orientation in the camera frame",
    "smpl_betas": "10 shape coefficients",
    "transl": "3 metres, SMPL translation in the camera frame",
    "gender": "'male' or 'female' (the body model that posed the person)",
    "joints_3d": "24 x 3 SMPL joints, camera frame, metres",
}

#: Arrays of smpl_gt.npz, one row per person (N), ordered by annotation id.
NPZ_FIELDS: dict[str, str] = {
    "imgname": "(N,) str, image path relative to the split folder",
    "center": "(N, 2) px, centre of the amodal box",
    "scale": "(N,) SPIN scale = 1.2 x max side of the amodal box (unclipped) / 200",
    "part": "(N, 24, 3) spin24 keypoints px + confidence (1 in the image, 0 outside or not modelled)",
    "S": "(N, 24, 4) spin24 camera-frame metres + confidence (1 modelled, 0 missing)",
    "pose": "(N, 72) SMPL axis-angle, global orientation in the camera frame",
    "shape": "(N, 10) betas",
    "has_smpl": "(N,) 1",
    "openpose": "(N, 25, 3) openpose25 px + confidence (1 in the image and modelled)",
    "gender": "(N,) 'm' or 'f' as in SPIN's files",
    "ann_id": "(N,) annotation id in annotations.json",
    "image_id": "(N,) image id in annotations.json",
    "transl": "(N, 3) metres",
    "focal": "(N, 2) px, fx and fy",
    "principal_point": "(N, 2) px (pixel-centre convention)",
    "occlusion_ratio": "(N,)",
}


def _round(value: Any, decimals: int) -> Any:
    """Floats rounded (nested lists/tuples/arrays recursed), ints and strings kept."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "f":
            # np.round gives the double nearest to k / 10^d, which prints with at most d decimals;
            # "+ 0.0" turns -0.0 into 0.0.
            return (np.round(value.astype(np.float64), decimals) + 0.0).tolist()
        return _round(value.tolist(), decimals)
    if isinstance(value, list | tuple):
        return [_round(v, decimals) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(np.round(float(value), decimals)) + 0.0
    return value


def rounded(value: Any, decimals: int) -> Any:
    """JSON-ready copy of ``value`` with every float rounded to ``decimals`` places."""
    return _round(value, decimals)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def write_image(path: str | Path, image: np.ndarray, jpeg_quality: int = 95) -> None:
    """Writes an (H, W, 3) uint8 RGB image atomically; JPEG for .jpg, PNG for .png."""
    path = Path(path)
    ext = path.suffix.lower()
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if ext in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(image[..., ::-1]), params)
    if not ok:
        raise OSError(f"could not encode {path} (use a .jpg or .png name)")
    _atomic_write_bytes(path, buf.tobytes())


def write_json(path: str | Path, data: Any) -> None:
    """Writes JSON with sorted keys and no whitespace, atomically (floats must already be rounded)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)
    _atomic_write_bytes(Path(path), text.encode("utf-8"))


def write_npz(path: str | Path, arrays: Mapping[str, np.ndarray]) -> None:
    """``np.savez``-compatible archive with fixed timestamps (``np.savez`` stamps the current time),
    keys in sorted order, written atomically. Object arrays are refused (``np.load`` needs no pickle)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for key in sorted(arrays):
            arr = np.asarray(arrays[key])
            if arr.dtype == object:
                raise TypeError(f"npz array {key!r} has dtype object; store strings as a fixed-width str array")
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.ascontiguousarray(arr), allow_pickle=False)
    _atomic_write_bytes(Path(path), buf.getvalue())


def coco_document(images: list[dict], annotations: list[dict], info: Mapping[str, Any]) -> dict:
    """The COCO keypoint JSON document (images, annotations, one person category, info)."""
    return {
        "info": dict(info),
        "licenses": [],
        "categories": [PERSON_CATEGORY],
        "images": images,
        "annotations": annotations,
    }
