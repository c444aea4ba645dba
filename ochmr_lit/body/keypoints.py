"""One registry of keypoint conventions: joint names, flip permutations, OKS sigmas, name-based mappings.

Every convention is an ordered tuple of lower_snake_case joint names. The same name means the same
anatomical definition in every convention, so mappings between conventions are derived from the names
alone: a joint the destination has and the source lacks is marked absent, never guessed. Flip
permutations are derived from ``left_``/``right_`` prefixes and checked when the registry is built.

Names shared on purpose, following the reference implementations this project must agree with:

* SMPL's hip, knee, ankle, shoulder, elbow and wrist joints carry COCO's names, as every SMPL->COCO
  evaluation does; SMPL's own pelvis, neck and head are ``pelvis_smpl``, ``neck_smpl``, ``head_smpl``
  (different points from any annotated joint).
* SPIN (``constants.py`` and its preprocessing scripts) fixes the head and neck correspondences:
  Human3.6M joint 8 (thorax) is "Neck (LSP)", joint 9 is "Jaw (H36M)", joint 10 is "Head (H36M)";
  its evaluation set J14 takes the H36M head (``H36M_TO_J14`` ends with 10, ``J24_TO_J14`` with 18).
  Hence ``neck`` = LSP/MPII neck = H36M joint 8, ``head_h36m`` = H36M joint 10 = the 14th joint of
  ``lsp14``, and ``head_top`` is the annotated top of the head of LSP/MPII (SPIN's "Top of Head (LSP)")
  and of CrowdPose. ``keypoint_mapping("spin24", "lsp14")`` therefore equals SPIN's ``J24_TO_J14`` and
  ``keypoint_mapping("h36m17", "lsp14")`` equals ``H36M_TO_J14``.
* CrowdPose's "head" and "neck" (AI Challenger's top of head and neck) are ``head_top`` and ``neck``.
  OCHuman's raw "head" and "neck" have no published definition: ``head_ochuman``, ``neck_ochuman``.
* OpenPose BODY_25's neck and mid-hip, and the CMU Panoptic skeleton's neck and body centre (it is
  reconstructed from OpenPose-style detections), are ``neck_openpose`` and ``mid_hip``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from typing import TypeVar

import numpy as np
import torch

Array = TypeVar("Array", np.ndarray, torch.Tensor)

__all__ = [
    "H36M_TO_J14",
    "KeypointConvention",
    "available_conventions",
    "convert_keypoints",
    "flip_keypoints",
    "get_convention",
    "keypoint_mapping",
]

# Indices of SPIN's 14 evaluation joints (lsp14) among the 17 outputs of J_regressor_h36m (h36m17).
H36M_TO_J14: list[int] = [6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10]

_NAME_RE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


@dataclass(frozen=True, eq=False)
class KeypointConvention:
    """An ordered set of named keypoints.

    Attributes:
        name: registry key, e.g. ``"coco17"``.
        joint_names: ``(J,)`` lower_snake_case names, left/right joints prefixed ``left_``/``right_``.
        flip_perm: ``(J,)`` int64; after a horizontal flip joint ``j`` takes the data of ``flip_perm[j]``.
        sigmas: ``(J,)`` float64 OKS sigmas where a benchmark defines them, else None.
        source: where the order comes from.
    """

    name: str
    joint_names: tuple[str, ...]
    flip_perm: np.ndarray
    sigmas: np.ndarray | None = None
    source: str = ""
    _index: dict[str, int] = field(default_factory=dict, repr=False)

    @property
    def num_joints(self) -> int:
        """Number of joints J."""
        return len(self.joint_names)

    def index(self, joint: str) -> int:
        """Position of ``joint`` in this convention; ValueError naming the known joints if absent."""
        try:
            return self._index[joint]
        except KeyError:
            raise ValueError(
                f"joint {joint!r} is not in keypoint convention {self.name!r}; its joints are "
                f"{list(self.joint_names)}"
            ) from None


def _flip_name(name: str) -> str:
    if name.startswith("left_"):
        return "right_" + name[len("left_") :]
    if name.startswith("right_"):
        return "left_" + name[len("right_") :]
    return name


def _build(
    name: str, joints: list[str], source: str, sigmas: list[float] | None = None
) -> KeypointConvention:
    """Validate names and derive the flip permutation."""
    if len(set(joints)) != len(joints):
        dup = sorted({j for j in joints if joints.count(j) > 1})
        raise ValueError(f"keypoint convention {name!r} repeats joint names {dup}")
    bad = [j for j in joints if not _NAME_RE.match(j)]
    if bad:
        raise ValueError(f"keypoint convention {name!r} has names that are not lower_snake_case: {bad}")
    index = {j: i for i, j in enumerate(joints)}
    missing = [_flip_name(j) for j in joints if _flip_name(j) not in index]
    if missing:
        raise ValueError(f"keypoint convention {name!r} lacks the mirror joints {missing}")
    flip_perm = np.array([index[_flip_name(j)] for j in joints], dtype=np.int64)
    flip_perm.setflags(write=False)
    sig = None
    if sigmas is not None:
        if len(sigmas) != len(joints):
            raise ValueError(f"keypoint convention {name!r}: {len(sigmas)} sigmas for {len(joints)} joints")
        sig = np.asarray(sigmas, dtype=np.float64)
        sig.setflags(write=False)
    return KeypointConvention(name, tuple(joints), flip_perm, sig, source, index)


_LIMBS_LR = [  # COCO's order of the twelve limb joints
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
]
_FACE5 = ["nose", "left_eye", "right_eye", "left_ear", "right_ear"]
_LSP12 = [
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
    "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
]
_SMPL24 = [
    "pelvis_smpl", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck_smpl", "left_collar",
    "right_collar", "head_smpl", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hand", "right_hand",
]

_COCO_SIGMAS = [x / 10 for x in (0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62,
                                 1.07, 1.07, 0.87, 0.87, 0.89, 0.89)]
_CROWDPOSE_SIGMAS = [x / 10 for x in (0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87,
                                      0.89, 0.89, 0.79, 0.79)]

_REGISTRY: dict[str, KeypointConvention] = {
    c.name: c
    for c in (
        _build("coco17", _FACE5 + _LIMBS_LR, "COCO person keypoints (categories[0].keypoints)", _COCO_SIGMAS),
        _build(
            "crowdpose14",
            _LIMBS_LR + ["head_top", "neck"],
            "CrowdPose annotations (crowdpose-api); sigmas of its official evaluation",
            _CROWDPOSE_SIGMAS,
        ),
        _build(
            "ochuman19",
            [
                "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow", "left_wrist",
                "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
                "head_ochuman", "neck_ochuman", "right_ear", "left_ear", "nose", "right_eye", "left_eye",
            ],
            "raw ochuman.json `keypoint_names` (read by OCHumanApi's OCHuman class, which converts them "
            "to COCO-17 by name in toCocoFormart); visibility 0 missing, 1 visible, 2 self-occluded, "
            "3 occluded by others",
        ),
        _build("lsp14", _LSP12 + ["neck", "head_h36m"], "SPIN's J14 evaluation joints (constants.py)"),
        _build(
            "h36m17",
            [
                "pelvis", "left_hip", "left_knee", "left_ankle", "right_hip", "right_knee", "right_ankle",
                "spine", "neck", "jaw", "head_h36m", "left_shoulder", "left_elbow", "left_wrist",
                "right_shoulder", "right_elbow", "right_wrist",
            ],
            "rows of SPIN's J_regressor_h36m.npy",
        ),
        _build("smpl24", _SMPL24, "SMPL kinematic tree joints"),
        _build(
            "smpl_face29", _SMPL24 + _FACE5, "SMPL joints + nose/eye/ear mesh vertices (smplx vertex_ids)"
        ),
        _build(
            "openpose25",
            [
                "nose", "neck_openpose", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder",
                "left_elbow", "left_wrist", "mid_hip", "right_hip", "right_knee", "right_ankle", "left_hip",
                "left_knee", "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear", "left_big_toe",
                "left_small_toe", "left_heel", "right_big_toe", "right_small_toe", "right_heel",
            ],
            "OpenPose BODY_25 output order",
        ),
        _build(
            "panoptic19",
            [
                "neck_openpose", "nose", "mid_hip", "left_shoulder", "left_elbow", "left_wrist", "left_hip",
                "left_knee", "left_ankle", "right_shoulder", "right_elbow", "right_wrist", "right_hip",
                "right_knee", "right_ankle", "left_eye", "left_ear", "right_eye", "right_ear",
            ],
            "CMU Panoptic Studio joints19 (neck, nose, body centre = mid-hip, ...)",
        ),
        _build(
            "spin24",
            _LSP12
            + ["neck", "head_top", "pelvis", "thorax", "spine", "jaw", "head_h36m"]
            + ["nose", "left_eye", "right_eye", "left_ear", "right_ear"],
            "SPIN's 24 ground-truth joints of `part`/`S` (constants.JOINT_NAMES[25:])",
        ),
        _build(
            "spin_extra9",
            ["right_hip", "left_hip", "neck", "head_top", "pelvis", "thorax", "spine", "jaw", "head_h36m"],
            "rows of SPIN's J_regressor_extra.npy (SMPL joints 45-53 of constants.JOINT_MAP)",
        ),
    )
}


def available_conventions() -> tuple[str, ...]:
    """Names of all registered conventions."""
    return tuple(_REGISTRY)


def get_convention(name: str) -> KeypointConvention:
    """The registered convention ``name``; ValueError listing the known names otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown keypoint convention {name!r}; use one of {sorted(_REGISTRY)}"
        ) from None


