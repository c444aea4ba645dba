"""3DPW from its official sequence pickles, as a SPIN-format npz index and as person records.

An official file ``sequenceFiles/{train,validation,test}/<sequence>.pkl`` is a Python-2 (latin1) pickle of
numpy arrays and plain containers, read through :mod:`ochmr_lit.safe_pickle` (it never runs code). Per
sequence of N image frames and P actors it holds ``sequence`` (name), ``genders`` (P, 'm'/'f'),
``betas`` (P, 10), ``poses`` (P, N, 72) world-frame axis-angle, ``trans`` (P, N, 3) metres,
``jointPositions`` (P, N, 72) world-frame SMPL joints in metres, ``poses2d`` (P, N, 3, 18) OpenPose
COCO-18 detections (x, y, confidence), ``cam_poses`` (N, 4, 4) world -> camera extrinsics,
``cam_intrinsics`` (3, 3), ``campose_valid`` (P, N) and ``img_frame_ids``.

Following SPIN's ``pw3d.py`` preprocessing: only ``campose_valid`` frames are kept; the global orientation
is rotated into the camera frame with the frame's extrinsics; the person box is the extent of the
detected 2D keypoints (confidence > 0), and the crop side is 1.2 x its longest side (SPIN's ``scale`` =
1.2 x max side / 200). The index npz carries SPIN's keys (``imgname, center, scale, pose, shape,
has_smpl, gender, part, S, openpose``) so :func:`~ochmr_lit.data.readers.spin_npz.load_spin_npz_records`
reads it, plus the 3DPW fields (``sequence, frame, person, box, trans, cam_pose, joints_smpl24``).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from ochmr_lit.body.keypoints import convert_keypoints
from ochmr_lit.data.readers.spin_npz import load_spin_npz_records
from ochmr_lit.data.schema import PersonRecord
from ochmr_lit.errors import MissingFileError
from ochmr_lit.eval.protocols import in_3dpw_occ, in_3dpw_pc
from ochmr_lit.safe_pickle import safe_load_pickle

#: The official split folders under ``sequenceFiles/``.
PW3D_SPLITS: tuple[str, ...] = ("train", "validation", "test")
#: Keys every official sequence pickle holds and this reader uses.
REQUIRED_KEYS: tuple[str, ...] = ("sequence", "genders", "betas", "poses", "trans", "jointPositions", "poses2d",
                                  "cam_poses", "campose_valid")
#: Subsets of 3DPW: all people, 3DPW-PC (ROMP) or 3DPW-OCC (PARE).
SUBSETS: tuple[str, ...] = ("all", "pc", "occ")
#: OpenPose's COCO-18 output is BODY_25 without the mid-hip (25's index 8) and the six foot points: the
#: position of each COCO-18 point in BODY_25 (``openpose25`` in the keypoint registry).
OPENPOSE18_IN_25: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)
SPIN_SCALE_UNIT = 200.0


def _key(data: dict, key: str, path: Path):
    if key not in data:
        raise KeyError(f"{path}: key '{key}' missing; official 3DPW sequence pickles hold {list(REQUIRED_KEYS)} "
                       "(re-download sequenceFiles.zip from the 3DPW site)")
    return data[key]


def _people_array(value, path: Path, key: str, tail: tuple[int, ...] | None, num_frames: int | None) -> np.ndarray:
    """Stack a per-actor list into (P, ...) float64 and check its trailing shape (None: unchecked)."""
    try:
        arr = np.stack([np.asarray(v, dtype=np.float64) for v in value])
    except ValueError as error:
        raise ValueError(f"{path}: key '{key}' holds arrays of different shapes ({error})") from error
    if tail is None:
        return arr
    expect = ((num_frames,) if num_frames is not None else ()) + tail
    if arr.shape[1:] != expect:
        raise ValueError(f"{path}: key '{key}' has shape {arr.shape}, expected (P, {', '.join(map(str, expect))})")
    return arr


def read_sequence(path: str | Path) -> dict:
    """One official 3DPW sequence pickle as arrays, checked.

    Returns:
        dict with ``sequence`` (str), ``genders`` (P,) str, ``betas`` (P, 10), ``poses`` (P, N, 72),
        ``trans`` (P, N, 3) m, ``joints`` (P, N, 24, 3) world m, ``poses2d`` (P, N, 18, 3) px + confidence,
        ``cam_poses`` (N, 4, 4), ``campose_valid`` (P, N) bool.
    """
    path = Path(path)
    data = safe_load_pickle(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a dict (an official 3DPW sequence pickle), got {type(data).__name__}")
    data = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in data.items()}
    sequence = _key(data, "sequence", path)
    sequence = sequence.decode("latin1") if isinstance(sequence, bytes) else str(sequence)
    cam_poses = np.asarray(_key(data, "cam_poses", path), dtype=np.float64)
    if cam_poses.ndim != 3 or cam_poses.shape[1:] != (4, 4):
        raise ValueError(f"{path}: key 'cam_poses' has shape {cam_poses.shape}, expected (N, 4, 4)")
    n = cam_poses.shape[0]
    genders = [g.decode("latin1") if isinstance(g, bytes) else str(g) for g in _key(data, "genders", path)]
    betas = _people_array(_key(data, "betas", path), path, "betas", None, None)
    if betas.ndim != 2 or betas.shape[1] < 10:
        raise ValueError(f"{path}: key 'betas' has shape {betas.shape}, expected (P, >= 10)")
    out = {
        "sequence": sequence,
        "genders": np.asarray(genders),
        "betas": betas[:, :10],
        "poses": _people_array(_key(data, "poses", path), path, "poses", (72,), n),
        "trans": _people_array(_key(data, "trans", path), path, "trans", (3,), n),
        "joints": _people_array(_key(data, "jointPositions", path), path, "jointPositions", (72,), n).reshape(
            -1, n, 24, 3),
        "poses2d": _people_array(_key(data, "poses2d", path), path, "poses2d", (3, 18), n).transpose(0, 1, 3, 2),
        "cam_poses": cam_poses,
        "campose_valid": _people_array(_key(data, "campose_valid", path), path, "campose_valid", (), n).astype(bool),
    }
    p = out["poses"].shape[0]
    for key in ("genders", "betas", "trans", "joints", "poses2d", "campose_valid"):
        if out[key].shape[0] != p:
            raise ValueError(f"{path}: {p} actors in 'poses' but {out[key].shape[0]} in '{key}'")
    return out


def rotate_global_orient(pose: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """Pose with its global orientation turned by ``rotation``: ``R_root' = rotation @ R_root``.

    Args:
        pose: (..., 72) axis-angle, radians.
        rotation: (..., 3, 3) (e.g. the world -> camera rotation of the extrinsics).
    Returns:
        (..., 72) float64, the body pose unchanged.
    """
    pose = np.array(pose, dtype=np.float64)
    rotation = np.broadcast_to(np.asarray(rotation, np.float64), pose.shape[:-1] + (3, 3))
    root = Rotation.from_rotvec(pose[..., :3].reshape(-1, 3)).as_matrix()
    turned = rotation.reshape(-1, 3, 3) @ root
    pose[..., :3] = Rotation.from_matrix(turned).as_rotvec().reshape(pose.shape[:-1] + (3,))
    return pose


def camera_frame_smpl(pose: np.ndarray, trans: np.ndarray, extrinsics: np.ndarray,
                      root_joint: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """World-frame SMPL parameters to the camera frame of ``extrinsics`` (``x_cam = R x_world + t``).

    SMPL rotates about its root joint ``J0`` (which depends on the shape and the model), so the camera-frame
    translation is ``R (trans + J0) + t - J0``.

    Args:
        pose: (N, 72) axis-angle; trans: (N, 3) metres; extrinsics: (N, 4, 4) or (4, 4).
        root_joint: (N, 3) or (3,) rest-pose root joint of the body model with these betas, metres; None
            uses 0 (exact for the orientation, and for the translation of a model whose root is at 0).
    Returns:
        ``pose_cam`` (N, 72) and ``trans_cam`` (N, 3) metres.
    """
    extrinsics = np.asarray(extrinsics, np.float64)
    rot, t = extrinsics[..., :3, :3], extrinsics[..., :3, 3]
    j0 = np.zeros(3) if root_joint is None else np.asarray(root_joint, np.float64)
    trans = np.asarray(trans, np.float64)
    trans_cam = np.einsum("...ij,...j->...i", rot, trans + j0) + t - j0
    return rotate_global_orient(pose, rot), trans_cam


def to_camera(points: np.ndarray, extrinsics: np.ndarray) -> np.ndarray:
    """World points (..., J, 3) to the camera frame of ``extrinsics`` (..., 4, 4): ``R x + t``."""
    extrinsics = np.asarray(extrinsics, np.float64)
    return np.einsum("...ij,...kj->...ki", extrinsics[..., :3, :3], points) + extrinsics[..., None, :3, 3]


def keypoint_box(keypoints: np.ndarray) -> np.ndarray:
    """Extent of the keypoints with confidence > 0, xywh px; NaN where a person has none.

    Args:
        keypoints: (..., J, 3) ``[x, y, confidence]``.
    Returns:
        (..., 4) float64.
    """
    kp = np.asarray(keypoints, np.float64)
    seen = kp[..., 2] > 0
    inf = np.inf
    lo = np.where(seen[..., None], kp[..., :2], inf).min(axis=-2)
    hi = np.where(seen[..., None], kp[..., :2], -inf).max(axis=-2)
    box = np.concatenate([lo, hi - lo], axis=-1)
    box[~seen.any(axis=-1)] = np.nan
    return box


def openpose18_to_25(keypoints: np.ndarray) -> np.ndarray:
    """OpenPose COCO-18 (..., 18, C) into BODY_25 order (..., 25, C), zeros for the points COCO-18 lacks."""
    kp = np.asarray(keypoints, np.float64)
    out = np.zeros(kp.shape[:-2] + (25, kp.shape[-1]))
    out[..., list(OPENPOSE18_IN_25), :] = kp
    return out


def sequence_rows(path: str | Path, scale_factor: float = 1.2) -> tuple[dict[str, np.ndarray], Counter]:
    """SPIN-format rows of every (actor, frame) with a valid camera pose, and what was skipped.

    Rows are ordered frame by frame (the actors of a frame together). Skipped reasons:
    ``campose_invalid`` (frame not in ``campose_valid``), ``no_2d_keypoints`` (no detected joint, no box).
    """
    path = Path(path)
    seq = read_sequence(path)
    valid = seq["campose_valid"]
    kp_box = keypoint_box(seq["poses2d"])  # (P, N, 4)
    has_box = np.all(np.isfinite(kp_box), axis=-1) & (np.maximum(kp_box[..., 2], kp_box[..., 3]) > 0)
    skipped = Counter({"campose_invalid": int((~valid).sum()), "no_2d_keypoints": int((valid & ~has_box).sum())})
    keep = valid & has_box
    frames, people = np.nonzero(keep.T)  # frame-major order
    box = kp_box[people, frames]
    extr = seq["cam_poses"][frames]
    pose_cam = rotate_global_orient(seq["poses"][people, frames], extr[:, :3, :3])
    joints_cam = to_camera(seq["joints"][people, frames], extr)
    openpose = openpose18_to_25(seq["poses2d"][people, frames])
    part, present = convert_keypoints(openpose, "openpose25", "spin24")
    part = part * present[:, None]
    s_joints, s_present = convert_keypoints(joints_cam, "smpl24", "spin24")
    s24 = np.concatenate([s_joints, np.broadcast_to(s_present[:, None], s_joints.shape[:-1] + (1,))], axis=-1)
    name = seq["sequence"]
    rows = {
        "imgname": np.array([f"imageFiles/{name}/image_{f:05d}.jpg" for f in frames]),
        "center": box[:, :2] + box[:, 2:] / 2,
        "scale": scale_factor * np.maximum(box[:, 2], box[:, 3]) / SPIN_SCALE_UNIT,
        "pose": pose_cam,
        "shape": seq["betas"][people],
        "has_smpl": np.ones(len(frames)),
        "gender": seq["genders"][people],
        "part": part,
        "S": s24.astype(np.float64),
        "openpose": openpose,
        "sequence": np.full(len(frames), name),
        "frame": frames.astype(np.int64),
        "person": people.astype(np.int64),
        "box": box,
        "trans": seq["trans"][people, frames],
        "cam_pose": extr,
        "joints_smpl24": joints_cam,
    }
    return rows, skipped


def write_index(pickles: list[Path], out_file: str | Path, scale_factor: float = 1.2,
                progress=None) -> Counter:
    """Convert sequence pickles into one SPIN-format npz index; returns counts (``kept`` and skipped reasons).

    Args:
        pickles: official sequence pickles (e.g. all of ``sequenceFiles/test``).
        out_file: the npz to write (atomically).
        progress: optional callable wrapping the iteration over files (a progress bar).
    """
    out_file = Path(out_file)
    parts: list[dict[str, np.ndarray]] = []
    counts: Counter = Counter()
    files = sorted(Path(p) for p in pickles)
    for path in (progress(files) if progress is not None else files):
        rows, skipped = sequence_rows(path, scale_factor)
        counts.update(skipped)
        counts["kept"] += len(rows["imgname"])
        parts.append(rows)
    if not parts:
        raise MissingFileError(f"no 3DPW sequence pickles to index into {out_file}")
    merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_file.with_name(out_file.name + ".tmp.npz")
    np.savez(tmp, **merged)
    tmp.replace(out_file)
    return counts


def load_3dpw_records(index_files: list[str | Path], image_root: str | Path, subset: str = "all",
                      scale_factor: float = 1.2) -> tuple[list[PersonRecord], Counter]:
    """Person records of one or more 3DPW index npz files (from :func:`write_index`), optionally a subset.

    Image and annotation ids are made unique across the files (offset by the preceding files' counts).
    Each record's ``extra`` holds ``sequence``, ``frame``, ``person``, ``trans`` (world, m), ``cam_pose``
    (4, 4) and ``joints_smpl24`` (24, 3) camera-frame metres. Skipped reasons: ``not_in_3dpw_pc`` /
    ``not_in_3dpw_occ`` for people outside the subset, plus those of the SPIN npz reader.
    """
    if subset not in SUBSETS:
        raise ValueError(f"3DPW subset must be one of {SUBSETS}, got {subset!r}")
    records: list[PersonRecord] = []
    skipped: Counter = Counter()
    image_offset = ann_offset = 0
    for index_file in index_files:
        part, part_skipped = load_spin_npz_records(index_file, image_root, "3dpw", scale_factor=scale_factor)
        skipped.update(part_skipped)
        data = np.load(index_file, allow_pickle=False)
        missing = [k for k in ("sequence", "frame", "person") if k not in data.files]
        if missing:
            raise ValueError(f"{index_file}: keys {missing} missing; rebuild it with "
                             "`python -m ochmr_lit.prepare 3dpw --raw <3DPW root> --out <dir>`")
        sequences, frames = data["sequence"].astype(str), data["frame"]
        extra_keys = [k for k in ("person", "trans", "cam_pose", "joints_smpl24") if k in data.files]
        extras = {k: data[k] for k in extra_keys}
        for record in part:
            row = record.ann_id
            seq, frame = str(sequences[row]), int(frames[row])
            if subset == "pc" and not in_3dpw_pc(seq, frame):
                skipped["not_in_3dpw_pc"] += 1
                continue
            if subset == "occ" and not in_3dpw_occ(seq):
                skipped["not_in_3dpw_occ"] += 1
                continue
            record.extra = {"sequence": seq, "frame": frame, **{k: v[row] for k, v in extras.items()}}
            record.image_id += image_offset
            record.ann_id += ann_offset
            records.append(record)
        image_offset += len(np.unique(data["imgname"]))
        ann_offset += len(data["imgname"])
    return records, skipped
