"""Random SynthCrowd scenes: poses within joint limits, shapes, appearance, camera, layout, background.

Everything here is numpy and draws only from the ``numpy.random.Generator`` it is given, in a fixed
order, so a scene depends on nothing but that generator's seed.

Frames (all metres):

* *SMPL frame*: y up, the body faces +z (the body model's own frame).
* *level frame*: the camera's position with OpenCV axes (x right, y down, z forward) but with a level
  optical axis; the ground is the plane ``y = camera_height``.
* *camera frame*: the level frame turned by the camera pitch, ``p_cam = R_x(pitch) @ p_level`` (a
  positive pitch looks down).

A person's global orientation in the camera frame is ``R_x(pitch) @ R_y(yaw) @ R_x(pi)``: the 180 degree
turn about x takes SMPL's y-up frame to the camera's y-down one (the body then faces the camera at
``yaw = 0``), the yaw turns the body about the vertical.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

#: SMPL's 24 joints; a pose vector is 24 x 3 axis-angle in this order (joint 0 = global orientation).
# fmt: off
SMPL_JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hand", "right_hand",
)
# fmt: on

# Joint limits: per-joint ranges (radians) of the axis-angle components (x, y, z), in SMPL's frame (x to
# the body's left, y up, z forward), each component drawn uniformly. Left-side joints and the spine are
# listed; a right-side joint mirrors its left twin (the y and z ranges negated and swapped). Signs:
# hip flexion (thigh forward) is -x, knee flexion +x; the left arm lies along +x in the rest pose, so
# lowering it is -z, swinging it forward -y, and bending the left elbow -y.
#
#   joint            x (flex/ext)      y (twist/swing)    z (abduction)
# fmt: off
JOINT_LIMITS_LEFT: dict[str, tuple[tuple[float, float], tuple[float, float], tuple[float, float]]] = {
    "left_hip":      ((-0.90, 0.35), (-0.25, 0.40), (-0.15, 0.35)),
    "spine1":        ((-0.15, 0.35), (-0.20, 0.20), (-0.12, 0.12)),
    "left_knee":     ((0.00, 1.40), (-0.05, 0.05), (-0.05, 0.05)),
    "spine2":        ((-0.10, 0.25), (-0.20, 0.20), (-0.10, 0.10)),
    "left_ankle":    ((-0.25, 0.35), (-0.15, 0.15), (-0.12, 0.12)),
    "spine3":        ((-0.10, 0.25), (-0.20, 0.20), (-0.10, 0.10)),
    "left_foot":     ((-0.10, 0.10), (-0.05, 0.05), (-0.05, 0.05)),
    "neck":          ((-0.25, 0.35), (-0.35, 0.35), (-0.15, 0.15)),
    "left_collar":   ((-0.10, 0.10), (-0.15, 0.15), (-0.20, 0.15)),
    "head":          ((-0.25, 0.30), (-0.45, 0.45), (-0.15, 0.15)),
    "left_shoulder": ((-0.50, 0.50), (-1.20, 0.40), (-1.40, 0.25)),
    "left_elbow":    ((-0.30, 0.30), (-2.00, 0.00), (-0.10, 0.10)),
    "left_wrist":    ((-0.50, 0.50), (-0.25, 0.25), (-0.50, 0.50)),
    "left_hand":     ((-0.15, 0.15), (-0.15, 0.15), (-0.25, 0.25)),
}
# fmt: on


def _joint_limit_table() -> np.ndarray:
    """(24, 3, 2) low/high of each axis-angle component; row 0 (global orientation) is zero."""
    table = np.zeros((24, 3, 2))
    for name, ranges in JOINT_LIMITS_LEFT.items():
        table[SMPL_JOINT_NAMES.index(name)] = ranges
        if name.startswith("left_"):
            (xl, xh), (yl, yh), (zl, zh) = ranges
            table[SMPL_JOINT_NAMES.index("right_" + name[5:])] = ((xl, xh), (-yh, -yl), (-zh, -zl))
    return table


JOINT_LIMITS = _joint_limit_table()

#: Probability that a person takes a user-supplied pose (when a pose file is given).
USER_POSE_PROBABILITY = 0.5

#: Scene layout and camera ranges.
DEPTH_RANGE_M = (3.0, 9.0)
FOCAL_RANGE_X_WIDTH = (0.8, 1.6)
CAMERA_HEIGHT_RANGE_M = (1.1, 2.1)
PITCH_JITTER_RAD = 0.06
MIN_SEPARATION_M = 0.7  # pelvis-to-pelvis distance on the ground, so that people do not interpenetrate
CLUSTER_PROBABILITY = 0.75  # chance a person stands in the line of sight of someone already placed
BETA_STD, BETA_CLIP = 1.0, 2.5

# Skin tones (RGB 0-1) from light to dark; a person's tone is one of them, jittered.
SKIN_TONES = np.array([
    [0.96, 0.80, 0.69], [0.90, 0.72, 0.58], [0.80, 0.60, 0.46], [0.63, 0.45, 0.33], [0.45, 0.31, 0.22],
    [0.32, 0.22, 0.16],
])  # fmt: skip


@dataclass
class Appearance:
    """Clothing and skin colours of a person (RGB 0-1) and which body parts each covers."""

    skin: np.ndarray
    top: np.ndarray
    bottom: np.ndarray
    shoes: np.ndarray
    hair: np.ndarray
    long_sleeves: bool
    long_trousers: bool
    shade: float


@dataclass
class PersonParams:
    """One person: SMPL parameters (before placement) and where/how they stand.

    Attributes:
        body_pose: (23, 3) axis-angle of joints 1..23, radians.
        betas: (10,) shape coefficients.
        gender: 1 male, 2 female (``ochmr_lit.body.GENDER_CODES``).
        yaw: rotation about the vertical in radians (0 = facing the camera).
        position: (2,) level-frame ground position ``(x, z)`` of the pelvis in metres.
        appearance: colours.
        user_pose: whether the body pose came from the user's pose file.
    """

    body_pose: np.ndarray
    betas: np.ndarray
    gender: int
    yaw: float
    position: np.ndarray
    appearance: Appearance
    user_pose: bool = False


@dataclass
class SceneParams:
    """A full scene: camera, people, lighting and background.

    Attributes:
        image_size: (H, W) pixels.
        K: (3, 3) intrinsics in pixels (OpenCV: pixel centres at integers, see ``ochmr_lit.vis.render``).
        camera_height: metres above the ground.
        pitch: radians, positive looks down.
        people: the people, in drawing order.
        background: (H, W, 3) uint8.
        light_dir: (3,) camera-frame direction towards the light.
        ambient, diffuse: shading weights.
    """

    image_size: tuple[int, int]
    K: np.ndarray
    camera_height: float
    pitch: float
    people: list[PersonParams] = field(default_factory=list)
    background: np.ndarray | None = None
    light_dir: np.ndarray = field(default_factory=lambda: np.array([0.0, 0.0, -1.0]))
    ambient: float = 0.35
    diffuse: float = 0.65


def rot_x(angle: float) -> np.ndarray:
    """(3, 3) rotation about x by ``angle`` radians (right-handed)."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_y(angle: float) -> np.ndarray:
    """(3, 3) rotation about y by ``angle`` radians (right-handed)."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def global_orientation(yaw: float, pitch: float) -> np.ndarray:
    """Camera-frame root rotation ``R_x(pitch) @ R_y(yaw) @ R_x(pi)`` (3, 3) of a person standing upright."""
    return rot_x(pitch) @ rot_y(yaw) @ rot_x(np.pi)


def _relaxed_pose() -> np.ndarray:
    """(23, 3) axis-angle of a relaxed stance: arms lowered along the body, elbows slightly bent."""
    pose = np.zeros((24, 3))
    pose[SMPL_JOINT_NAMES.index("left_shoulder")] = (0.0, 0.0, -1.2)
    pose[SMPL_JOINT_NAMES.index("right_shoulder")] = (0.0, 0.0, 1.2)
    pose[SMPL_JOINT_NAMES.index("left_elbow")] = (0.0, -0.3, 0.0)
    pose[SMPL_JOINT_NAMES.index("right_elbow")] = (0.0, 0.3, 0.0)
    return np.clip(pose, JOINT_LIMITS[..., 0], JOINT_LIMITS[..., 1])[1:]


#: Spread of the pose distribution: standard deviation as a fraction of each joint's half-range.
POSE_SPREAD = 0.45
#: Share of people whose yaw is uniform over the full turn; the rest face the camera within N(0, YAW_STD).
YAW_UNIFORM_PROBABILITY, YAW_STD = 0.3, 0.7


def sample_body_pose(rng: np.random.Generator, n: int) -> np.ndarray:
    """Body poses around a relaxed stance, within :data:`JOINT_LIMITS`.

    Each angle is normal around :func:`_relaxed_pose` with a standard deviation of ``POSE_SPREAD`` x the
    half-range of its limits, clipped to the limits: people mostly stand, walk, reach and bend, as in
    photographs of crowds, while the tails still cover the whole range of each joint.

    Returns:
        (n, 23, 3) axis-angle radians of joints 1..23.
    """
    low, high = JOINT_LIMITS[1:, :, 0], JOINT_LIMITS[1:, :, 1]
    spread = POSE_SPREAD * (high - low) / 2.0
    return np.clip(_relaxed_pose() + rng.normal(size=(n, 23, 3)) * spread, low, high)


def sample_yaw(rng: np.random.Generator, n: int) -> np.ndarray:
    """Rotation about the vertical (radians, 0 = facing the camera): mostly towards the camera, some any way."""
    uniform = rng.random(n) < YAW_UNIFORM_PROBABILITY
    facing = np.clip(rng.normal(0.0, YAW_STD, size=n), -np.pi, np.pi)
    return np.where(uniform, rng.uniform(-np.pi, np.pi, size=n), facing)


def load_user_poses(path: str) -> np.ndarray:
    """SMPL pose vectors from an ``.npz`` with key ``poses`` or ``pose``.

    Returns:
        (N, 72) float64 axis-angle (the global orientation, first 3 values, is replaced by the scene's).
    Raises:
        ValueError: missing key, wrong shape or non-finite values, naming the file and the fix.
    """
    with np.load(path, allow_pickle=False) as data:
        key = "poses" if "poses" in data.files else "pose" if "pose" in data.files else None
        if key is None:
            raise ValueError(
                f"{path}: no 'poses' or 'pose' array (found {data.files}); save SMPL pose vectors as "
                "np.savez(path, poses=array_of_shape_(N, 72))"
            )
        poses = np.asarray(data[key], dtype=np.float64)
    if poses.ndim == 1:
        poses = poses[None]
    if poses.ndim != 2 or poses.shape[1] != 72 or len(poses) == 0:
        raise ValueError(f"{path}: '{key}' must be (N, 72) SMPL axis-angle pose vectors, got {poses.shape}")
    if not np.all(np.isfinite(poses)):
        raise ValueError(f"{path}: '{key}' contains NaN or inf values")
    return poses


def sample_appearance(rng: np.random.Generator) -> Appearance:
    """Random skin tone, clothing colours (HSV), sleeve/trouser length and a brightness factor."""
    skin = np.clip(SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.92, 1.08), 0.0, 1.0)

    def cloth(v_range: tuple[float, float]) -> np.ndarray:
        hsv = np.array([[[rng.uniform(0, 180), rng.uniform(0.15, 0.9) * 255, rng.uniform(*v_range) * 255]]])
        return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float64) / 255.0

    top = cloth((0.35, 1.0))
    bottom = cloth((0.15, 0.7))
    shoes = np.full(3, rng.uniform(0.05, 0.35))
    hair = np.clip(np.array([0.25, 0.17, 0.10]) * rng.uniform(0.2, 2.2), 0.0, 1.0)
    return Appearance(
        skin=skin,
        top=top,
        bottom=bottom,
        shoes=shoes,
        hair=hair,
        long_sleeves=bool(rng.random() < 0.5),
        long_trousers=bool(rng.random() < 0.7),
        shade=float(rng.uniform(0.85, 1.1)),
    )


def _sample_layout(rng: np.random.Generator, n: int, focal: float, width: int) -> np.ndarray:
    """Ground positions (n, 2) ``(x, z)`` in metres: depths in :data:`DEPTH_RANGE_M`, image columns
    clustered so that people stand in each other's line of sight, at least MIN_SEPARATION_M apart."""
    cx = (width - 1) / 2.0
    positions: list[np.ndarray] = []
    for _ in range(n):
        for _attempt in range(20):
            z = rng.uniform(*DEPTH_RANGE_M)
            if positions and rng.random() < CLUSTER_PROBABILITY:
                anchor = positions[rng.integers(len(positions))]
                u = (anchor[0] * focal / anchor[1] + cx) + rng.normal(0.0, 0.12 * width)
            else:
                u = rng.uniform(0.15, 0.85) * width
            u = float(np.clip(u, 0.05 * width, 0.95 * width))
            candidate = np.array([(u - cx) * z / focal, z])
            if all(np.linalg.norm(candidate - p) >= MIN_SEPARATION_M for p in positions):
                positions.append(candidate)
                break
    return np.array(positions).reshape(-1, 2)


def sample_scene(
    rng: np.random.Generator,
    image_size: tuple[int, int],
    people: tuple[int, int] = (1, 6),
    user_poses: np.ndarray | None = None,
) -> SceneParams:
    """Draws a scene.

    Args:
        rng: the scene's generator (one per image).
        image_size: (H, W) pixels.
        people: (min, max); the number of people is uniform in ``[min, max]`` (fewer when the layout
            cannot fit them at :data:`MIN_SEPARATION_M`).
        user_poses: optional (N, 72) SMPL poses; each person takes one of them with probability
            :data:`USER_POSE_PROBABILITY` (its global orientation replaced by the scene's).
    Returns:
        :class:`SceneParams` with the background already drawn.
    """
    h, w = image_size
    lo, hi = int(people[0]), int(people[1])
    if not 1 <= lo <= hi:
        raise ValueError(f"people per scene must satisfy 1 <= min <= max, got {people}")
    n = int(rng.integers(lo, hi + 1))
    focal = rng.uniform(*FOCAL_RANGE_X_WIDTH) * w
    K = np.array([[focal, 0.0, (w - 1) / 2.0], [0.0, focal, (h - 1) / 2.0], [0.0, 0.0, 1.0]])
    height = rng.uniform(*CAMERA_HEIGHT_RANGE_M)
    positions = _sample_layout(rng, n, focal, w)
    n = len(positions)
    z_mid = float(np.median(positions[:, 1]))
    # Aim at the chest height (about 1.1 m above the ground) of the median person, plus jitter.
    pitch = float(np.arctan2(height - 1.1, z_mid) + rng.uniform(-PITCH_JITTER_RAD, PITCH_JITTER_RAD))

    body_poses = sample_body_pose(rng, n)
    user = np.zeros(n, dtype=bool)
    if user_poses is not None and len(user_poses):
        user = rng.random(n) < USER_POSE_PROBABILITY
        picks = rng.integers(len(user_poses), size=n)
        body_poses[user] = user_poses[picks[user], 3:].reshape(-1, 23, 3)
    betas = np.clip(rng.normal(0.0, BETA_STD, size=(n, 10)), -BETA_CLIP, BETA_CLIP)
    genders = rng.integers(1, 3, size=n)
    yaws = sample_yaw(rng, n)
    persons = [
        PersonParams(
            body_pose=body_poses[i],
            betas=betas[i],
            gender=int(genders[i]),
            yaw=float(yaws[i]),
            position=positions[i],
            appearance=sample_appearance(rng),
            user_pose=bool(user[i]),
        )
        for i in range(n)
    ]
    light = np.array([rng.uniform(-0.6, 0.6), rng.uniform(-0.9, 0.1), -1.0])
    ambient = float(rng.uniform(0.25, 0.45))
    diffuse = float(np.clip(1.0 - ambient + rng.uniform(-0.1, 0.1), 0.4, 0.8))
    background = sample_background(rng, image_size, K, height, pitch)
    return SceneParams(
        image_size=(h, w),
        K=K,
        camera_height=float(height),
        pitch=pitch,
        people=persons,
        background=background,
        light_dir=light / np.linalg.norm(light),
        ambient=ambient,
        diffuse=diffuse,
    )


# -- procedural backgrounds -----------------------------------------------------------------------------


def _random_color(rng: np.random.Generator, v_range: tuple[float, float] = (0.2, 0.95)) -> np.ndarray:
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(0.05, 0.7) * 255, rng.uniform(*v_range) * 255]]])
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32) / 255.0