@cache
def _mapping(src: str, dst: str) -> np.ndarray:
    s, d = get_convention(src), get_convention(dst)
    m = np.array([s._index.get(j, -1) for j in d.joint_names], dtype=np.int64)
    m.setflags(write=False)
    return m


def keypoint_mapping(src: str, dst: str) -> np.ndarray:
    """For each joint of ``dst``, its index in ``src`` or -1 where ``src`` lacks it.

    Returns:
        ``(J_dst,)`` int64 (read-only).
    """
    return _mapping(src, dst)


def convert_keypoints(kp: Array, src: str, dst: str) -> tuple[Array, Array]:
    """Reorder keypoints from convention ``src`` to ``dst`` by joint name.

    Args:
        kp: ``(..., J_src, C)`` numpy array or tensor (any channels: x, y[, z][, visibility]).
        src: source convention name.
        dst: destination convention name.

    Returns:
        ``out (..., J_dst, C)`` of the same type, dtype and device, with zeros for joints ``src`` lacks,
        and ``present (J_dst,)`` bool (numpy for numpy input, a tensor on ``kp``'s device for torch).
        Differentiable for tensors.
    """
    n_src = get_convention(src).num_joints
    if kp.ndim < 2 or kp.shape[-2] != n_src:
        raise ValueError(
            f"convert_keypoints: keypoints of shape {tuple(kp.shape)} do not have the {n_src} joints of "
            f"{src!r} on axis -2; pass (..., {n_src}, C)"
        )
    m = keypoint_mapping(src, dst)
    present = m >= 0
    idx = np.where(present, m, 0)
    if isinstance(kp, torch.Tensor):
        idx_t = torch.as_tensor(idx, device=kp.device)
        present_t = torch.as_tensor(present, device=kp.device)
        zero = torch.zeros((), dtype=kp.dtype, device=kp.device)
        out = torch.where(present_t[:, None], kp.index_select(-2, idx_t), zero)
        return out, present_t
    kp = np.asarray(kp)
    out = np.where(present[:, None], kp[..., idx, :], np.zeros((), dtype=kp.dtype))
    return out, present.copy()


