"""Paper-style figures of one image: input | global centermap | meshes of all people | side view.

Meshes are rendered with :class:`~ochmr_lit.vis.render.MeshRenderer` in one full-image camera (one colour
per person, depth-correct compositing). Perspective projection does not change when the whole scene is
scaled about the camera centre, so scenes are scaled to a nearest depth of a few metres before rendering:
the depth buffer then resolves the body's own relief even for people tens of metres away (long focal lengths).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from matplotlib import colormaps

from ochmr_lit.vis.draw import draw_boxes, image_grid
from ochmr_lit.vis.render import Mesh, MeshRenderer, RenderResult

#: Panels of :func:`paper_figure`, left to right.
FIGURE_PANELS: tuple[str, ...] = ("image", "centermap", "meshes", "side")
#: Pixels between panels (and around the figure) in :func:`paper_figure`.
FIGURE_PAD = 4
#: Nearest depth (metres) scenes are scaled to before rendering (see the module docstring).
RENDER_DEPTH = 5.0


def person_colors(n: int) -> np.ndarray:
    """(n, 3) RGB in [0, 1]: matplotlib's ``tab10`` colours, repeated beyond ten people."""
    table = np.asarray(colormaps["tab10"].colors, np.float64)
    return table[np.arange(n) % len(table)]


def intrinsics(focal_length: float, principal_point: Sequence[float]) -> np.ndarray:
    """(3, 3) pinhole intrinsics with square pixels."""
    cx, cy = (float(v) for v in principal_point)
    return np.array([[focal_length, 0.0, cx], [0.0, focal_length, cy], [0.0, 0.0, 1.0]])


def centermaps_to_image(maps: np.ndarray, crop_affine: np.ndarray, crop_size: int,
                        image_size: tuple[int, int]) -> np.ndarray:
    """Crop centermaps warped back into the image and combined by the pixel-wise maximum.

    Args:
        maps: (N, h, w) one map per person (e.g. the global centermap of each crop), values in [0, 1].
        crop_affine: (N, 2, 3) image px -> crop px of each crop.
        crop_size: crop side S in px; map px = (crop px + 0.5) h / S - 0.5 (as the centermap targets).
        image_size: ``(W, H)`` px.
    Returns:
        (H, W) float32, 0 outside every crop.
    """
    width, height = image_size
    out = np.zeros((height, width), np.float32)
    maps = np.asarray(maps, np.float32)
    for m, affine in zip(maps, np.asarray(crop_affine, np.float64), strict=True):
        ratio = m.shape[-1] / crop_size
        image_to_map = affine * ratio
        image_to_map[:, 2] += 0.5 * ratio - 0.5
        warped = cv2.warpAffine(m, image_to_map, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        np.maximum(out, warped, out=out)
    return out


def heatmap_overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.7, cmap: str = "jet") -> np.ndarray:
    """``image`` with a [0, 1] heat map blended in, weight ``alpha * heat`` per pixel; (H, W, 3) uint8."""
    heat = np.clip(np.asarray(heat, np.float32), 0.0, 1.0)
    colour = colormaps[cmap](heat)[..., :3].astype(np.float32) * 255.0
    weight = alpha * heat[..., None]
    return np.rint(image.astype(np.float32) * (1.0 - weight) + colour * weight).astype(np.uint8)


def _render_scene(renderer: MeshRenderer, vertices: np.ndarray, faces: np.ndarray, K: np.ndarray,
                  colors: np.ndarray, background: np.ndarray | None, alpha: float) -> RenderResult:
    """Renders camera-frame meshes after scaling the scene to a nearest depth of RENDER_DEPTH (depth in metres)."""
    nearest = float(vertices[..., 2].min())
    if nearest <= 0:
        raise ValueError(f"meshes reach behind the camera (nearest depth {nearest:.3f} m); nothing sensible to draw")
    scale = RENDER_DEPTH / nearest
    meshes = [Mesh(v * scale, faces, tuple(c), alpha=alpha) for v, c in zip(vertices, colors, strict=True)]
    result = renderer.render(meshes, K, background=background)
    result.depth = result.depth / scale
    return result


def _person_colors(n: int, colors: np.ndarray | None) -> np.ndarray:
    """(n, 3) RGB in [0, 1]: ``colors`` when given (checked), else :func:`person_colors`."""
    if colors is None:
        return person_colors(n)
    colors = np.asarray(colors, np.float64)
    if colors.shape != (n, 3):
        raise ValueError(f"colors must be ({n}, 3) RGB in [0, 1], one per person; got {colors.shape}")
    return colors


def render_people(image: np.ndarray, vertices: np.ndarray, faces: np.ndarray, focal_length: float,
                  principal_point: Sequence[float], alpha: float = 1.0,
                  renderer: MeshRenderer | None = None, colors: np.ndarray | None = None) -> RenderResult:
    """All people's meshes over the image, one colour each (:func:`person_colors`), depth-composited.

    Args:
        image: (H, W, 3) uint8 RGB background.
        vertices: (N, V, 3) camera-frame metres (body vertices + each person's translation).
        faces: (F, 3) vertex indices.
        focal_length, principal_point: the full-image camera (px).
        alpha: mesh opacity.
        colors: (N, 3) RGB in [0, 1] of each person; None = :func:`person_colors`.
    Returns:
        :class:`RenderResult`; ``instance`` indexes the people, ``depth`` is in metres.
    """
    height, width = image.shape[:2]
    if len(vertices) == 0:
        return MeshRenderer(width, height).render([], intrinsics(focal_length, principal_point), background=image)
    renderer = renderer or MeshRenderer(width, height)
    return _render_scene(renderer, np.asarray(vertices, np.float64), faces, intrinsics(focal_length, principal_point),
                         _person_colors(len(vertices), colors), np.ascontiguousarray(image), alpha)


