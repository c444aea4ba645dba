"""Surface of the synthetic body: a closed genus-0 triangle mesh of a T-posed person.

Construction (numpy, deterministic, about a second per body; hand-written because no library in the
environment builds a person-shaped surface with SMPL's vertex count):

1. a coarse *cage*: the boundary of a union of grid cells (torso, legs with feet, arms, neck and head),
   a closed genus-0 quad mesh whose grid lines sit at the body's joints;
2. three rounds of quad subdivision (each quad into four), then two triangles per quad;
3. edge splits (one new vertex and two new faces each) on the longest edges until the vertex count is
   SMPL's 6890; a closed genus-0 triangle mesh has F = 2V - 4, hence 13776 faces;
4. every vertex is projected onto the zero level set of a smooth body *field*: the smooth union
   (log-sum-exp) of tapered capsules, one or more per SMPL body part, and the surface is relaxed
   tangentially a few times so that triangles are evenly sized.

Coordinates follow SMPL: metres, y up, x to the body's left, z forward (the face looks +z), T-pose.
Topology (and so every vertex id) is identical across the neutral, male and female bodies.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ochmr_lit.body.mesh_topology import (
    cell_boundary,
    choose_splits,
    mesh_edges,
    neighbour_mean_operator,
    quads_to_triangles,
    split_edges,
    subdivide_quads,
)

NUM_VERTICES = 6890
NUM_FACES = 13776

JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hand", "right_hand",
)
PARENTS = np.array([-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21])

_SUBDIVISIONS = 3
_PRESMOOTH = 6  # plain Laplacian rounds before the surface is reached
_BLEND = 0.01  # smooth-union width of the body field (m)
_FLOOR = 1.17  # the neutral body's soles sit at y = -1.17 m (SMPL's template spans about -1.17 .. 0.55)


@dataclass(frozen=True)
class Physique:
    """Proportions of one synthetic body relative to the neutral design (dimensionless factors)."""

    height: float = 1.0  # uniform scale of the whole body (neutral: 1.72 m)
    shoulders: float = 1.0  # shoulder and chest width
    hips: float = 1.0  # hip width and leg spacing
    girth: float = 1.0  # torso radii
    limbs: float = 1.0  # arm and leg radii
    waist: float = 1.0  # waist width


PHYSIQUES: dict[str, Physique] = {
    "neutral": Physique(),
    "male": Physique(height=1.035, shoulders=1.08, hips=0.96, girth=1.04, limbs=1.06, waist=1.02),
    "female": Physique(height=0.96, shoulders=0.9, hips=1.1, girth=0.97, limbs=0.9, waist=0.9),
}


def design_points(physique: Physique) -> dict[str, np.ndarray]:
    """The 24 SMPL rest joints plus the body's end points, metres, SMPL frame.

    End points: ``head_top``, ``nose_tip``, ``{left,right}_{eye,ear,fingertip,toe,heel}``.
    """
    sw, hw = physique.shoulders, physique.hips
    x_shoulder = 0.18 * sw
    left = {  # floor frame (soles at y = 0), the body's left side (+x)
        "hip": (0.095 * hw, 0.88, 0.0), "knee": (0.10 * hw, 0.50, 0.01), "ankle": (0.105 * hw, 0.085, -0.03),
        "foot": (0.115 * hw, 0.04, 0.10), "collar": (0.075 * sw, 1.41, -0.01),
        "shoulder": (x_shoulder, 1.43, -0.015), "elbow": (x_shoulder + 0.26, 1.43, -0.025),
        "wrist": (x_shoulder + 0.50, 1.43, -0.015), "hand": (x_shoulder + 0.58, 1.43, -0.015),
        "fingertip": (x_shoulder + 0.67, 1.43, -0.015), "toe": (0.12 * hw, 0.03, 0.16),
        "heel": (0.105 * hw, 0.045, -0.04), "eye": (0.032, 1.635, 0.085), "ear": (0.08, 1.61, 0.0),
    }
    pts = {
        "pelvis": (0.0, 0.95, 0.0), "spine1": (0.0, 1.07, -0.01), "spine2": (0.0, 1.20, -0.01),
        "spine3": (0.0, 1.26, 0.0), "neck": (0.0, 1.47, -0.015), "head": (0.0, 1.55, 0.005),
        "head_top": (0.0, 1.72, 0.01), "nose_tip": (0.0, 1.60, 0.13),
    }
    for name, (x, y, z) in left.items():
        pts[f"left_{name}"] = (x, y, z)
        pts[f"right_{name}"] = (-x, y, z)
    shift = np.array([0.0, -_FLOOR, 0.0])
    return {k: (np.asarray(v, dtype=np.float64) + shift) * physique.height for k, v in pts.items()}


def rest_joints(points: dict[str, np.ndarray]) -> np.ndarray:
    """``(24, 3)`` metres: the designed rest joints in SMPL order."""
    return np.stack([points[name] for name in JOINT_NAMES])


@dataclass(frozen=True)
class Primitives:
    """Tapered capsules: segment ``a -> b`` with radius ``ra -> rb``, cross-section stretched by ``scale``."""

    part: np.ndarray  # (P,) SMPL joint index whose rotation moves this capsule
    a: np.ndarray  # (P, 3) metres
    b: np.ndarray  # (P, 3) metres
    ra: np.ndarray  # (P,) metres
    rb: np.ndarray  # (P,) metres
    scale: np.ndarray  # (P, 3) per-axis stretch of the radial offset


def body_primitives(points: dict[str, np.ndarray], physique: Physique) -> Primitives:
    """The capsules whose smooth union is the synthetic body surface."""
    h, g, lb = physique.height, physique.girth * physique.height, physique.limbs * physique.height
    sh, hw = physique.shoulders, physique.hips
    p = points
    j = {name: i for i, name in enumerate(JOINT_NAMES)}

    def at(name: str, dx: float = 0.0, dy: float = 0.0, dz: float = 0.0) -> np.ndarray:
        return p[name] + np.array([dx, dy, dz]) * h

    rows: list[tuple] = [  # (part, a, b, ra, rb, scale)
        ("pelvis", at("pelvis", dy=-0.08), p["spine1"], 0.118 * g, 0.115 * g, (1.36 * hw, 1, 0.88)),
        ("spine1", p["spine1"], p["spine2"], 0.113 * g, 0.118 * g, (1.28 * physique.waist, 1, 0.86)),
        ("spine2", p["spine2"], p["spine3"], 0.118 * g, 0.123 * g, (1.30 * sh, 1, 0.86)),
        ("spine3", p["spine3"], at("neck", dy=-0.06), 0.123 * g, 0.105 * g, (1.32 * sh, 1, 0.82)),
        ("neck", at("neck", dy=-0.05), p["head"], 0.058 * g, 0.054 * g, (1, 1, 1)),
        ("head", at("head_top", dy=-0.12), at("head_top", dy=-0.09), 0.09 * h, 0.09 * h, (0.84, 1, 1.06)),
        ("head", at("nose_tip", dy=0.005, dz=-0.035), at("nose_tip", dz=-0.012), 0.016 * h, 0.012 * h,
         (1, 1, 1)),
    ]
    for side in ("left", "right"):
        s = 1.0 if side == "left" else -1.0
        ear, collar = f"{side}_ear", np.array([0.03 * s * sh * h, p[f"{side}_collar"][1], p["spine3"][2]])
        shoulder, elbow, wrist = (f"{side}_{n}" for n in ("shoulder", "elbow", "wrist"))
        hand, tip, hip = (f"{side}_{n}" for n in ("hand", "fingertip", "hip"))
        knee, ankle = f"{side}_knee", f"{side}_ankle"
        heel, foot, toe = (f"{side}_{n}" for n in ("heel", "foot", "toe"))
        rows += [
            ("head", at(ear, dx=-0.006 * s, dy=-0.015), at(ear, dx=-0.006 * s, dy=0.015),
             0.016 * h, 0.016 * h, (0.8, 1, 1)),
            (f"{side}_collar", collar, p[shoulder], 0.06 * lb, 0.052 * lb, (1, 1, 1)),
            (shoulder, p[shoulder], p[elbow], 0.052 * lb, 0.042 * lb, (1, 1, 1)),
            (elbow, p[elbow], p[wrist], 0.040 * lb, 0.030 * lb, (1, 1, 1)),
            (wrist, p[wrist], p[hand], 0.030 * lb, 0.030 * lb, (1, 0.5, 1.4)),
            (hand, p[hand], p[tip], 0.028 * lb, 0.018 * lb, (1, 0.45, 1.3)),
            (hip, p[hip], p[knee], 0.078 * lb, 0.054 * lb, (1, 1, 1)),
            (knee, p[knee], p[ankle], 0.052 * lb, 0.036 * lb, (1, 1, 1)),
            (ankle, p[heel], p[foot], 0.045 * h, 0.038 * h, (0.95, 1, 1)),
            (f"{side}_foot", p[foot], p[toe], 0.036 * h, 0.026 * h, (1, 0.8, 1)),
        ]
    return Primitives(
        part=np.array([j[r[0]] for r in rows]),
        a=np.stack([np.asarray(r[1], dtype=np.float64) for r in rows]),
        b=np.stack([np.asarray(r[2], dtype=np.float64) for r in rows]),
        ra=np.array([r[3] for r in rows], dtype=np.float64),
        rb=np.array([r[4] for r in rows], dtype=np.float64),
        scale=np.array([r[5] for r in rows], dtype=np.float64),
    )


# -- the body field ------------------------------------------------------------------------------------
def capsule_distances(
    points: np.ndarray, prims: Primitives, subset: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Signed distance-like values ``(N, P)`` (m, negative inside) and their gradients ``(N, P, 3)``.

    ``subset (N, K)`` evaluates only those capsules per point (then ``P = K``).
    """
    ab = prims.b - prims.a
    packed = np.concatenate(  # one gather instead of six
        [prims.a, ab, 1.0 / prims.scale, (1.0 / (ab * ab).sum(1))[:, None], prims.ra[:, None],
         (prims.rb - prims.ra)[:, None]], axis=1)
    c = packed[None] if subset is None else packed[subset]
    a, ab, inv_scale = c[..., 0:3], c[..., 3:6], c[..., 6:9]
    inv_ab2, ra, dr = c[..., 9], c[..., 10], c[..., 11]
    rel = points[:, None, :] - a
    t_raw = np.einsum("npk,npk->np", rel, ab) * inv_ab2
    t = np.clip(t_raw, 0.0, 1.0)
    qs = (rel - t[..., None] * ab) * inv_scale
    norm = np.sqrt(np.einsum("npk,npk->np", qs, qs))
    sd = norm - (ra + t * dr)
    # d|q/s|/dp through q = rel - t ab, with dt/dp = ab / |ab|^2 on the open segment; dr/dp likewise
    g = qs * (inv_scale / np.maximum(norm, 1e-12)[..., None])
    along = (np.einsum("npk,npk->np", g, ab) + dr) * (((t_raw > 0.0) & (t_raw < 1.0)) * inv_ab2)
    return sd, g - along[..., None] * ab