def flip_keypoints(kp: Array, convention: str, image_width: float | Array) -> Array:
    """Keypoints of a horizontally flipped image: mirror x and swap left/right joints.

    Pixel coordinates as OpenCV uses them (pixel centres at integers): ``x' = W - 1 - x``, which is
    where ``cv2.flip(image, 1)`` moves pixel ``x``. Other channels (y, z, visibility) are kept.

    Args:
        kp: ``(..., J, C)`` with ``C >= 1`` and x in channel 0, pixels.
        convention: name of the convention of the J joints.
        image_width: ``W`` in pixels; a scalar or an array of shape ``kp.shape[:-2]``.

    Returns:
        ``(..., J, C)``, the same type as ``kp``.
    """
    conv = get_convention(convention)
    if kp.ndim < 2 or kp.shape[-2] != conv.num_joints:
        raise ValueError(
            f"flip_keypoints: keypoints of shape {tuple(kp.shape)} do not have the {conv.num_joints} "
            f"joints of {convention!r} on axis -2"
        )
    if isinstance(kp, torch.Tensor):
        perm = torch.tensor(conv.flip_perm.tolist(), device=kp.device)
        out = kp.index_select(-2, perm).clone()
        w = torch.as_tensor(image_width, dtype=kp.dtype, device=kp.device)
    else:
        out = np.array(np.asarray(kp)[..., conv.flip_perm, :])
        w = np.asarray(image_width, dtype=out.dtype)
    if w.ndim:
        w = w[..., None]
    out[..., 0] = (w - 1) - out[..., 0]
    return out
