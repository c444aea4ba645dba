"""Body-model folders: which files they hold, and reading them (official, cleaned or ``.npz``).

A body-model folder (``paths.body_model_dir``) holds SMPL's three gendered models plus SPIN's regressors and
mean parameters::

    SMPL_NEUTRAL.pkl  SMPL_MALE.pkl  SMPL_FEMALE.pkl     (or the same names with .npz)
    J_regressor_h36m.npy  J_regressor_extra.npy  smpl_mean_params.npz

Models are read without chumpy and without running code (:func:`ochmr_lit.safe_pickle.safe_load_pickle`)
and handed to smplx as plain arrays. ``None`` stands for the synthetic model generated into the cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ochmr_lit.body.synthetic import (
    MEAN_PARAMS_FILE,
    MODEL_FILES,
    REGRESSOR_FILES,
    ensure_synthetic_body_model,
)
from ochmr_lit.errors import MissingFileError
from ochmr_lit.safe_pickle import safe_load_pickle

NUM_VERTICES = 6890
NUM_JOINTS = 24
NUM_BETAS = 10
REGRESSOR_ROWS = {"h36m": 17, "extra": 9}

EXPECTED_FILES: tuple[str, ...] = (
    "SMPL_NEUTRAL.pkl (or .npz)", "SMPL_MALE.pkl (or .npz)", "SMPL_FEMALE.pkl (or .npz)",
    REGRESSOR_FILES["h36m"], REGRESSOR_FILES["extra"], MEAN_PARAMS_FILE,
)


class BodyModelFileError(ValueError):
    """A body-model file lacks a key or has the wrong shape; the message names the file and the key."""


def _expected_listing() -> str:
    return ", ".join(EXPECTED_FILES)


def model_file(model_dir: Path, gender: str) -> Path | None:
    """The folder's model file for ``gender`` ('neutral', 'male', 'female'): ``.pkl`` first, then ``.npz``."""
    stem = Path(MODEL_FILES[gender]).stem
    for suffix in (".pkl", ".npz"):
        if (model_dir / f"{stem}{suffix}").is_file():
            return model_dir / f"{stem}{suffix}"
    return None


def resolve_body_model_dir(dir: str | Path | None) -> Path:
    """The body-model folder to use: ``dir`` checked for all six files, or the synthetic model for None.

    Raises:
        MissingFileError: ``dir`` is missing or lacks files; the message lists every expected file and
            which are missing.
    """
    if dir is None:
        return ensure_synthetic_body_model()
    path = Path(dir).expanduser()
    hint = ("set paths.body_model_dir (or OCHMR_BODY_MODEL_DIR) to a folder with these files (SMPL models from "
            "smpl.is.tue.mpg.de, regressors and mean parameters from SPIN's data), or paths.body_model_dir=null to "
            "use the synthetic body model generated into the cache")
    if not path.is_dir():
        raise MissingFileError(f"body model folder {path} does not exist. Expected files: {_expected_listing()}; "
                               f"{hint}")
    missing_genders = [g for g in MODEL_FILES if model_file(path, g) is None]
    missing = [EXPECTED_FILES[i] for i, g in enumerate(MODEL_FILES) if g in missing_genders]
    missing += [name for name in EXPECTED_FILES[3:] if not (path / name).is_file()]
    if missing:
        why = (f" (the {' and '.join(missing_genders)} model{'s' if len(missing_genders) > 1 else ''}: every "
               "gender is needed, e.g. for 3DPW's gendered ground truth)") if missing_genders else ""
        raise MissingFileError(f"body model folder {path} lacks {', '.join(missing)}{why}. Expected files: "
                               f"{_expected_listing()}; {hint}")
    return path


@dataclass(frozen=True)
class SMPLArrays:
    """One SMPL model as plain arrays, attribute names as smplx's ``data_struct`` expects them."""

    v_template: np.ndarray  # (6890, 3) float64, metres
    f: np.ndarray  # (13776, 3) int64
    J_regressor: np.ndarray  # (24, 6890) float64, dense
    weights: np.ndarray  # (6890, 24) float64
    posedirs: np.ndarray  # (6890, 3, 207) float64
    shapedirs: np.ndarray  # (6890, 3, 10) float64, the first 10 shape directions
    kintree_table: np.ndarray  # (2, 24) int64, row 0 parents


