"""The boxes on the image panel of ``python -m ochmr_lit.vis.compare``'s figure: visible however small, each in its
person's colour with a dark outline and the person's number."""

from __future__ import annotations

import numpy as np
from conftest import require_renderer

from ochmr_lit.vis.comparison_figure import comparison_figure
from ochmr_lit.vis.figures import FIGURE_PAD, person_colors

WIDTH, HEIGHT = 160, 120
#: A 12 px person box (xywh px), well inside the image.
SMALL_BOX = (70.0, 50.0, 12.0, 12.0)



def _image_panel(boxes: np.ndarray) -> np.ndarray:
    """The image panel of the comparison figure of a white image with ``boxes`` and no meshes."""
    require_renderer()
    white = np.full((HEIGHT, WIDTH, 3), 255, np.uint8)
    empty = np.zeros((0, 8, 3))
    faces = np.zeros((0, 3), np.int64)
    figure, panels = comparison_figure(white, boxes, empty, 200.0, (WIDTH / 2, HEIGHT / 2), empty, 200.0,
                                       (WIDTH / 2, HEIGHT / 2), faces, side=False)
    np.testing.assert_array_equal(figure[FIGURE_PAD:FIGURE_PAD + HEIGHT, FIGURE_PAD:FIGURE_PAD + WIDTH],
                                  panels["image"])
    return panels["image"]


def _outline_pixels(box: tuple[float, float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the pixels on a box's border (COCO corners: the box covers pixels x .. x + w - 1)."""
    x0, y0, w, h = (int(v) for v in box)
    x1, y1 = x0 + w - 1, y0 + h - 1
    cols = np.r_[np.arange(x0, x1 + 1), np.arange(x0, x1 + 1), np.full(h, x0), np.full(h, x1)]
    rows = np.r_[np.full(w, y0), np.full(w, y1), np.arange(y0, y1 + 1), np.arange(y0, y1 + 1)]
    return rows, cols


def _luminance(pixels: np.ndarray) -> np.ndarray:
    """Rec. 601 luma (0-255) of (..., 3) RGB pixels."""
    return pixels.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def test_a_12_px_box_is_drawn_visibly_on_a_white_image():
    panel = _image_panel(np.array([SMALL_BOX]))
    luma = _luminance(panel)
    rows, cols = _outline_pixels(SMALL_BOX)
    # every pixel of the box's border is drawn, at least 100 grey levels darker than the white image
    assert np.all(luma[rows, cols] <= 255 - 100)
    # in person 0's colour
    colour = np.rint(255 * person_colors(1)[0]).astype(int)
    near_colour = np.abs(panel[rows, cols].astype(int) - colour).max(axis=-1) <= 40
    assert near_colour.mean() >= 0.9
    # with a dark outline beside the coloured line (darker than the colour itself)
    x0, y0, w, h = (int(v) for v in SMALL_BOX)
    ring = np.zeros(luma.shape, bool)
    ring[y0 - 4:y0 + h + 4, x0 - 4:x0 + w + 4] = True
    ring[y0 + 3:y0 + h - 3, x0 + 3:x0 + w - 3] = False
    assert (ring & (luma < 0.8 * _luminance(colour))).sum() >= 2 * (w + h)
    # nothing drawn away from the box and its label above it
    far = np.ones(luma.shape, bool)
    far[max(0, y0 - 30):y0 + h + 5, x0 - 15:x0 + w + 15] = False
    assert np.all(panel[far] == 255)


def test_boxes_keep_their_persons_colours_and_undrawable_ones_are_left_out():
    boxes = np.array([[10.0, 60.0, 12.0, 12.0], [np.nan, 0.0, 5.0, 5.0], [120.0, 60.0, 12.0, 12.0]])
    panel = _image_panel(boxes)
    colours = np.rint(255 * person_colors(3)).astype(int)
    for k in (0, 2):
        rows, cols = _outline_pixels(tuple(boxes[k]))
        near = np.abs(panel[rows, cols].astype(int) - colours[k]).max(axis=-1) <= 40
        assert near.mean() >= 0.9, k
    assert not np.any(np.abs(panel.astype(int) - colours[1]).max(axis=-1) <= 10)