def side_view(vertices: np.ndarray, faces: np.ndarray, image_size: tuple[int, int], angle_deg: float = 90.0,
              background: int = 255, margin: float = 0.85, min_person_size: float = 0.2,
              renderer: MeshRenderer | None = None, colors: np.ndarray | None = None) -> RenderResult:
    """The people seen from the side: the scene turned by ``angle_deg`` about the vertical (camera y) axis
    through its centre, framed to fill ``margin`` of an image of ``image_size``.

    People of different box sizes can lie many metres apart in depth (tens of metres with a long focal length),
    which would leave each body a few pixels tall. Bodies are therefore drawn enlarged about their own
    centre (one factor for all) until the tallest spans ``min_person_size`` of the scene's extent; their
    positions, and so the depth order and spacing, stay true.

    Args:
        vertices: (N, V, 3) camera-frame metres.
        faces: (F, 3).
        image_size: ``(W, H)`` px.
        angle_deg: rotation; 90 looks at the scene from the left (from -x towards +x): people nearer the
            original camera appear further right.
        background: grey level behind the meshes.
        min_person_size: the smallest share of the scene extent the tallest body spans (1 = no enlarging
            beyond the scene).
        colors: (N, 3) RGB in [0, 1] of each person; None = :func:`person_colors`.
    Returns:
        :class:`RenderResult` (same person colours as :func:`render_people`).
    """
    width, height = image_size
    background_image = np.full((height, width, 3), background, np.uint8)
    if len(vertices) == 0:
        return MeshRenderer(width, height).render([], intrinsics(max(width, height), (width / 2, height / 2)),
                                                  background=background_image)
    points = np.asarray(vertices, np.float64)
    centre = (points.reshape(-1, 3).min(0) + points.reshape(-1, 3).max(0)) / 2.0
    a = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(a), 0.0, -np.sin(a)], [0.0, 1.0, 0.0], [np.sin(a), 0.0, np.cos(a)]])
    turned = (points - centre) @ rot.T
    roots = (turned.min(1) + turned.max(1)) / 2.0  # (N, 3) centre of each body
    tallest = float(np.ptp(turned[..., 1], axis=1).max())
    spread = float(max(np.ptp(roots[:, 0]), np.ptp(roots[:, 1]), tallest))
    enlarge = max(1.0, min_person_size * spread / max(tallest, 1e-9))
    turned = roots[:, None] + enlarge * (turned - roots[:, None])
    lo, hi = turned.reshape(-1, 3).min(0), turned.reshape(-1, 3).max(0)
    focal = float(max(width, height))
    # Distance to the scene's front face at which its x and y extents fill `margin` of the image.
    distance = max(focal * (hi[0] - lo[0]) / (margin * width), focal * (hi[1] - lo[1]) / (margin * height), 1e-3)
    shift = np.array([-(lo[0] + hi[0]) / 2.0, -(lo[1] + hi[1]) / 2.0, distance - lo[2]])
    renderer = renderer or MeshRenderer(width, height)
    return _render_scene(renderer, turned + shift, faces, intrinsics(focal, (width / 2.0, height / 2.0)),
                         _person_colors(len(points), colors), background_image, 1.0)


def paper_figure(image: np.ndarray, boxes: np.ndarray, vertices: np.ndarray, faces: np.ndarray,
                 focal_length: float, principal_point: Sequence[float], global_maps: np.ndarray | None = None,
                 crop_affine: np.ndarray | None = None, crop_size: int | None = None,
                 ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The figure of one image and its panels (:data:`FIGURE_PANELS`), each (H, W, 3) uint8.

    Args:
        image: (H, W, 3) uint8 RGB.
        boxes: (N, 4) xywh px, drawn on the first panel.
        vertices: (N, V, 3) camera-frame metres; faces: (F, 3).
        focal_length, principal_point: the full-image camera (px).
        global_maps: (N, h, w) global centermap of each person's crop, or None (SPIN baseline: the panel
            shows the image alone); crop_affine: (N, 2, 3) and crop_size (px) place them in the image.
    Returns:
        ``figure`` (panels side by side, :data:`FIGURE_PAD` px apart, panel k at x = pad + k (W + pad),
        y = pad) and the ``panels`` dict.
    """
    height, width = image.shape[:2]
    panels = {"image": draw_boxes(image, boxes, color=(255, 255, 255), thickness=2)}
    if global_maps is not None and len(global_maps):
        heat = centermaps_to_image(global_maps, crop_affine, crop_size, (width, height))
        panels["centermap"] = heatmap_overlay(image, heat)
    else:
        panels["centermap"] = image.copy()
    renderer = MeshRenderer(width, height)
    panels["meshes"] = render_people(image, vertices, faces, focal_length, principal_point, renderer=renderer).image
    panels["side"] = side_view(vertices, faces, (width, height), renderer=renderer).image
    figure = image_grid([panels[k] for k in FIGURE_PANELS], ncols=len(FIGURE_PANELS), pad=FIGURE_PAD)
    return figure, panels