def nearest_primitives(points: np.ndarray, prims: Primitives, k: int = 8) -> np.ndarray:
    """``(N, k)`` indices of the capsules nearest each point (the others barely touch the field there)."""
    sd, _ = capsule_distances(points, prims)
    return np.sort(np.argsort(sd, axis=1, kind="stable")[:, :k], axis=1)


def field_and_gradient(
    points: np.ndarray, prims: Primitives, subset: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The body field ``(N,)`` (m, < 0 inside) and its gradient ``(N, 3)``.

    The field is the smooth union (log-sum-exp, width 1 cm) of the capsules (of ``subset`` if given).
    """
    sd, grad = capsule_distances(points, prims, subset)
    low = sd.min(axis=1, keepdims=True)
    w = np.exp(-(sd - low) / _BLEND)
    total = w.sum(axis=1, keepdims=True)
    value = (low - _BLEND * np.log(total))[:, 0]
    return value, np.einsum("np,npk->nk", w / total, grad)


def body_field(points: np.ndarray, prims: Primitives) -> np.ndarray:
    """``(N,)`` the body field of :func:`field_and_gradient`."""
    return field_and_gradient(points, prims)[0]


def project_to_surface(
    points: np.ndarray, prims: Primitives, iterations: int = 6
) -> tuple[np.ndarray, np.ndarray]:
    """Newton steps ``p -= f(p) grad f / |grad f|^2`` onto the zero level set of the body field.

    Returns the projected points ``(N, 3)`` and the unit outward normals there ``(N, 3)``.
    """
    p = points.copy()
    for _ in range(iterations):
        value, grad = field_and_gradient(p, prims)
        p -= (value / np.maximum(np.einsum("nk,nk->n", grad, grad), 1e-12))[:, None] * grad
    _, grad = field_and_gradient(p, prims)
    return p, grad / np.linalg.norm(grad, axis=1, keepdims=True)


# -- the mesh ----------------------------------------------------------------------------------------------
def cage(points: dict[str, np.ndarray], physique: Physique) -> tuple[np.ndarray, np.ndarray]:
    """The coarse quad cage: ``(positions (V, 3) metres, quads (Q, 4))``, outward counter-clockwise.

    It is the boundary of a union of grid cells; the grid lines follow the joints, the occupancy (and so
    the topology) is the same for every physique.
    """
    p, s = points, physique.height
    top, sole = p["head_top"][1], -_FLOOR * s
    xt, xm = 0.155 * s, 0.035 * s
    arm = [abs(p[f"left_{n}"][0]) for n in ("elbow", "wrist", "hand", "fingertip")]
    xs = np.array(sorted([-(arm[3] + 0.01 * s), -arm[2], -arm[1], -arm[0], -xt, -xm,
                          xm, xt, arm[0], arm[1], arm[2], arm[3] + 0.01 * s]))
    ys = sole + np.array([0.0, 0.11, 0.50, 0.80, 1.07, 1.37, 1.49, 1.56, 1.64]) * s
    ys = np.append(ys, top)
    zs = np.array([-0.10, 0.10, 0.20]) * s
    occ = np.zeros((len(xs) - 1, len(ys) - 1, len(zs) - 1), dtype=bool)
    occ[[4, 6], 0:3, 0] = True  # legs (right, left)
    occ[[4, 6], 0, 1] = True  # toes
    occ[4:7, 3:6, 0] = True  # torso
    occ[0:4, 5, 0] = occ[7:11, 5, 0] = True  # arms
    occ[5, 6:9, 0] = True  # neck and head
    vertices, quads = cell_boundary(occ, xs, ys, zs)
    # The concave cage edge between shin and toes lies well in front of the ankle crease; moving it
    # onto the crease keeps the triangles there from folding when the surface is reached.
    ankle = np.isclose(vertices[:, 1], ys[1]) & np.isclose(vertices[:, 2], zs[1])
    vertices[ankle, 1:] = [sole + 0.09 * s, 0.02 * s]
    return vertices, quads


def relax(vertices: np.ndarray, faces: np.ndarray, prims: Primitives, rounds: int = 30) -> np.ndarray:
    """Smooth a rough surface onto the body: tangential Laplacian smoothing, then an exact projection.

    Starts with a few rounds of plain Laplacian smoothing (rounds off the cage's concave corners), then
    each round takes one Newton step towards the surface and moves every vertex halfway to the mean of
    its neighbours within the tangent plane. Only the 8 nearest capsules are evaluated per vertex
    (refreshed every 10 rounds): the others change the field by < 0.1 mm.
    """
    edges, _ = mesh_edges(faces)
    mean = neighbour_mean_operator(edges, len(vertices))
    v = vertices.copy()
    for _ in range(_PRESMOOTH):
        v += 0.5 * (mean @ v - v)
    subset = None
    for i in range(rounds):
        if i % 10 == 0:
            subset = nearest_primitives(v, prims)
        value, grad = field_and_gradient(v, prims, subset)
        g2 = np.maximum(np.einsum("nk,nk->n", grad, grad), 1e-12)
        v -= (value / g2)[:, None] * grad
        delta = mean @ v - v
        delta -= (np.einsum("nk,nk->n", delta, grad) / g2)[:, None] * grad
        v += 0.5 * delta
    return project_to_surface(v, prims, iterations=3)[0]


def build_surface(
    physique: Physique, splits: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vertices ``(6890, 3)`` metres and faces ``(13776, 3)`` of one physique, and the split edges used.

    ``splits`` fixes which edges are split (pass the neutral body's so all physiques share a topology);
    None chooses the longest edges of this physique.
    """
    points = design_points(physique)
    prims = body_primitives(points, physique)
    v, q = cage(points, physique)
    for _ in range(_SUBDIVISIONS):
        v, q = subdivide_quads(v, q)
    f = quads_to_triangles(q)
    if splits is None:
        splits = choose_splits(relax(v, f, prims, rounds=8), f, NUM_VERTICES - len(v))
    v, f = split_edges(v, f, splits)
    v = relax(v, f, prims)
    return v, f, splits
