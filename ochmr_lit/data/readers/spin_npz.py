"""Person records from SPIN's preprocessed npz files (H36M, MPI-INF-3DHP, LSP, LSP-extended, MPII, COCO).

SPIN's ``dataset_extras/*.npz`` hold one row per person: ``imgname`` (relative to the dataset's image
root), ``center`` (2,) px and ``scale`` (= box side / 200), ``part`` (24, 3) 2D joints in SPIN's 24-joint
order with visibility, optionally ``S`` (24, 4) camera-frame 3D joints in metres with confidence,
``pose`` (72,), ``shape`` (10,), ``has_smpl``, ``openpose`` (25, 3) and ``gender`` ('m'/'f'). Joints are
mapped to COCO-17 through the keypoint registry; labels a file lacks are masked. ``S`` itself stays in
``extra['S']`` (the ground truth of SPIN's H36M and MPI-INF-3DHP evaluation).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from ochmr_lit.body.keypoints import convert_keypoints
from ochmr_lit.data.centermaps import body_centers
from ochmr_lit.data.schema import PersonRecord
from ochmr_lit.errors import MissingFileError

REQUIRED_KEYS = ("imgname", "center", "scale")
GENDER_LETTERS = {"m": 1, "f": 2, "n": 0}


def _check(path: Path, data, key: str, shape: tuple[int, ...], n: int) -> np.ndarray:
    value = np.asarray(data[key])
    if value.ndim == 0 or value.shape[0] != n or tuple(value.shape[1:]) != shape:
        expected = ", ".join(map(str, (n, *shape))) + ("," if not shape else "")
        raise ValueError(f"{path}: key '{key}' has shape {value.shape}, expected ({expected}) (one row per person of "
                         "'imgname') as in SPIN's preprocessed files")
    return value


def load_spin_npz_records(npz_file: str | Path, image_root: str | Path, dataset: str,
                          scale_factor: float = 1.2, key: str | None = None) -> tuple[list[PersonRecord], Counter]:
    """Records of every person in a SPIN-format npz.

    The box is the square of side ``scale * 200 / scale_factor`` around ``center``, so the crop
    (``scale_factor`` x box side) covers exactly SPIN's ``scale * 200`` pixels. ``key``: the config key that
    names ``npz_file`` (``data.npz_files.train``), said when the file is missing.
    """
    npz_file, image_root = Path(npz_file), Path(image_root)
    if not npz_file.is_file():
        where = f"{key}={npz_file}" if key else f"SPIN npz {npz_file}"
        raise MissingFileError(f"{where}: no such file; put SPIN's {npz_file.name} (its preprocessed dataset_extras) "
                               f"there, or correct {key or 'the dataset npz path of the data config'} (or "
                               "paths.data_root)")
    data = np.load(npz_file, allow_pickle=False)
    missing = [k for k in REQUIRED_KEYS if k not in data.files]
    if missing:
        raise ValueError(f"{npz_file}: missing keys {missing}; SPIN npz files hold {list(REQUIRED_KEYS)} at least")
    names = np.asarray(data["imgname"]).astype(str)
    if names.ndim != 1:
        raise ValueError(f"{npz_file}: key 'imgname' has shape {names.shape}, expected (N,) image paths, one per "
                         "person, as in SPIN's preprocessed files")
    n = len(names)
    center = _check(npz_file, data, "center", (2,), n).astype(np.float64)
    scale = _check(npz_file, data, "scale", (), n).astype(np.float64)
    side = scale * 200.0 / scale_factor
    boxes = np.stack([center[:, 0] - side / 2, center[:, 1] - side / 2, side, side], axis=1)

    keypoints = None
    if "part" in data.files:
        part = _check(npz_file, data, "part", (24, 3), n)
        coco, present = convert_keypoints(part.astype(np.float64), "spin24", "coco17")
        keypoints = np.asarray(coco) * present[None, :, None]
        keypoints[..., 2] = np.where(keypoints[..., 2] > 0, 2.0, 0.0)
    keypoints_3d = s3d = None
    if "S" in data.files:
        s3d = _check(npz_file, data, "S", (24, 4), n).astype(np.float64)
        coco3d, present = convert_keypoints(s3d, "spin24", "coco17")
        keypoints_3d = np.asarray(coco3d) * present[None, :, None]
    has_smpl = _check(npz_file, data, "has_smpl", (), n).astype(bool) if "has_smpl" in data.files else np.zeros(n, bool)
    pose = _check(npz_file, data, "pose", (72,), n) if "pose" in data.files else None
    shape = _check(npz_file, data, "shape", (10,), n) if "shape" in data.files else None
    genders = _check(npz_file, data, "gender", (), n).astype(str) if "gender" in data.files else np.full(n, "n")

    centres = body_centers(keypoints, boxes)
    records, skipped = [], Counter()
    image_ids = {name: i for i, name in enumerate(dict.fromkeys(names))}
    # Rows of the same image are the people of that image: their centres make the global centermap.
    rows_of_image: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        rows_of_image.setdefault(name, []).append(i)
    for i in range(n):
        if not (np.isfinite(boxes[i]).all() and side[i] > 1):
            skipped["invalid_box"] += 1
            continue
        smpl = bool(has_smpl[i]) and pose is not None and shape is not None
        records.append(PersonRecord(
            image_path=image_root / names[i], image_id=image_ids[names[i]], ann_id=i, box=boxes[i],
            center=centres[i], image_centers=centres[rows_of_image[names[i]]], dataset=dataset,
            keypoints=None if keypoints is None else keypoints[i],
            keypoints_3d=None if keypoints_3d is None else keypoints_3d[i],
            smpl_pose=pose[i].astype(np.float64) if smpl else None,
            smpl_betas=shape[i].astype(np.float64) if smpl else None,
            gender=GENDER_LETTERS.get(genders[i][:1].lower(), 0),
            extra={} if s3d is None else {"S": s3d[i]}))
    return records, skipped
