"""Rig of the synthetic body: landmark vertex ids, joint regressors, skinning weights, shape directions.

Everything here is a function of a rest surface (``(6890, 3)`` metres, SMPL frame, T-pose) and the
designed points of :mod:`ochmr_lit.body.synthetic_mesh`; all arrays follow the official SMPL layouts.
"""

from __future__ import annotations

import numpy as np
from smplx.vertex_ids import vertex_ids as SMPLX_VERTEX_IDS

from ochmr_lit.body.mesh_topology import mesh_edges, neighbour_mean_operator
from ochmr_lit.body.synthetic_mesh import JOINT_NAMES, Primitives, capsule_distances

# SMPL's landmark vertex ids (smplx's table for SMPL/SMPL-H: nose, eyes, ears, fingertips, toes, heels):
# the synthetic surface is re-ordered so that these ids sit on the same spots of its body.
LANDMARK_VERTEX_IDS: dict[str, int] = dict(SMPLX_VERTEX_IDS["smplh"])

H36M_JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "left_knee", "left_ankle", "right_hip", "right_knee", "right_ankle", "spine",
    "neck", "jaw", "head_h36m", "left_shoulder", "left_elbow", "left_wrist", "right_shoulder",
    "right_elbow", "right_wrist",
)
"""Rows of ``J_regressor_h36m.npy`` (SPIN's order), named as the keypoint registry's ``h36m17``."""

EXTRA_JOINT_NAMES: tuple[str, ...] = (
    "right_hip", "left_hip", "neck", "head_top", "pelvis", "thorax", "spine", "jaw", "head_h36m",
)
"""Rows of ``J_regressor_extra.npy`` (SPIN's 9 extra joints), named as the registry's ``spin_extra9``."""

_SKIN_TEMPERATURE = 0.008  # m: softness of the distance-to-bone weighting
_SKIN_FLOOR = 0.02  # weights below this are dropped before smoothing (no influence across gaps)
_SKIN_SMOOTHING = 3  # rounds of neighbour averaging along the surface


def landmark_targets(points: dict[str, np.ndarray], height: float) -> dict[str, np.ndarray]:
    """Where each landmark of :data:`LANDMARK_VERTEX_IDS` should be, metres (nearest vertex wins)."""
    s = height
    out = {"nose": points["nose_tip"], "leye": points["left_eye"], "reye": points["right_eye"],
           "lear": points["left_ear"] + np.array([0.02 * s, 0, 0]),
           "rear": points["right_ear"] - np.array([0.02 * s, 0, 0])}
    for side, sign, prefix in (("left", 1.0, "l"), ("right", -1.0, "r")):
        tip, hand = points[f"{side}_fingertip"], points[f"{side}_hand"]
        for i, finger in enumerate(("index", "middle", "ring", "pinky")):
            out[f"{prefix}{finger}"] = tip + np.array([0.0, 0.0, (0.015 - 0.012 * i) * s])
        out[f"{prefix}thumb"] = hand + np.array([0.0, 0.0, 0.05 * s])
        toe, heel = points[f"{side}_toe"], points[f"{side}_heel"]
        foot = prefix.upper()
        out[f"{foot}BigToe"] = toe + np.array([-0.015 * sign * s, 0.0, 0.03 * s])
        out[f"{foot}SmallToe"] = toe + np.array([0.03 * sign * s, 0.0, 0.0])
        out[f"{foot}Heel"] = heel + np.array([0.0, -0.03 * s, -0.04 * s])
    return out


def landmark_order(vertices: np.ndarray, targets: dict[str, np.ndarray]) -> np.ndarray:
    """A vertex order ``(V,)`` (new id -> old id) that puts SMPL's landmark ids on the landmarks."""
    old = []
    for name in LANDMARK_VERTEX_IDS:
        d = np.linalg.norm(vertices - targets[name], axis=1)
        d[old] = np.inf  # distinct vertices
        old.append(int(np.argmin(d)))
    new = np.array(list(LANDMARK_VERTEX_IDS.values()))
    order = np.full(len(vertices), -1)
    order[new] = old
    order[order < 0] = np.setdiff1d(np.arange(len(vertices)), old)  # the rest keep their relative order
    return order


