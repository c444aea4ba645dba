"""The building blocks of the project's figures: person colours, captions, centermap overlays, mesh renders,
side views and label anchors.

:mod:`ochmr_lit.vis.paper_figure` composes them into the paper figure of one image, and
:mod:`ochmr_lit.vis.comparison_figure` into the prediction-against-ground-truth figure.

Meshes are rendered with :class:`~ochmr_lit.vis.render.MeshRenderer` in one full-image camera (one colour
per person, depth-correct compositing). Perspective projection does not change when the whole scene is
scaled about the camera centre, so scenes are scaled to a nearest depth of a few metres before rendering:
the depth buffer then resolves the body's own relief even for people tens of metres away (long focal lengths).

A figure shows the same people in every panel (:mod:`ochmr_lit.vis.figure_people` decides who): person ``k``
(row ``k`` of the result files) has box, mesh and side-view body in colour ``k`` of :func:`person_colors` and the
label ``k``, so tiny or hidden people can still be counted. A caption strip (:func:`caption`) says what a panel
shows, and :func:`centermap_legend` holds the centermap's colour bar (value 0 to the map's maximum).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from matplotlib import colormaps

from ochmr_lit.vis.draw import (
    draw_person_boxes,
    draw_text,
    label_scale,
    text_size,
)
from ochmr_lit.vis.render import Mesh, MeshRenderer, RenderResult

#: Pixels between panels (and around the figure) in the paper and comparison figures.
FIGURE_PAD = 4
#: Nearest depth (metres) scenes are scaled to before rendering (see the module docstring).
RENDER_DEPTH = 5.0
#: Colormap of the centermap panel and its colour bar (low values dark violet, high values red).
CENTERMAP_CMAP = "turbo"
#: Brightness (0..1) of the grey image under the centermap, so that the map's colours stand out.
CENTERMAP_DIM = 0.45
#: Pixels between the caption strip's lines and around them.
CAPTION_GAP = 3


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


def dim_image(image: np.ndarray, brightness: float = CENTERMAP_DIM) -> np.ndarray:
    """(H, W, 3) uint8: ``image`` in grey at ``brightness`` (0..1) of its luminance, the centermap's background."""
    grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY).astype(np.float32) * brightness
    return np.repeat(np.rint(grey).astype(np.uint8)[..., None], 3, axis=-1)


def heatmap_overlay(image: np.ndarray, heat: np.ndarray, vmax: float | None = None, alpha: float = 0.85,
                    cmap: str = CENTERMAP_CMAP) -> np.ndarray:
    """A heat map in colour over the dimmed grey image (:func:`dim_image`); (H, W, 3) uint8.

    The colour of a pixel is ``cmap(heat / vmax)`` (the colour bar of :func:`centermap_legend`), blended in with
    weight ``alpha * sqrt(heat / vmax)``: pixels where the map is 0 show the dimmed image unchanged, the map's
    tails stay visible and its peaks are nearly opaque.

    Args:
        image: (H, W, 3) uint8 RGB.
        heat: (H, W) values >= 0 (e.g. :func:`centermaps_to_image`).
        vmax: the value drawn at the top of the colormap; None = ``heat.max()``. With ``vmax <= 0`` (a map
            that is 0 everywhere) the dimmed image is returned.
    """
    base = dim_image(image)
    heat = np.clip(np.nan_to_num(np.asarray(heat, np.float32)), 0.0, None)
    vmax = float(heat.max()) if vmax is None else float(vmax)
    if vmax <= 0:
        return base
    level = np.clip(heat / vmax, 0.0, 1.0)
    colour = colormaps[cmap](level)[..., :3].astype(np.float32) * 255.0
    weight = alpha * np.sqrt(level)[..., None]
    return np.rint(base.astype(np.float32) * (1.0 - weight) + colour * weight).astype(np.uint8)


def _fit_scale(text: str, width: int, scale: float) -> float:
    """``scale``, shrunk so that ``text`` fits ``width`` px with :data:`CAPTION_GAP` on both sides."""
    room = max(width - 2 * CAPTION_GAP, 1)
    return min(scale, scale * room / max(text_size(text, scale)[0], 1))


def caption_height(image_size: tuple[int, int]) -> int:
    """Height px of the caption strip under each panel of an image of ``(W, H)`` px: two lines of text."""
    return 2 * text_size("Ag0", label_scale(image_size))[1] + 3 * CAPTION_GAP


def caption(width: int, image_size: tuple[int, int], lines: Sequence[str]) -> np.ndarray:
    """A white (caption_height, width, 3) uint8 strip with up to two lines of dark text."""
    strip = np.full((caption_height(image_size), width, 3), 255, np.uint8)
    scale = label_scale(image_size)
    line_height = text_size("Ag0", scale)[1]
    for k, line in enumerate(lines[:2]):
        draw_text(strip, line, (CAPTION_GAP, CAPTION_GAP + k * (line_height + CAPTION_GAP)),
                  _fit_scale(line, width, scale), (20, 20, 20))
    return strip


def _value_text(value: float) -> str:
    """A colour-bar end value, three significant digits."""
    return f"{value:.3g}"


