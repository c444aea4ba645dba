"""Ground truth of a rendered scene: projected keypoints, visibility from the depth buffer, masks, boxes,
occlusion ratios and body centres.

Pixel conventions: keypoints use COCO's keypoint convention, which is the renderer's (pixel ``(0, 0)`` is
the centre of the top-left pixel; a keypoint at ``(u, v)`` falls in pixel ``(rint(u), rint(v))``). Boxes
and masks use COCO's box/segmentation convention (pycocotools): a box ``[x, y, w, h]`` covers the pixel
columns ``x .. x + w - 1``, so its left edge lies at ``x - 0.5`` in keypoint coordinates.

Keypoint visibility (OCHuman's codes, :data:`VISIBILITY_CODES`) is decided at the keypoint's pixel from
the depth and instance buffers of the full render. Body joints lie *inside* the body, so the front
surface of a visible joint is a few centimetres in front of it; a joint is:

* 1 *visible* when the front surface at its pixel belongs to the same person and lies at most
  ``tolerance`` metres in front of it (:data:`JOINT_DEPTH_TOLERANCE_M` for joints inside the body,
  :data:`SURFACE_DEPTH_TOLERANCE_M` for surface landmarks: nose, eyes, ears);
* 2 *self-occluded* when the person's own surface is further in front (an arm across the body, the far
  hip seen from the side, the face seen from behind);
* 3 *occluded by another person* when another person's surface at that pixel is in front of the joint;
* 0 *outside* the image (or behind the camera).

At the silhouette edge the keypoint's pixel can show the background or a surface *behind* the
keypoint although nothing hides it: this happens to surface landmarks (an ear seen from the front, the
nose in profile), whose vertex lies on the outline. Such an *edge* keypoint is decided by its 3 x 3
pixel neighbourhood: visible if its own surface there lies within the tolerance, else self-occluded (its
own surface around it is further in front, e.g. the far ear at the outline of the head).
:func:`keypoint_visibility` flags these so they can be counted; its visible ones are the only visible
keypoints that may sit one pixel off their person's mask.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pycocotools import mask as mask_utils

from ochmr_lit.eval.buckets import OCCLUSION_BUCKETS, occlusion_bucket  # noqa: F401 (re-exported)

#: OCHuman's per-keypoint visibility codes.
VISIBILITY_CODES = {0: "outside", 1: "visible", 2: "self_occluded", 3: "occluded_by_other"}
JOINT_DEPTH_TOLERANCE_M = 0.15
SURFACE_DEPTH_TOLERANCE_M = 0.05
SURFACE_LANDMARKS = ("nose", "left_eye", "right_eye", "left_ear", "right_ear")



def depth_tolerances(joint_names: Sequence[str]) -> np.ndarray:
    """(J,) metres: :data:`SURFACE_DEPTH_TOLERANCE_M` for surface landmarks, the joint tolerance otherwise."""
    return np.array(
        [SURFACE_DEPTH_TOLERANCE_M if n in SURFACE_LANDMARKS else JOINT_DEPTH_TOLERANCE_M for n in joint_names]
    )


def project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Pinhole projection of camera-frame points.

    Args:
        points: (..., 3) metres, z > 0 in front of the camera.
        K: (3, 3) intrinsics in pixels.
    Returns:
        (..., 2) pixels ``u = (K p)_x / z``, ``v = (K p)_y / z``.
    """
    p = np.asarray(points, dtype=np.float64)
    uvw = p @ np.asarray(K, dtype=np.float64).T
    z = np.where(np.abs(uvw[..., 2:]) < 1e-12, 1e-12, uvw[..., 2:])
    return uvw[..., :2] / z


def keypoint_pixels(keypoints_2d: np.ndarray) -> np.ndarray:
    """(..., 2) int64 pixel (column, row) that contains each keypoint: ``rint`` of its coordinates."""
    return np.rint(np.asarray(keypoints_2d, dtype=np.float64)).astype(np.int64)


