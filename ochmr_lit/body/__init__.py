"""Body models: SMPL through smplx, body-model folders, the synthetic SMPL-format model.

``BodyModel`` poses SMPL (real files or the synthetic model generated into the cache) from rotation
matrices and betas; ``keypoints`` (``ochmr_lit.body.keypoints``) is the one registry of keypoint
conventions.
"""

from ochmr_lit.body.files import (
    EXPECTED_FILES,
    BodyModelFileError,
    SMPLArrays,
    load_joint_regressor,
    load_mean_params,
    load_smpl_arrays,
    resolve_body_model_dir,
)
from ochmr_lit.body.model import FACE_VERTEX_IDS, GENDER_CODES, GENDERS, BodyModel, BodyOutput
from ochmr_lit.body.synthetic import (
    SYNTHETIC_FILES,
    SYNTHETIC_VERSION,
    default_synthetic_dir,
    ensure_synthetic_body_model,
    generate_synthetic_body_model,
)

__all__ = [
    "EXPECTED_FILES",
    "FACE_VERTEX_IDS",
    "GENDERS",
    "GENDER_CODES",
    "SMPLArrays",
    "SYNTHETIC_FILES",
    "SYNTHETIC_VERSION",
    "BodyModel",
    "BodyModelFileError",
    "BodyOutput",
    "default_synthetic_dir",
    "ensure_synthetic_body_model",
    "generate_synthetic_body_model",
    "load_joint_regressor",
    "load_mean_params",
    "load_smpl_arrays",
    "resolve_body_model_dir",
]