def _read_mapping(path: Path) -> dict:
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as npz:
            try:
                return {k: npz[k] for k in npz.files}
            except ValueError as err:  # an object array: pickled data inside the archive
                raise BodyModelFileError(f"{path}: holds pickled objects ({err}); save plain numpy arrays "
                                         "(J_regressor as a dense (24, 6890) array)") from err
    data = safe_load_pickle(path)
    if not isinstance(data, dict):
        raise BodyModelFileError(f"{path}: expected a pickled dict of arrays, found {type(data).__name__}")
    return data


def _array(data: dict, key: str, path: Path, ndim: int) -> np.ndarray:
    if key not in data:
        raise BodyModelFileError(f"{path}: no '{key}' (keys: {sorted(data)}); an SMPL model needs "
                                 "v_template, f, J_regressor, weights, posedirs, shapedirs and kintree_table")
    value = data[key]
    value = value.toarray() if sp.issparse(value) else np.asarray(value)
    if value.ndim != ndim:
        raise BodyModelFileError(f"{path}: '{key}' has shape {value.shape}, expected {ndim} dimensions")
    return value


def load_smpl_arrays(path: str | Path) -> SMPLArrays:
    """Read one SMPL model file (official chumpy ``.pkl``, cleaned ``.pkl`` or ``.npz``) into arrays.

    Raises:
        BodyModelFileError: a key is missing or an array has the wrong shape (message names file and key).
        ochmr_lit.safe_pickle.UnsafePickleError: the pickle names a class outside the allow-list.
    """
    path = Path(path)
    data = _read_mapping(path)
    v_template = _array(data, "v_template", path, 2).astype(np.float64)
    nv = v_template.shape[0]
    arrays = SMPLArrays(
        v_template=v_template,
        f=_array(data, "f", path, 2).astype(np.int64),
        J_regressor=_array(data, "J_regressor", path, 2).astype(np.float64),
        weights=_array(data, "weights", path, 2).astype(np.float64),
        posedirs=_array(data, "posedirs", path, 3).astype(np.float64),
        shapedirs=_array(data, "shapedirs", path, 3)[:, :, :NUM_BETAS].astype(np.float64),
        kintree_table=_array(data, "kintree_table", path, 2).astype(np.int64),
    )
    expected = {
        "v_template": (NUM_VERTICES, 3), "J_regressor": (NUM_JOINTS, nv), "weights": (nv, NUM_JOINTS),
        "posedirs": (nv, 3, 9 * (NUM_JOINTS - 1)), "shapedirs": (nv, 3, NUM_BETAS),
        "kintree_table": (2, NUM_JOINTS),
    }
    for key, shape in expected.items():
        found = getattr(arrays, key).shape
        if found != shape:
            raise BodyModelFileError(f"{path}: '{key}' has shape {found}, expected {shape}")
    if arrays.f.shape[1] != 3 or arrays.f.min() < 0 or arrays.f.max() >= nv:
        raise BodyModelFileError(f"{path}: 'f' must be (F, 3) vertex indices below {nv}, "
                                 f"got {arrays.f.shape}")
    return arrays


def load_joint_regressor(path: str | Path, rows: int) -> np.ndarray:
    """``(rows, 6890)`` float64 regressor from an ``.npy`` file (SPIN's J_regressor_h36m / _extra)."""
    path = Path(path)
    regressor = np.load(path, allow_pickle=False)
    if regressor.shape != (rows, NUM_VERTICES):
        raise BodyModelFileError(f"{path}: regressor has shape {regressor.shape}, "
                                 f"expected ({rows}, {NUM_VERTICES})")
    return regressor.astype(np.float64)


def load_mean_params(path: str | Path) -> dict[str, np.ndarray]:
    """SPIN's mean parameters: ``pose (144,)`` 24 x 6D, ``shape (10,)``, ``cam (3,)``, float32."""
    path = Path(path)
    sizes = {"pose": 6 * NUM_JOINTS, "shape": NUM_BETAS, "cam": 3}
    with np.load(path, allow_pickle=False) as npz:
        out = {}
        for key, size in sizes.items():
            if key not in npz.files:
                raise BodyModelFileError(f"{path}: no '{key}' (keys: {npz.files}); expected pose (144,), "
                                         "shape (10,), cam (3,)")
            out[key] = np.asarray(npz[key], dtype=np.float32).reshape(-1)
            if out[key].size != size:
                raise BodyModelFileError(f"{path}: '{key}' has {out[key].size} values, expected {size}")
    return out
