"""Result files of one image: ``<stem>.json`` and ``<stem>.npz`` (same content), meshes as ``.obj`` or ``.ply``.

JSON layout (metres, radians, image pixels)::

    {"image": "003799.jpg", "width": 900, "height": 864, "box_source": "gt",
     "camera": {"focal_length": F, "principal_point": [cx, cy], "focal_length_source": "image_diagonal"},
     "people": [{"box": [x, y, w, h], "box_score": 1.0, "ann_id": 1, "center": [x, y],
                 "smpl": {"global_orient": [3], "body_pose": [69], "betas": [10]},
                 "cam_t": [x, y, z], "cam_crop": [s, tx, ty],
                 "camera": {"translation": [3], "crop_weak_perspective": [s, tx, ty],
                            "crop_translation": [3], "crop_focal_length": 1428.571429, "crop_size": 64},
                 "keypoints_3d": [[x, y, z] x 17], "keypoints_2d": [[x, y, score] x 17]}, ...],
     "keypoint_convention": "coco17"}

The image camera (:mod:`ochmr_lit.inference.camera`), shared by all people of the image: focal length
``camera.focal_length`` px (by default the image diagonal ``sqrt(W^2 + H^2)``, ``focal_length_source``
``image_diagonal``; ``given`` when set with ``focal_length=``) and principal point ``camera.principal_point`` px
(the image centre). A person's body point ``X`` (metres, body frame) is at ``X + cam_t`` in the camera frame
(metres, x right, y down, z forward) and projects to ``focal_length * (X + cam_t)_xy / (X + cam_t)_z +
principal_point``. ``cam_crop`` is the regressor's weak-perspective camera of the person's crop (normalised crop
coordinates, unitless); the person's ``camera`` block keeps the same numbers under their older names
(``translation`` = ``cam_t``, ``crop_weak_perspective`` = ``cam_crop``) with the crop camera's perspective
translation (metres) at its focal length (px) and crop side (px). ``keypoints_2d`` is the model's 2D prediction:
the crop camera's projection of ``keypoints_3d``, mapped back to the image; the image camera's projection agrees
with it exactly at the body origin. The npz holds the same numbers as arrays (``pose (N, 72)``, ``betas``,
``cam_t`` and ``translation (N, 3)``, ``cam_crop``, ``cam_t_crop``, ``focal_length``, ``principal_point``,
``crop_focal_length``, ``crop_size``, ``keypoints_3d``, ``keypoints_2d``, ``vertices (N, 6890, 3)``, ``boxes``,
...).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ochmr_lit.data.schema import KEYPOINT_CONVENTION
from ochmr_lit.errors import ConfigError
from ochmr_lit.inference.pipeline import ImagePrediction
from ochmr_lit.inference.predict_settings import MESH_FORMATS


def _round(values: np.ndarray, digits: int = 6) -> list:
    return np.round(np.asarray(values, np.float64), digits).tolist()


def prediction_to_dict(pred: ImagePrediction) -> dict:
    """The JSON-ready dict of one image's prediction (layout in the module docstring)."""
    width, height = pred.image_size
    boxes = pred.boxes
    people = []
    for i in range(pred.num_people):
        people.append({
            "box": _round(boxes.boxes[i], 3), "box_score": float(boxes.scores[i]), "ann_id": int(boxes.ann_ids[i]),
            "center": _round(boxes.centers[i], 3),
            "smpl": {"global_orient": _round(pred.pose[i, :3]), "body_pose": _round(pred.pose[i, 3:]),
                     "betas": _round(pred.betas[i])},
            "cam_t": _round(pred.translation[i]), "cam_crop": _round(pred.cam_crop[i]),
            "camera": {"translation": _round(pred.translation[i]), "crop_weak_perspective": _round(pred.cam_crop[i]),
                       "crop_translation": _round(pred.cam_t_crop[i]), "crop_focal_length": pred.crop_focal_length,
                       "crop_size": pred.crop_size},
            "keypoints_3d": _round(pred.keypoints_3d[i]),
            "keypoints_2d": _round(pred.keypoints_2d[i], 4),
        })
    return {"image": boxes.image_path.name, "image_id": int(boxes.image_id), "width": width, "height": height,
            "box_source": boxes.source, "keypoint_convention": KEYPOINT_CONVENTION,
            "camera": {"focal_length": pred.focal_length, "principal_point": _round(pred.principal_point),
                       "focal_length_source": pred.focal_length_source},
            "people": people}


def write_json(pred: ImagePrediction, path: str | Path) -> Path:
    """Writes :func:`prediction_to_dict` as JSON; returns the path."""
    path = Path(path)
    path.write_text(json.dumps(prediction_to_dict(pred), indent=1))
    return path