def reorder(vertices: np.ndarray, faces: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Apply a vertex order (new id -> old id) to a mesh."""
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return vertices[order], inverse[faces]


def _max_entropy_weights(x: np.ndarray, log_prior: np.ndarray) -> tuple[np.ndarray, float]:
    """Weights ``w_i ~ exp(log_prior_i + mu . x_i)`` with ``sum_i w_i x_i = 0``; returns (w, residual m)."""
    mu = np.zeros(3)
    for _ in range(60):
        logits = log_prior + x @ mu
        w = np.exp(logits - logits.max())
        w /= w.sum()
        mean = w @ x
        if np.abs(mean).max() < 1e-12:
            break
        cov = (x * w[:, None]).T @ x - np.outer(mean, mean)
        mu -= np.linalg.solve(cov + 1e-12 * np.eye(3), mean)
    return w, float(np.abs(w @ x).max())


def convex_regressor(vertices: np.ndarray, targets: np.ndarray, neighbours: int = 200) -> np.ndarray:
    """``(J, V)`` convex vertex weights (rows >= 0, sum 1) whose weighted mean is each target.

    Per target, the maximum-entropy weights over its ``neighbours`` nearest vertices (the only non-zero
    entries of the row) relative to a Gaussian prior (width: the distance to the 24th nearest vertex):
    ``w_i ~ q_i exp(mu . (v_i - t))`` with ``mu`` found by Newton's method on the convex dual so that
    ``sum_i w_i v_i = t`` exactly. The weights spread over the ring of surface around the point, so the
    point follows that surface when the body changes shape.
    """
    out = np.zeros((len(targets), len(vertices)))
    for row, target in enumerate(targets):
        dist = np.linalg.norm(vertices - target, axis=1)
        near = np.argsort(dist, kind="stable")[:neighbours]
        log_prior = -0.5 * (dist[near] / dist[near[23]]) ** 2
        w, residual = _max_entropy_weights(vertices[near] - target, log_prior)
        if residual > 1e-9:
            raise ValueError(f"regressor target {target} is not inside its {neighbours} nearest vertices")
        out[row, near] = w
    return out


def anatomical_targets(points: dict[str, np.ndarray], height: float) -> dict[str, np.ndarray]:
    """Target points (metres) of the H36M and extra regressor joints, by keypoint-registry name.

    A name shared with the SMPL joints (hips, knees, ankles, shoulders, elbows, wrists) is the SMPL
    joint itself, so one name means one point in this model; the others are placed anatomically: the
    pelvis 3 cm below SMPL's, ``neck`` (H36M's thorax, LSP's neck) at the base of the neck, ``thorax``
    (MPII) 3 cm lower, ``spine`` midway between pelvis and neck, ``jaw`` at the chin, ``head_h36m`` at
    the centre of the head and ``head_top`` 2 cm under the top of the head.
    """
    s = height
    p = points

    def off(name: str, dx: float, dy: float, dz: float) -> np.ndarray:
        return p[name] + np.array([dx, dy, dz]) * s

    out = {name: p[name] for name in H36M_JOINT_NAMES + EXTRA_JOINT_NAMES if name in JOINT_NAMES}
    out["pelvis"] = off("pelvis", 0.0, -0.03, 0.0)
    out["neck"] = off("neck", 0.0, -0.01, 0.005)
    out["thorax"] = off("neck", 0.0, -0.04, 0.005)
    out["spine"] = (out["pelvis"] + out["neck"]) / 2
    out["jaw"] = off("head", 0.0, 0.01, 0.065)
    out["head_h36m"] = off("head", 0.0, 0.08, 0.01)
    out["head_top"] = off("head_top", 0.0, -0.02, -0.01)
    return out


def skinning_weights(vertices: np.ndarray, faces: np.ndarray, prims: Primitives) -> np.ndarray:
    """``(V, 24)`` linear-blend-skinning weights, rows >= 0 summing to 1.

    From the distance of each vertex to each body part's capsules (a softmax of minus the distance,
    0.8 cm soft), tiny weights dropped so nothing leaks across gaps (between the legs, arm and torso),
    then blended with neighbouring vertices along the surface.
    """
    sd, _ = capsule_distances(vertices, prims)
    dist = np.full((len(vertices), len(JOINT_NAMES)), np.inf)
    for part in np.unique(prims.part):
        dist[:, part] = sd[:, prims.part == part].min(axis=1)
    w = np.exp(-(dist - dist.min(axis=1, keepdims=True)) / _SKIN_TEMPERATURE)
    w /= w.sum(axis=1, keepdims=True)
    w[w < _SKIN_FLOOR] = 0.0
    w /= w.sum(axis=1, keepdims=True)
    edges, _ = mesh_edges(faces)
    smooth = neighbour_mean_operator(edges, len(vertices), include_self=True)
    for _ in range(_SKIN_SMOOTHING):
        w = smooth @ w
    return w / w.sum(axis=1, keepdims=True)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def shape_directions(vertices: np.ndarray, weights: np.ndarray, joints: np.ndarray,
                     prims: Primitives) -> np.ndarray:
    """``(V, 3, 10)`` metres per unit beta: displacement fields with visible, distinct effects.

    0 stature (uniform scale about the pelvis, +6.9 cm height per unit for the neutral body),
    1 weight (radial growth away from the bones, most on the torso, little on the head), 2 leg length,
    3 shoulder width, 4 hip width, 5 belly, 6 chest, 7 arm length, 8 leg girth, 9 torso length.
    """
    j = {name: i for i, name in enumerate(JOINT_NAMES)}
    x, y, z = vertices.T
    v = vertices
    parts = lambda *names: weights[:, [j[n] for n in names]].sum(1)  # noqa: E731
    legs = parts("left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
                 "left_foot", "right_foot")
    arms = parts("left_collar", "right_collar", "left_shoulder", "right_shoulder", "left_elbow",
                 "right_elbow", "left_wrist", "right_wrist", "left_hand", "right_hand")
    torso = parts("pelvis", "spine1", "spine2", "spine3")
    # radial offset of each vertex from the axes of the capsules it lies on (softly blended, 1 cm)
    sd, _ = capsule_distances(v, prims)
    ab = prims.b - prims.a
    t = np.clip(np.einsum("npk,pk->np", v[:, None] - prims.a, ab) / (ab * ab).sum(1), 0, 1)
    on = np.exp(-(sd - sd.min(axis=1, keepdims=True)) / 0.01)
    offsets = v[:, None] - (prims.a + t[..., None] * ab)
    radial = np.einsum("np,npk->nk", on / on.sum(1, keepdims=True), offsets)
    pelvis, neck = joints[j["pelvis"]], joints[j["neck"]]
    hip_y, sole_y = joints[j["left_hip"], 1], y.min()
    shoulder_x = abs(joints[j["left_shoulder"], 0])
    tip_x = np.abs(x).max()
    belly_y = (joints[j["spine1"], 1] + joints[j["pelvis"], 1]) / 2
    chest_y = joints[j["spine3"], 1]
    front = _smoothstep(z / 0.08)
    dirs = np.zeros((len(v), 3, 10))
    dirs[:, :, 0] = 0.04 * (v - pelvis)
    dirs[:, :, 1] = 0.12 * radial * (1.0 + 0.5 * torso - 0.8 * weights[:, j["head"]])[:, None]
    dirs[:, 1, 2] = -0.05 * np.clip((hip_y - y) / (hip_y - sole_y), 0.0, 1.0)
    dirs[:, 0, 3] = 0.025 * np.sign(x) * arms
    dirs[:, 0, 4] = 0.02 * np.tanh(x / 0.05) * (legs + weights[:, j["pelvis"]])
    dirs[:, 2, 5] = 0.04 * np.exp(-(((y - belly_y) / 0.09) ** 2)) * front * torso
    dirs[:, 2, 6] = 0.03 * np.exp(-(((y - chest_y) / 0.07) ** 2)) * front * torso
    dirs[:, 0, 7] = 0.05 * np.sign(x) * np.clip((np.abs(x) - shoulder_x) / (tip_x - shoulder_x), 0.0, 1.0)
    dirs[:, :, 8] = 0.15 * radial * legs[:, None]
    dirs[:, 1, 9] = 0.04 * np.clip((y - pelvis[1]) / (neck[1] - pelvis[1]), 0.0, 1.0)
    return dirs
