"""CMU Panoptic (the CRMH evaluation sequences) from the official per-frame 3D pose files and calibration.

A sequence folder holds ``calibration_<seq>.json`` (``cameras``: ``name`` e.g. ``"00_16"``, ``type``,
``resolution`` [W, H], ``K`` (3, 3), ``distCoef`` (5,) OpenCV order, ``R`` (3, 3), ``t`` (3, 1) cm),
``hdPose3d_stage1_coco19/body3DScene_<frame>.json`` (``bodies``: ``id`` and ``joints19``, 19 x [x, y, z,
confidence] in cm, world frame, the ``panoptic19`` convention) and ``hdImgs/<cam>/<cam>_<frame>.jpg``.

Joints are taken to the camera frame (``R X + t``, converted to metres) and projected with OpenCV's
``projectPoints`` (the calibration's distortion included). A joint is visible when its confidence exceeds
0.1 (CRMH's threshold), it lies in front of the camera and projects inside the image; the person box is the
extent of the visible projected joints. :func:`write_index` turns one (sequence, camera) into an npz index,
:func:`load_panoptic_records` reads indexes as person records.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from ochmr_lit.body.keypoints import convert_keypoints
from ochmr_lit.data.centermaps import body_centers
from ochmr_lit.data.schema import PersonRecord
from ochmr_lit.errors import MissingFileError
from ochmr_lit.metrics.matched_mpjpe import PANOPTIC_SEQUENCES

#: HD cameras of the CRMH protocol.
PANOPTIC_CAMERAS: tuple[str, ...] = ("00_16", "00_30")
POSE_DIR = "hdPose3d_stage1_coco19"
CONF_THRESHOLD = 0.1
CM = 0.01  # metres per centimetre
_FRAME_RE = re.compile(r"body3DScene_(\d+)\.json$")


def read_calibration(path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """Cameras of a ``calibration_<seq>.json`` by name: ``K``, ``dist`` (5,), ``R``, ``t`` (3,) metres, ``size``."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"Panoptic calibration not found: {path} (each sequence folder holds "
                               "calibration_<sequence>.json from the official download)")
    with path.open() as f:
        data = json.load(f)
    if "cameras" not in data:
        raise KeyError(f"{path}: key 'cameras' missing; not a Panoptic calibration file")
    cameras = {}
    for cam in data["cameras"]:
        try:
            cameras[str(cam["name"])] = {
                "K": np.asarray(cam["K"], np.float64).reshape(3, 3),
                "dist": np.asarray(cam.get("distCoef", np.zeros(5)), np.float64).reshape(-1),
                "R": np.asarray(cam["R"], np.float64).reshape(3, 3),
                "t": np.asarray(cam["t"], np.float64).reshape(3) * CM,
                "size": np.asarray(cam.get("resolution", (1920, 1080)), np.int64).reshape(2),
            }
        except KeyError as error:
            raise KeyError(f"{path}: camera {cam.get('name', '?')} lacks key {error}") from None
    return cameras


