"""Rotations (:mod:`.rotations`), cameras and projection (:mod:`.cameras`) and crop transforms (:mod:`.crops`);
Procrustes alignment is :mod:`ochmr_lit.procrustes`.

Conventions used throughout:

* Torch functions are batched over any leading dimensions (``...``) and differentiable.
* Lengths are in metres unless a name says otherwise; image coordinates are pixels as OpenCV uses them (pixel
  centres at integer coordinates, x to the right, y down), so the crop matrices can be handed to
  ``cv2.warpAffine`` unchanged.
* Rotation matrices act on column vectors (``p' = R @ p``).
"""

from ochmr_lit.geometry.cameras import (
    SPIN_CROP_SIZE,
    SPIN_FOCAL_LENGTH,
    crop_focal_length,
    perspective_projection,
    positive_pixels,
    translation_to_weak_perspective,
    weak_perspective_to_translation,
)
from ochmr_lit.geometry.crops import (
    SPIN_SCALE_UNIT,
    Array,
    apply_affine,
    box_to_center_size,
    crop_affine,
    invert_affine,
    size_to_spin_scale,
    spin_scale_to_size,
)
from ochmr_lit.geometry.rotations import (
    axis_angle_to_rotmat,
    quaternion_to_axis_angle,
    rot6d_to_rotmat,
    rotmat_to_axis_angle,
    rotmat_to_quaternion,
    rotmat_to_rot6d,
)

__all__ = [
    "SPIN_CROP_SIZE", "SPIN_FOCAL_LENGTH", "SPIN_SCALE_UNIT", "Array", "apply_affine", "axis_angle_to_rotmat",
    "box_to_center_size", "crop_affine", "crop_focal_length", "invert_affine", "perspective_projection",
    "positive_pixels", "quaternion_to_axis_angle", "rot6d_to_rotmat", "rotmat_to_axis_angle", "rotmat_to_quaternion",
    "rotmat_to_rot6d", "size_to_spin_scale", "spin_scale_to_size", "translation_to_weak_perspective",
    "weak_perspective_to_translation",
]
