"""The paper figure of one image: input | global centermap | meshes of all people | side view.

Built from the blocks of :mod:`ochmr_lit.vis.figures`. Every panel shows the same people
(:func:`~ochmr_lit.vis.figure_people.figure_people` decides who), person ``k`` in colour ``k`` with the label ``k``;
under the panels a caption strip says what each shows, who was left out and why, and holds the centermap's
colour bar.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ochmr_lit.vis.draw import draw_labels, image_grid
from ochmr_lit.vis.figure_people import FigurePeople, figure_people
from ochmr_lit.vis.figures import (
    FIGURE_PAD,
    caption,
    centermap_legend,
    centermaps_to_image,
    dim_image,
    heatmap_overlay,
    intrinsics,
    person_boxes,
    person_colors,
    render_people,
    rgb255,
    side_view,
    side_view_layout,
    top_anchors,
)
from ochmr_lit.vis.render import MeshRenderer

#: Panels of :func:`paper_figure`, left to right.
FIGURE_PANELS: tuple[str, ...] = ("image", "centermap", "meshes", "side")


def _people_caption(what: str, people: FigurePeople) -> str:
    """``"<what>: <n> people"``, n the people drawn."""
    n = len(people.drawn)
    return f"{what}: {n} {'person' if n == 1 else 'people'}"


def _left_out_caption(people: FigurePeople) -> str:
    """``"left out <n>: <count> <reason>, ..."``, or empty when everyone is drawn."""
    counts = people.counts()
    if not counts:
        return ""
    return f"left out {len(people.left_out)}: " + ", ".join(f"{n} {why}" for why, n in counts.items())


def _centermap_heat(global_maps: np.ndarray | None, crop_affine: np.ndarray | None, crop_size: int | None,
                    drawn: np.ndarray, image_size: tuple[int, int]) -> np.ndarray | None:
    """(H, W) combined global centermap of the drawn people's crops (:func:`centermaps_to_image`), or None."""
    if global_maps is None:
        return None
    if crop_affine is None or crop_size is None:
        raise ValueError("global_maps need crop_affine and crop_size to be placed in the image")
    if len(drawn) == 0:
        return np.zeros(image_size[::-1], np.float32)
    return centermaps_to_image(np.asarray(global_maps)[drawn], np.asarray(crop_affine)[drawn], crop_size,
                               image_size)


def _mesh_panels(image: np.ndarray, vertices: np.ndarray, faces: np.ndarray, focal_length: float,
                 principal_point: Sequence[float], colors: np.ndarray, labels: list[str],
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The labelled mesh panel and side view of the drawn people (vertices (K, V, 3) metres, colors (K, 3))."""
    height, width = image.shape[:2]
    renderer = MeshRenderer(width, height)
    meshes = render_people(image, vertices, faces, focal_length, principal_point, renderer=renderer, colors=colors)
    side = side_view(vertices, faces, (width, height), renderer=renderer, colors=colors)
    if len(vertices) == 0:
        return meshes.image, side.image
    K = intrinsics(focal_length, principal_point)
    side_vertices, side_K = side_view_layout(vertices, (width, height))
    rgb = rgb255(colors)
    return (draw_labels(meshes.image, labels, top_anchors(vertices, K, (width, height)), rgb),
            draw_labels(side.image, labels, top_anchors(side_vertices, side_K, (width, height)), rgb))


def paper_figure(image: np.ndarray, boxes: np.ndarray, vertices: np.ndarray, faces: np.ndarray,
                 focal_length: float, principal_point: Sequence[float], global_maps: np.ndarray | None = None,
                 crop_affine: np.ndarray | None = None, crop_size: int | None = None,
                 people: FigurePeople | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The figure of one image and its panels (:data:`FIGURE_PANELS`), each (H, W, 3) uint8.

    Every panel shows the same people, ``people.drawn``: their boxes in their colours (however small) with
    their labels, the global centermap of their crops, their meshes with labels, the side view with labels.

    Args:
        image: (H, W, 3) uint8 RGB.
        boxes: (N, 4) xywh px, drawn on the first panel.
        vertices: (N, V, 3) camera-frame metres; faces: (F, 3).
        focal_length, principal_point: the full-image camera (px).
        global_maps: (N, h, w) global centermap of each person's crop, or None (SPIN baseline: the panel
            shows the dimmed image and its caption says so); crop_affine: (N, 2, 3) and crop_size (px) place
            them in the image. The map is drawn by :func:`heatmap_overlay`, from 0 to its maximum.
        people: who is drawn; None = :func:`figure_people` (pass it to learn who was left out and why).
    Returns:
        ``figure`` and the ``panels`` dict. The figure has the panels side by side, :data:`FIGURE_PAD` px apart
        (panel k at x = pad + k (W + pad), y = pad), and under them, at y = H + 2 pad, a caption strip per panel
        (:func:`caption_height` px): what it shows, how many people, the centermap's colour bar
        (:func:`centermap_legend`).
    """
    height, width = image.shape[:2]
    size = (width, height)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    vertices = np.asarray(vertices, np.float64)
    if people is None:
        people = figure_people(boxes, vertices, focal_length, principal_point, size)
    drawn = people.drawn
    colors = person_colors(len(boxes))[drawn]
    labels = [str(k) for k in drawn]
    panels = {"image": person_boxes(image, boxes, drawn, person_colors(len(boxes)))}
    heat = _centermap_heat(global_maps, crop_affine, crop_size, drawn, size)
    panels["centermap"] = dim_image(image) if heat is None else heatmap_overlay(image, heat)
    panels["meshes"], panels["side"] = _mesh_panels(image, vertices[drawn], faces, focal_length, principal_point,
                                                    colors, labels)
    legend, _ = centermap_legend(width, size, None if heat is None else float(heat.max()))
    captions = {"image": caption(width, size, [_people_caption("boxes", people), _left_out_caption(people)]),
                "centermap": legend, "meshes": caption(width, size, [_people_caption("meshes", people)]),
                "side": caption(width, size, [_people_caption("side view", people)])}
    top = image_grid([panels[k] for k in FIGURE_PANELS], ncols=len(FIGURE_PANELS), pad=FIGURE_PAD)
    bottom = image_grid([captions[k] for k in FIGURE_PANELS], ncols=len(FIGURE_PANELS), pad=FIGURE_PAD)
    return np.concatenate([top[:-FIGURE_PAD], bottom]), panels
