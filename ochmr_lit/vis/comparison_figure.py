"""Predicted meshes next to ground-truth meshes for one image: image | predicted | ground truth | side views.

Both mesh panels are depth-composited renders over the image (:func:`~ochmr_lit.vis.figures.render_people`),
each in its own camera: the predictions in the full-image camera the crops' weak-perspective cameras map to
(:mod:`ochmr_lit.inference.camera`), the ground truth in the dataset's camera. Person ``k`` has the same
colour (:func:`~ochmr_lit.vis.figures.person_colors`) in every panel; on the image, their box is drawn in that
colour with a dark outline and labelled ``k`` (:func:`~ochmr_lit.vis.figures.person_boxes`), so that small boxes
stay visible.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ochmr_lit.vis.draw import image_grid
from ochmr_lit.vis.figure_people import drawable_boxes
from ochmr_lit.vis.figures import (
    FIGURE_PAD,
    person_boxes,
    person_colors,
    render_people,
    side_view,
)
from ochmr_lit.vis.render import MeshRenderer

#: Panels of :func:`comparison_figure`, left to right (the side views only with ``side=True``).
COMPARISON_PANELS: tuple[str, ...] = ("image", "predicted", "ground_truth", "predicted_side", "ground_truth_side")


def comparison_figure(image: np.ndarray, boxes: np.ndarray, pred_vertices: np.ndarray, pred_focal: float,
                      pred_principal: Sequence[float], gt_vertices: np.ndarray, gt_focal: float,
                      gt_principal: Sequence[float], faces: np.ndarray, pred_ids: np.ndarray | None = None,
                      side: bool = True) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The comparison figure of one image and its panels (:data:`COMPARISON_PANELS`), each (H, W, 3) uint8.

    Args:
        image: (H, W, 3) uint8 RGB.
        boxes: (B, 4) xywh px, row ``k`` person ``k``'s: drawn on the first panel in person ``k``'s colour and
            labelled ``k``; boxes that cannot be drawn (not finite, without area, outside the image) are left out.
        pred_vertices: (N, V, 3) camera-frame metres of the predicted meshes; pred_focal (px) and
            pred_principal (2,) px: their full-image camera.
        gt_vertices: (M, V, 3) camera-frame metres of the ground-truth meshes; gt_focal (px) and gt_principal
            (2,) px: the dataset's camera (square pixels).
        faces: (F, 3) vertex indices.
        pred_ids: (N,) which ground-truth person (row of ``gt_vertices``, hence colour) each prediction is;
            None = ``arange(N)``.
        side: add the two side views (:func:`~ochmr_lit.vis.figures.side_view`).
    Returns:
        ``figure`` (panels side by side, :data:`~ochmr_lit.vis.figures.FIGURE_PAD` px apart, panel k at
        x = pad + k (W + pad), y = pad) and the ``panels`` dict.
    """
    height, width = image.shape[:2]
    n, m = len(pred_vertices), len(gt_vertices)
    pred_ids = np.arange(n) if pred_ids is None else np.asarray(pred_ids, np.int64)
    if pred_ids.shape != (n,) or (n and (pred_ids.min() < 0)):
        raise ValueError(f"pred_ids must be ({n},) non-negative person indices, got {pred_ids.tolist()}")
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    colors = person_colors(max(m, len(boxes), int(pred_ids.max()) + 1 if n else 0))
    renderer = MeshRenderer(width, height)
    panels = {"image": person_boxes(image, boxes, drawable_boxes(boxes, (width, height)), colors)}
    panels["predicted"] = render_people(image, pred_vertices, faces, pred_focal, pred_principal, renderer=renderer,
                                        colors=colors[pred_ids]).image
    panels["ground_truth"] = render_people(image, gt_vertices, faces, gt_focal, gt_principal, renderer=renderer,
                                           colors=colors[:m]).image
    names = COMPARISON_PANELS if side else COMPARISON_PANELS[:3]
    if side:
        panels["predicted_side"] = side_view(pred_vertices, faces, (width, height), renderer=renderer,
                                             colors=colors[pred_ids]).image
        panels["ground_truth_side"] = side_view(gt_vertices, faces, (width, height), renderer=renderer,
                                                colors=colors[:m]).image
    figure = image_grid([panels[k] for k in names], ncols=len(names), pad=FIGURE_PAD)
    return figure, panels