def read_bodies(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Body ids (G,) and joints (G, 19, 4) of one ``body3DScene_*.json``: world metres + confidence."""
    path = Path(path)
    with path.open() as f:
        data = json.load(f)
    if "bodies" not in data:
        raise KeyError(f"{path}: key 'bodies' missing; not a Panoptic body3DScene file")
    ids, joints = [], []
    for body in data["bodies"]:
        values = np.asarray(body.get("joints19", ()), np.float64)
        if values.size != 19 * 4:
            raise ValueError(f"{path}: body {body.get('id')} has {values.size} 'joints19' values, expected 76")
        values = values.reshape(19, 4)
        values[:, :3] *= CM
        ids.append(int(body.get("id", len(ids))))
        joints.append(values)
    return np.asarray(ids, np.int64), np.asarray(joints, np.float64).reshape(-1, 19, 4)


def project(points_world: np.ndarray, camera: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Camera-frame points (N, 3) metres and their pixels (N, 2) (OpenCV ``projectPoints``, with distortion)."""
    points_world = np.ascontiguousarray(np.asarray(points_world, np.float64).reshape(-1, 3))
    cam_points = points_world @ camera["R"].T + camera["t"]
    if len(points_world) == 0:
        return cam_points, np.zeros((0, 2))
    rvec, _ = cv2.Rodrigues(camera["R"])
    pixels, _ = cv2.projectPoints(points_world, rvec, camera["t"], camera["K"], camera["dist"])
    return cam_points, pixels.reshape(-1, 2)


def frame_files(sequence_dir: str | Path) -> list[tuple[int, Path]]:
    """(frame number, file) of every ``body3DScene_*.json`` of a sequence folder, in frame order."""
    pose_dir = Path(sequence_dir) / POSE_DIR
    if not pose_dir.is_dir():
        raise MissingFileError(f"{pose_dir} not found: a Panoptic sequence folder holds {POSE_DIR}/ "
                               "(extract hdPose3d_stage1_coco19.tar)")
    found = [(int(m.group(1)), p) for p in pose_dir.iterdir() if (m := _FRAME_RE.search(p.name))]
    return sorted(found)


def camera_rows(sequence_dir: str | Path, camera_name: str, frame_step: int = 1,
                progress=None) -> tuple[dict[str, np.ndarray], Counter]:
    """Index rows of every person of one (sequence, HD camera), and skipped counts.

    Skipped reasons: ``too_few_visible_joints`` (fewer than 2 visible projected joints: no box).
    """
    sequence_dir = Path(sequence_dir)
    sequence = sequence_dir.name
    cameras = read_calibration(sequence_dir / f"calibration_{sequence}.json")
    if camera_name not in cameras:
        raise KeyError(f"{sequence_dir}: camera {camera_name!r} not in its calibration; it has {sorted(cameras)}")
    camera = cameras[camera_name]
    width, height = camera["size"]
    files = frame_files(sequence_dir)[::frame_step]
    rows: dict[str, list] = {k: [] for k in ("imgname", "frame", "body_id", "joints_cam", "keypoints_2d", "box")}
    skipped: Counter = Counter()
    for frame, path in (progress(files) if progress is not None else files):
        ids, joints = read_bodies(path)
        for body_id, body in zip(ids, joints, strict=True):
            cam_points, pixels = project(body[:, :3], camera)
            visible = ((body[:, 3] > CONF_THRESHOLD) & (cam_points[:, 2] > 0) & (pixels[:, 0] >= 0)
                       & (pixels[:, 0] <= width - 1) & (pixels[:, 1] >= 0) & (pixels[:, 1] <= height - 1))
            if visible.sum() < 2:
                skipped["too_few_visible_joints"] += 1
                continue
            lo, hi = pixels[visible].min(axis=0), pixels[visible].max(axis=0)
            rows["imgname"].append(f"{sequence}/hdImgs/{camera_name}/{camera_name}_{frame:08d}.jpg")
            rows["frame"].append(frame)
            rows["body_id"].append(body_id)
            rows["joints_cam"].append(np.concatenate([cam_points, body[:, 3:]], axis=1))
            rows["keypoints_2d"].append(np.concatenate([pixels, visible[:, None].astype(np.float64)], axis=1))
            rows["box"].append(np.concatenate([lo, hi - lo]))
    n = len(rows["imgname"])
    out = {
        "imgname": np.asarray(rows["imgname"], dtype=str),
        "frame": np.asarray(rows["frame"], np.int64),
        "body_id": np.asarray(rows["body_id"], np.int64),
        "joints_cam": np.asarray(rows["joints_cam"], np.float64).reshape(n, 19, 4),
        "keypoints_2d": np.asarray(rows["keypoints_2d"], np.float64).reshape(n, 19, 3),
        "box": np.asarray(rows["box"], np.float64).reshape(n, 4),
        "sequence": np.full(n, sequence),
        "camera": np.full(n, camera_name),
    }
    return out, skipped


def write_index(sequence_dir: str | Path, camera_name: str, out_file: str | Path, frame_step: int = 1,
                progress=None) -> Counter:
    """Write the npz index of one (sequence, camera); returns ``kept`` and skipped counts."""
    rows, counts = camera_rows(sequence_dir, camera_name, frame_step, progress)
    counts["kept"] += len(rows["imgname"])
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_file.with_name(out_file.name + ".tmp.npz")
    np.savez(tmp, **rows)
    tmp.replace(out_file)
    return counts


def sequence_code(sequence: str) -> int:
    """Index of a sequence among the CRMH protocol's four (``PANOPTIC_SEQUENCES``); -1 for any other."""
    name = str(sequence)
    return PANOPTIC_SEQUENCES.index(name) if name in PANOPTIC_SEQUENCES else -1


def load_panoptic_records(index_files: list[str | Path], image_root: str | Path,
                          dataset: str = "panoptic") -> tuple[list[PersonRecord], Counter]:
    """Records of Panoptic index files: COCO-17 2D keypoints (v 2 visible, 0 otherwise), COCO-17 3D joints.

    ``extra`` holds ``joints_panoptic19`` (19, 4) camera-frame metres + confidence (the CRMH evaluation's
    ground truth), ``sequence``, ``sequence_code`` (:func:`sequence_code`), ``camera``, ``frame`` and
    ``body_id``. Image ids are unique across files.
    """
    image_root = Path(image_root)
    records: list[PersonRecord] = []
    skipped: Counter = Counter()
    image_ids: dict[str, int] = {}
    for index_file in index_files:
        index_file = Path(index_file)
        if not index_file.is_file():
            raise MissingFileError(f"Panoptic index not found: {index_file} (run `python -m ochmr_lit.prepare "
                                   "panoptic --raw <Panoptic root> --out <dir>`)")
        data = np.load(index_file, allow_pickle=False)
        names = data["imgname"].astype(str)
        kp, present = convert_keypoints(data["keypoints_2d"], "panoptic19", "coco17")
        kp = kp * present[:, None]
        kp[..., 2] = np.where(kp[..., 2] > 0, 2.0, 0.0)
        kp3, present3 = convert_keypoints(data["joints_cam"], "panoptic19", "coco17")
        kp3 = kp3 * present3[:, None]
        kp3[..., 3] = (kp3[..., 3] > CONF_THRESHOLD).astype(np.float64)
        centers = body_centers(kp, data["box"])
        rows_of_image: dict[str, list[int]] = {}
        for i, name in enumerate(names):
            rows_of_image.setdefault(name, []).append(i)
        for name, rows in rows_of_image.items():
            image_id = image_ids.setdefault(name, len(image_ids))
            for i in rows:
                records.append(PersonRecord(
                    image_path=image_root / name, image_id=image_id, ann_id=len(records), box=data["box"][i],
                    center=centers[i], image_centers=centers[rows], dataset=dataset, keypoints=kp[i],
                    keypoints_3d=kp3[i], extra={
                        "joints_panoptic19": data["joints_cam"][i], "sequence": str(data["sequence"][i]),
                        "camera": str(data["camera"][i]), "frame": int(data["frame"][i]),
                        "body_id": int(data["body_id"][i]), "sequence_code": sequence_code(data["sequence"][i])}))
    return records, skipped