def write_npz(pred: ImagePrediction, path: str | Path) -> Path:
    """Writes the prediction's arrays (float32 meshes, float64 cameras and keypoints) to an npz."""
    path = Path(path)
    boxes = pred.boxes
    np.savez_compressed(
        path, image=np.array(boxes.image_path.name), boxes=boxes.boxes, box_scores=boxes.scores,
        centers=boxes.centers, ann_ids=boxes.ann_ids, pose=pred.pose.astype(np.float32),
        betas=pred.betas.astype(np.float32), cam_crop=pred.cam_crop, cam_t_crop=pred.cam_t_crop,
        crop_affine=pred.crop_affine, crop_focal_length=np.float64(pred.crop_focal_length),
        crop_size=np.int64(pred.crop_size), focal_length=np.float64(pred.focal_length),
        focal_length_source=np.array(pred.focal_length_source), principal_point=pred.principal_point,
        cam_t=pred.translation, translation=pred.translation, keypoints_3d=pred.keypoints_3d,
        keypoints_2d=pred.keypoints_2d, vertices=pred.vertices.astype(np.float32))
    return path


def _mesh_arrays(vertices: np.ndarray, faces: np.ndarray, writer: str) -> tuple[np.ndarray, np.ndarray]:
    """(V, 3) vertices and (F, 3) 0-based faces as arrays; a ValueError naming ``writer`` when they are not."""
    vertices, faces = np.asarray(vertices), np.asarray(faces)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"{writer} needs (V, 3) vertices and (F, 3) faces, got {vertices.shape} and {faces.shape}")
    if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise ValueError(f"{writer}: face indices must lie in [0, {len(vertices)}), got [{faces.min()}, {faces.max()}]")
    return vertices, faces


def write_obj(path: str | Path, vertices: np.ndarray, faces: np.ndarray) -> Path:
    """A Wavefront OBJ of one mesh: (V, 3) vertices (metres), (F, 3) 0-based faces (written 1-based)."""
    path = Path(path)
    vertices, faces = _mesh_arrays(vertices, faces, "write_obj")
    vertices, faces = vertices.astype(np.float64), faces.astype(np.int64)
    lines = ["# ochmr_lit prediction, camera frame, metres"]
    lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices]
    lines += [f"f {a} {b} {c}" for a, b, c in faces + 1]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_ply(path: str | Path, vertices: np.ndarray, faces: np.ndarray) -> Path:
    """A binary little-endian PLY of one mesh: (V, 3) vertices (metres) and (F, 3) 0-based faces.

    Written by hand because no dependency of the project writes PLY (trimesh, plyfile and Open3D are not among
    them, and none is worth adding for this): the file is a fixed ASCII header followed by two packed
    arrays. Layout after the ``end_header`` line: V records of three little-endian float32 ``x y z`` (12 bytes
    each), then F records of a uchar vertex count (always 3) and three little-endian int32 indices (13 bytes
    each). Vertices are stored as float32 (the npz's precision; the OBJ's six decimals are coarser).
    """
    path = Path(path)
    vertices, faces = _mesh_arrays(vertices, faces, "write_ply")
    if len(vertices) > np.iinfo(np.int32).max:
        raise ValueError(f"write_ply: {len(vertices)} vertices do not fit int32 face indices")
    header = "\n".join([
        "ply", "format binary_little_endian 1.0", "comment ochmr_lit prediction, camera frame, metres",
        f"element vertex {len(vertices)}", "property float x", "property float y", "property float z",
        f"element face {len(faces)}", "property list uchar int vertex_indices", "end_header"]) + "\n"
    face_records = np.empty(len(faces), dtype=[("count", "u1"), ("indices", "<i4", (3,))])
    face_records["count"] = 3
    face_records["indices"] = faces
    with path.open("wb") as f:
        f.write(header.encode("ascii"))
        f.write(np.ascontiguousarray(vertices, dtype="<f4").tobytes())
        f.write(face_records.tobytes())
    return path


def write_meshes(pred: ImagePrediction, faces: np.ndarray, out_dir: str | Path, stem: str,
                 mesh_format: str = "obj") -> list[Path]:
    """One mesh file per person, ``<stem>_person<k>.<mesh_format>``, vertices in the full-image camera frame.

    Each mesh is placed at its person's ``translation`` (``cam_t``), so all of them together overlay the image
    under its camera (focal length ``pred.focal_length`` px, principal point ``pred.principal_point`` px).

    Args:
        pred: the image's prediction (N people).
        faces: (F, 3) 0-based vertex indices of the body model.
        out_dir: folder the files go to; stem: file name prefix (the image's stem).
        mesh_format: ``obj`` (:func:`write_obj`) or ``ply`` (:func:`write_ply`).
    Returns:
        The N paths written, in person order (none for an image without people).
    """
    if mesh_format not in MESH_FORMATS:
        raise ConfigError(f"mesh_format={mesh_format!r}; use one of {list(MESH_FORMATS)}")
    writer = write_obj if mesh_format == "obj" else write_ply
    out_dir = Path(out_dir)
    return [writer(out_dir / f"{stem}_person{i}.{mesh_format}", pred.vertices[i] + pred.translation[i], faces)
            for i in range(pred.num_people)]