def keypoint_visibility(
    keypoints_2d: np.ndarray,
    keypoints_z: np.ndarray,
    depth: np.ndarray,
    instance: np.ndarray,
    tolerance: np.ndarray | float = JOINT_DEPTH_TOLERANCE_M,
) -> tuple[np.ndarray, np.ndarray]:
    """OCHuman visibility codes of every person's keypoints from the render's buffers.

    Args:
        keypoints_2d: (N, J, 2) pixels; person ``i`` is ``instance`` value ``i``.
        keypoints_z: (N, J) camera-frame depth in metres.
        depth: (H, W) front-surface depth in metres (inf where empty).
        instance: (H, W) front person index (-1 where empty).
        tolerance: scalar or (J,) metres.
    Returns:
        ``codes`` (N, J) int64 in {0, 1, 2, 3} and ``edge`` (N, J) bool, the keypoints decided by their
        3 x 3 neighbourhood (see the module docstring).
    """
    kp = np.asarray(keypoints_2d, dtype=np.float64)
    z = np.asarray(keypoints_z, dtype=np.float64)
    h, w = depth.shape
    n, j = z.shape
    tol = np.broadcast_to(np.asarray(tolerance, dtype=np.float64), (j,))[None, :]
    px = keypoint_pixels(kp)
    inside = (z > 0) & (px[..., 0] >= 0) & (px[..., 0] < w) & (px[..., 1] >= 0) & (px[..., 1] < h)
    col = np.clip(px[..., 0], 0, w - 1)
    row = np.clip(px[..., 1], 0, h - 1)
    front_id = instance[row, col].astype(np.int64)
    front_z = depth[row, col].astype(np.float64)
    person = np.arange(n)[:, None]
    own = front_id == person
    near = front_z >= z - tol
    other_in_front = (front_id >= 0) & ~own & (front_z < z)

    # Edge case: nothing in front of the keypoint at its pixel -> look at the 3 x 3 neighbourhood.
    edge = inside & ~own & ~other_in_front
    edge_visible = np.zeros((n, j), dtype=bool)
    if edge.any():
        pi, pj = np.nonzero(edge)
        found = np.zeros(len(pi), dtype=bool)
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                r = np.clip(row[pi, pj] + dr, 0, h - 1)
                c = np.clip(col[pi, pj] + dc, 0, w - 1)
                found |= (instance[r, c] == pi) & (depth[r, c] >= z[pi, pj] - tol[0, pj])
        edge_visible[pi, pj] = found

    codes = np.full((n, j), 2, dtype=np.int64)  # own surface far in front (at the pixel or around it)
    codes[own & near] = 1
    codes[edge_visible] = 1
    codes[other_in_front] = 3
    codes[~inside] = 0
    return codes, edge


def coco_visibility(codes: np.ndarray) -> np.ndarray:
    """COCO's v flag from visibility codes: 2 visible, 1 in the image but hidden, 0 outside."""
    codes = np.asarray(codes)
    return np.where(codes == 1, 2, np.where(codes > 1, 1, 0)).astype(np.int64)


def occlusion_ratios(amodal: np.ndarray, instance: np.ndarray) -> np.ndarray:
    """Share of each person's amodal silhouette (inside the image) covered by other people.

    Args:
        amodal: (N, H, W) bool, each person rendered alone.
        instance: (H, W) front person index of the full render (-1 where empty).
    Returns:
        (N,) float64 in [0, 1]; 0 for a person with an empty silhouette.
    """
    total = np.array([np.count_nonzero(a) for a in amodal], dtype=np.int64)
    hidden = np.array([np.count_nonzero(a & (instance != i)) for i, a in enumerate(amodal)], dtype=np.int64)
    return np.where(total > 0, hidden / np.maximum(total, 1), 0.0)


def encode_masks(masks: np.ndarray) -> list[dict]:
    """COCO RLEs (pycocotools) of (N, H, W) bool masks, ``counts`` decoded to str for JSON."""
    rles = mask_utils.encode(np.asfortranarray(np.asarray(masks, dtype=np.uint8).transpose(1, 2, 0)))
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
    return rles


def rle_boxes_areas(rles: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Tight ``xywh`` boxes (N, 4) and pixel areas (N,) of COCO RLEs, by pycocotools."""
    as_bytes = [{"size": r["size"], "counts": r["counts"].encode("ascii")} for r in rles]
    return mask_utils.toBbox(as_bytes).reshape(-1, 4), mask_utils.area(as_bytes).astype(np.int64)


def amodal_boxes(vertices_2d: np.ndarray) -> np.ndarray:
    """Boxes around all projected vertices, not clipped to the image, in COCO's box convention.

    Args:
        vertices_2d: (N, V, 2) projected vertices in keypoint-convention pixels.
    Returns:
        (N, 4) ``[x, y, w, h]``; ``x = min(u) + 0.5`` turns the pixel-centre coordinate into a box edge.
    """
    lo = vertices_2d.min(axis=1)
    hi = vertices_2d.max(axis=1)
    return np.concatenate([lo + 0.5, hi - lo], axis=1)
