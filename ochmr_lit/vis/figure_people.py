"""Which people a figure draws: the same people in every panel, and why the others are left out of all of them.

A person who cannot be drawn (invalid box, mesh behind the camera or outside the image, ...) is left out of
every panel of a figure with the reason (:data:`LEFT_OUT_REASONS`), so that the figure's captions can name
them; a tiny or hidden person is still drawn.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ochmr_lit.vis.figures import RENDER_DEPTH, intrinsics, project
from ochmr_lit.vis.render import Z_FAR

#: Why :func:`figure_people` leaves a person out of every panel (reason -> what it means).
LEFT_OUT_REASONS: dict[str, str] = {
    "invalid_box": "box not finite or without area",
    "box_outside_image": "box entirely outside the image",
    "invalid_mesh": "mesh vertices not finite",
    "behind_camera": "mesh reaches behind the image camera",
    "outside_image": "mesh projects entirely outside the image",
    "beyond_far_plane": "mesh lies beyond the renderer's far plane",
}


@dataclass(frozen=True)
class FigurePeople:
    """Who the panels of :func:`~ochmr_lit.vis.paper_figure.paper_figure` draw: the same people in every panel.

    Attributes:
        drawn: (K,) int64 ascending indices of the people drawn (box, mesh, side view, label ``str(k)``).
        left_out: person index -> reason (a key of :data:`LEFT_OUT_REASONS`) for every other person.
    """

    drawn: np.ndarray
    left_out: dict[int, str]

    def counts(self) -> dict[str, int]:
        """How many people each reason left out (reasons that occurred only)."""
        return dict(sorted(Counter(self.left_out.values()).items()))


def _box_reason(box: np.ndarray, image_size: tuple[int, int]) -> str | None:
    """Why an ``xywh`` box (px) cannot be drawn on an image of ``(W, H)`` px, or None."""
    width, height = image_size
    x, y, w, h = box
    if not (np.all(np.isfinite(box)) and w > 0 and h > 0):
        return "invalid_box"
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        return "box_outside_image"
    return None


def _mesh_reason(vertices: np.ndarray, K: np.ndarray, image_size: tuple[int, int]) -> str | None:
    """Why a (V, 3) camera-frame mesh (metres) cannot be rendered in the image camera ``K``, or None."""
    width, height = image_size
    if not np.all(np.isfinite(vertices)):
        return "invalid_mesh"
    if vertices[:, 2].min() <= 0:
        return "behind_camera"
    uv = project(vertices, K)
    lo, hi = uv.min(0), uv.max(0)
    if hi[0] < -0.5 or hi[1] < -0.5 or lo[0] > width - 0.5 or lo[1] > height - 0.5:
        return "outside_image"
    return None


def drawable_boxes(boxes: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """(K,) int64 ascending indices of the ``xywh`` boxes (N, 4) px that can be drawn on an image of ``(W, H)`` px:
    finite, with area and overlapping the image, however small."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.array([k for k, box in enumerate(boxes) if _box_reason(box, image_size) is None], np.int64)


def figure_people(boxes: np.ndarray, vertices: np.ndarray, focal_length: float, principal_point: Sequence[float],
                  image_size: tuple[int, int]) -> FigurePeople:
    """Which people a figure (:func:`~ochmr_lit.vis.paper_figure.paper_figure`) draws, in every panel, and why
    the others are left out of all of them.

    A person is drawn when their box can be drawn (finite, with area, overlapping the image; however small) and
    their mesh can be rendered in the image camera (finite, in front of the camera, projecting at least partly
    into the image, nearer than the renderer's far plane after the scene is scaled to :data:`RENDER_DEPTH`).

    Args:
        boxes: (N, 4) xywh px.
        vertices: (N, V, 3) camera-frame metres.
        focal_length, principal_point: the full-image camera (px).
        image_size: ``(W, H)`` px.
    Returns:
        :class:`FigurePeople`.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    vertices = np.asarray(vertices, np.float64)
    if len(vertices) != len(boxes):
        raise ValueError(f"{len(boxes)} boxes and {len(vertices)} meshes: one of each per person")
    K = intrinsics(focal_length, principal_point)
    left_out: dict[int, str] = {}
    for k in range(len(boxes)):
        reason = _box_reason(boxes[k], image_size) or _mesh_reason(vertices[k], K, image_size)
        if reason is not None:
            left_out[k] = reason
    kept = [k for k in range(len(boxes)) if k not in left_out]
    if kept:
        scale = RENDER_DEPTH / min(float(vertices[k, :, 2].min()) for k in kept)
        for k in kept:
            if vertices[k, :, 2].min() * scale >= Z_FAR:
                left_out[k] = "beyond_far_plane"
    drawn = np.array([k for k in range(len(boxes)) if k not in left_out], np.int64)
    return FigurePeople(drawn=drawn, left_out=dict(sorted(left_out.items())))