def centermap_legend(width: int, image_size: tuple[int, int], vmax: float | None,
                     cmap: str = CENTERMAP_CMAP) -> tuple[np.ndarray, tuple[int, int, int, int] | None]:
    """The caption strip of the centermap panel: its title and a colour bar from 0 to ``vmax``.

    Args:
        width: strip width px (the panel's).
        image_size: ``(W, H)`` px of the image (sets the text size).
        vmax: the map's maximum (the colour bar's top); None = the model has no centermap (no bar), 0 = the map
            is 0 everywhere (no bar; the strip says so).
    Returns:
        ``(strip, bar)``: the (caption_height, width, 3) uint8 strip and the colour bar's ``(x0, y0, x1, y1)``
        px in it (exclusive ends; column ``x0 + i`` has colour ``cmap(i / (x1 - x0 - 1))``), or None without one.
    """
    if vmax is None:
        return caption(width, image_size, ["no centermap:", "the model takes no context"]), None
    if vmax <= 0:
        return caption(width, image_size, ["global centermap", "0 everywhere"]), None
    strip = caption(width, image_size, ["global centermap (body centres)"])
    scale = label_scale(image_size)
    line_height = text_size("Ag0", scale)[1]
    low, high = "0", _value_text(vmax)
    y0 = 2 * CAPTION_GAP + line_height
    x0 = CAPTION_GAP + text_size(low, scale)[0] + CAPTION_GAP
    x1 = width - 2 * CAPTION_GAP - text_size(high, scale)[0]
    if x1 - x0 < 2:  # no room for the numbers: the bar alone, full width
        x0, x1 = CAPTION_GAP, width - CAPTION_GAP
    else:
        draw_text(strip, low, (CAPTION_GAP, y0), scale, (20, 20, 20))
        draw_text(strip, high, (x1 + CAPTION_GAP, y0), scale, (20, 20, 20))
    x1 = min(max(x1, x0 + 2), width)
    y1 = y0 + line_height
    bar = colormaps[cmap](np.linspace(0.0, 1.0, x1 - x0))[:, :3] * 255.0
    strip[y0:y1, x0:x1] = np.rint(bar).astype(np.uint8)[None]
    return strip, (x0, y0, x1, y1)


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


def side_view_layout(vertices: np.ndarray, image_size: tuple[int, int], angle_deg: float = 90.0,
                     margin: float = 0.85, min_person_size: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Where :func:`side_view` puts the people: the scene turned by ``angle_deg`` about the vertical (camera y)
    axis through its centre, bodies enlarged in place (see :func:`side_view`), framed to fill ``margin`` of an
    image of ``image_size``.

    Args:
        vertices: (N, V, 3) camera-frame metres, N >= 1.
        image_size: ``(W, H)`` px.
    Returns:
        ``(placed, K)``: (N, V, 3) vertices in the side camera's frame (metres, in front of it) and its (3, 3)
        intrinsics (px).
    """
    width, height = image_size
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
    return turned + shift, intrinsics(focal, (width / 2.0, height / 2.0))


def side_view(vertices: np.ndarray, faces: np.ndarray, image_size: tuple[int, int], angle_deg: float = 90.0,
              background: int = 255, margin: float = 0.85, min_person_size: float = 0.2,
              renderer: MeshRenderer | None = None, colors: np.ndarray | None = None) -> RenderResult:
    """The people seen from the side: the scene turned by ``angle_deg`` about the vertical (camera y) axis
    through its centre, framed to fill ``margin`` of an image of ``image_size`` (:func:`side_view_layout`).

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
    placed, K = side_view_layout(vertices, image_size, angle_deg, margin, min_person_size)
    renderer = renderer or MeshRenderer(width, height)
    return _render_scene(renderer, placed, faces, K, _person_colors(len(placed), colors), background_image, 1.0)


def project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(..., 2) px of camera-frame points (..., 3) (z > 0) under the (3, 3) intrinsics ``K``."""
    uvw = np.asarray(points, np.float64) @ np.asarray(K, np.float64).T
    return uvw[..., :2] / uvw[..., 2:]


def rgb255(colors: np.ndarray) -> list[tuple[int, int, int]]:
    """(N, 3) RGB in [0, 1] -> N uint8 RGB tuples."""
    return [tuple(int(round(255 * c)) for c in color) for color in np.asarray(colors, np.float64)]


def person_boxes(image: np.ndarray, boxes: np.ndarray, people: np.ndarray, colors: np.ndarray) -> np.ndarray:
    """``image`` with the boxes of ``people``, person ``k``'s in colour ``k`` and labelled ``k``, on a copy.

    Each box is drawn by :func:`~ochmr_lit.vis.draw.draw_person_boxes`: in its person's colour with a dark outline
    and a line width that grows with the image, so that boxes of a few pixels stay visible on any image.

    Args:
        image: (H, W, 3) uint8 RGB.
        boxes: (N, 4) xywh px, row ``k`` person ``k``'s.
        people: (K,) indices into ``boxes`` of the people to draw (e.g.
            :func:`~ochmr_lit.vis.figure_people.drawable_boxes`).
        colors: (M, 3) RGB in [0, 1] indexed by person (M > every index in ``people``), e.g. :func:`person_colors`.
    Returns:
        (H, W, 3) uint8 RGB.
    """
    people = np.asarray(people, np.int64).reshape(-1)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    return draw_person_boxes(image, boxes[people], rgb255(np.asarray(colors)[people]), [str(k) for k in people])


def top_anchors(points: np.ndarray, K: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """(N, 2) px just above each of N projected point sets (N, V, 3), clipped into the image: label anchors."""
    width, height = image_size
    uv = project(points, K)
    anchors = np.stack([np.median(uv[..., 0], axis=1), uv[..., 1].min(axis=1) - 2.0], axis=-1)
    return np.clip(anchors, [0.0, 0.0], [width - 1.0, height - 1.0])