def value_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int, octaves: int = 3) -> np.ndarray:
    """Smooth multi-octave value noise in [0, 1], (H, W) float32 (cubic upsampling of random grids)."""
    h, w = shape
    out = np.zeros((h, w), np.float32)
    total = 0.0
    for k in range(octaves):
        c = cells * 2**k
        grid = rng.random((c + 1, c + 1)).astype(np.float32)
        out += cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC) * 0.5**k
        total += 0.5**k
    return np.clip(out / total, 0.0, 1.0)


def sample_background(
    rng: np.random.Generator, image_size: tuple[int, int], K: np.ndarray, camera_height: float, pitch: float
) -> np.ndarray:
    """A procedural backdrop: a wall or sky (gradient, stripes or noise) above the horizon and a textured
    ground plane (checker, planks or noise, seen in perspective and fading with distance) below it.

    The pattern is drawn at half resolution and upsampled (4x fewer pixels to shade, and a slightly soft
    backdrop, as from a lens focused on the people).

    Returns:
        (H, W, 3) uint8 RGB.
    """
    full_h, full_w = image_size
    h, w = max(1, (full_h + 1) // 2), max(1, (full_w + 1) // 2)
    # Pixel centres of the half-resolution grid in full-resolution pixel coordinates.
    sy, sx = full_h / h, full_w / w
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    v, u = (v + 0.5) * sy - 0.5, (u + 0.5) * sx - 0.5
    # Rays through each pixel in the level frame: d = R_x(pitch)^T K^-1 [u, v, 1].
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], axis=-1)
    rays = rays @ rot_x(pitch).astype(np.float32)  # row-vector form of R^T d
    dy = rays[..., 1]
    below = dy > 1e-4
    t = np.where(below, camera_height / np.maximum(dy, 1e-4), np.inf)
    gx, gz = rays[..., 0] * t, rays[..., 2] * t

    # Upper part: wall/sky.
    top_a, top_b = _random_color(rng), _random_color(rng)
    kind = int(rng.integers(3))
    elev = np.clip(-dy / (np.abs(dy).max() + 1e-6), 0.0, 1.0)[..., None]
    upper = top_a * (1 - elev) + top_b * elev
    if kind == 1:  # vertical stripes (a wall of panels)
        period = rng.uniform(0.04, 0.2) * full_w
        stripes = (np.floor(u / period) % 2)[..., None]
        upper = upper * (0.8 + 0.2 * stripes)
    elif kind == 2:  # blotchy noise (foliage, clouds)
        upper = upper * (0.6 + 0.6 * value_noise(rng, (h, w), int(rng.integers(2, 6)))[..., None])

    # Lower part: ground plane texture in world coordinates (metres).
    ground_a, ground_b = _random_color(rng, (0.25, 0.8)), _random_color(rng, (0.25, 0.8))
    tile = rng.uniform(0.3, 1.2)
    gkind = int(rng.integers(3))
    gxf = np.where(below, gx, 0.0)
    gzf = np.where(below, gz, 0.0)
    if gkind == 0:
        pattern = ((np.floor(gxf / tile) + np.floor(gzf / tile)) % 2).astype(np.float32)
    elif gkind == 1:
        pattern = (np.floor(gxf / (0.5 * tile)) % 2).astype(np.float32) * 0.6
    else:
        pattern = value_noise(rng, (h, w), int(rng.integers(3, 8)))
    lower = ground_a * (1 - pattern[..., None]) + ground_b * pattern[..., None]
    # Fade the texture into its mean colour where a pixel spans more ground than half a period (no
    # aliasing near the horizon): a pixel covers about z^2 / (f h) metres of ground along the view.
    footprint = np.where(below, gz, 1e3) ** 2 / (K[1, 1] / sy * camera_height)
    period = tile if gkind == 0 else 0.5 * tile
    fade = np.clip(1.5 - 2.0 * footprint / period, 0.0, 1.0)[..., None].astype(np.float32)
    lower = lower * fade + 0.5 * (ground_a + ground_b) * (1 - fade)

    img = np.where(below[..., None], lower, upper)
    img = img * (0.85 + 0.3 * value_noise(rng, (h, w), 2, octaves=2)[..., None])
    img = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    img = cv2.resize(img, (full_w, full_h), interpolation=cv2.INTER_LINEAR)
    # Sensor noise at full resolution (int16 avoids uint8 wrap-around).
    grain = rng.integers(-4, 5, size=img.shape, dtype=np.int16)
    return np.clip(img.astype(np.int16) + grain, 0, 255).astype(np.uint8)
