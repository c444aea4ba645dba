"""The synthetic SMPL-format body model: generated once into the cache, same files and arrays as SMPL's.

Real SMPL files are licensed and never shipped; so that everything runs out of the box, the project
generates a person-shaped body model in SMPL's exact formats (see :func:`generate_synthetic_body_model`
for the files and :mod:`ochmr_lit.body.synthetic_mesh` for how the surface is built). The output is
deterministic: the same version writes byte-identical files.
"""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ochmr_lit.body.synthetic_mesh import (
    JOINT_NAMES,
    NUM_FACES,
    NUM_VERTICES,
    PARENTS,
    PHYSIQUES,
    body_primitives,
    build_surface,
    design_points,
    rest_joints,
)
from ochmr_lit.body.synthetic_rig import (
    EXTRA_JOINT_NAMES,
    H36M_JOINT_NAMES,
    anatomical_targets,
    convex_regressor,
    landmark_order,
    landmark_targets,
    reorder,
    shape_directions,
    skinning_weights,
)
from ochmr_lit.paths import cache_dir

SYNTHETIC_VERSION = "synthetic_v1"
MODEL_FILES: dict[str, str] = {
    "neutral": "SMPL_NEUTRAL.pkl", "male": "SMPL_MALE.pkl", "female": "SMPL_FEMALE.pkl",
}
REGRESSOR_FILES: dict[str, str] = {"h36m": "J_regressor_h36m.npy", "extra": "J_regressor_extra.npy"}
MEAN_PARAMS_FILE = "smpl_mean_params.npz"
SYNTHETIC_FILES: tuple[str, ...] = (*MODEL_FILES.values(), *REGRESSOR_FILES.values(), MEAN_PARAMS_FILE)
NUM_POSE_BASIS = 207  # 23 joints x 9 rotation-matrix entries


def _rig(gender: str, splits: np.ndarray | None, order: np.ndarray | None) -> dict:
    """Arrays of one gender's model; ``splits``/``order`` from the neutral body fix the topology."""
    physique = PHYSIQUES[gender]
    points = design_points(physique)
    prims = body_primitives(points, physique)
    vertices, faces, splits = build_surface(physique, splits)
    if order is None:
        order = landmark_order(vertices, landmark_targets(points, physique.height))
    vertices, faces = reorder(vertices, faces, order)
    j_regressor = convex_regressor(vertices, rest_joints(points))
    joints = j_regressor @ vertices
    weights = skinning_weights(vertices, faces, prims)
    kintree = np.stack([PARENTS, np.arange(len(JOINT_NAMES))]).astype(np.int64)
    kintree[0, 0] = 2**32 - 1  # as in the official files: uint32 with the root's parent at 4294967295
    model = {
        "f": faces.astype(np.uint32),
        "J_regressor": sp.csc_matrix(j_regressor),
        "kintree_table": kintree.astype(np.uint32),
        "J": joints,
        "weights": weights,
        "posedirs": np.zeros((NUM_VERTICES, 3, NUM_POSE_BASIS), dtype=np.float32),
        "bs_style": "lbs",
        "v_template": vertices,
        "shapedirs": shape_directions(vertices, weights, joints, prims),
        "bs_type": "lrotmin",
    }
    return {"model": model, "points": points, "splits": splits, "order": order, "height": physique.height}


def _mean_params() -> dict[str, np.ndarray]:
    """SPIN's mean parameters for the synthetic body: facing the camera, identity joints, zero shape."""
    rotmats = np.tile(np.eye(3), (len(JOINT_NAMES), 1, 1))
    rotmats[0] = np.diag([1.0, -1.0, -1.0])  # 180 degrees about x: SMPL is y-up, the camera is y-down
    return {
        "pose": rotmats[:, :, :2].reshape(-1).astype(np.float32),  # SPIN's 6D: first two columns
        "shape": np.zeros(10, dtype=np.float32),
        "cam": np.array([0.9, 0.0, 0.0], dtype=np.float32),
    }


def save_npz_reproducible(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez`` with fixed zip timestamps (``np.savez`` stamps the current time; this is reproducible)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asarray(array), allow_pickle=False)


def generate_synthetic_body_model(out_dir: str | Path) -> Path:
    """Write the synthetic body model into ``out_dir`` (created); returns it.

    Files (the names, keys, shapes and dtypes of the real ones):

    - ``SMPL_NEUTRAL.pkl``, ``SMPL_MALE.pkl``, ``SMPL_FEMALE.pkl``: pickled dicts (protocol 2) with
      ``v_template (6890, 3)`` m, ``f (13776, 3) uint32``, ``J_regressor`` (scipy csc, 24 x 6890),
      ``weights (6890, 24)``, ``posedirs (6890, 3, 207)`` (zero: no pose correctives; float32),
      ``shapedirs (6890, 3, 10)`` m per unit beta, ``kintree_table (2, 24) uint32``, ``J (24, 3)`` m,
      ``bs_type``, ``bs_style``;
    - ``J_regressor_h36m.npy (17, 6890)`` and ``J_regressor_extra.npy (9, 6890)``: convex vertex weights
      (rows sum to 1) for the H36M-17 joints and SPIN's 9 extra joints;
    - ``smpl_mean_params.npz``: ``pose (144,)`` SPIN 6D, ``shape (10,)``, ``cam (3,)``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    neutral = _rig("neutral", None, None)
    rigs = {"neutral": neutral}
    for gender in ("male", "female"):
        rigs[gender] = _rig(gender, neutral["splits"], neutral["order"])
    for gender, rig in rigs.items():
        model = rig["model"]
        assert model["v_template"].shape == (NUM_VERTICES, 3) and model["f"].shape == (NUM_FACES, 3)
        with (out / MODEL_FILES[gender]).open("wb") as f:
            pickle.dump(model, f, protocol=2)
    targets = anatomical_targets(neutral["points"], neutral["height"])
    vertices = neutral["model"]["v_template"]
    for kind, names in (("h36m", H36M_JOINT_NAMES), ("extra", EXTRA_JOINT_NAMES)):
        regressor = convex_regressor(vertices, np.stack([targets[n] for n in names]))
        np.save(out / REGRESSOR_FILES[kind], regressor)
    save_npz_reproducible(out / MEAN_PARAMS_FILE, _mean_params())
    return out


def default_synthetic_dir() -> Path:
    """``<cache>/body_model/synthetic_v1``: where the synthetic model lives unless told otherwise."""
    return cache_dir() / "body_model" / SYNTHETIC_VERSION


def ensure_synthetic_body_model(dir: str | Path | None = None) -> Path:
    """The synthetic body model folder, generated on first use (a few seconds); returns its path.

    Args:
        dir: target folder; None is :func:`default_synthetic_dir`. A folder that already holds all six
            files is used as it is.

    Generation writes into a temporary sibling folder and renames it into place, so concurrent
    processes never see a half-written model.
    """
    target = Path(dir) if dir is not None else default_synthetic_dir()
    if all((target / name).is_file() for name in SYNTHETIC_FILES):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        generate_synthetic_body_model(tmp)
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is an ordinary folder
        if target.exists() and not any(target.iterdir()):
            target.rmdir()
        try:
            os.rename(tmp, target)
        except OSError as err:  # another process finished first, or a foreign folder is in the way
            if not all((target / name).is_file() for name in SYNTHETIC_FILES):
                raise FileExistsError(f"{target} exists but lacks some of {list(SYNTHETIC_FILES)}; delete it "
                                      "so that the synthetic body model can be generated there") from err
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
