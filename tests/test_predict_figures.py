"""The figure ``python -m ochmr_lit.predict`` draws per image: a readable centermap panel with its colour bar, and
the same people in every panel (tiny boxes included), the others left out of all panels with a reason."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from conftest import require_renderer
from matplotlib import colormaps

from ochmr_lit.inference.run import write_figure
from ochmr_lit.vis.draw import draw_person_boxes, line_width, place_labels
from ochmr_lit.vis.figure_people import LEFT_OUT_REASONS, figure_people
from ochmr_lit.vis.figures import (
    CENTERMAP_CMAP,
    FIGURE_PAD,
    caption_height,
    centermap_legend,
    dim_image,
    heatmap_overlay,
    person_colors,
    render_people,
    side_view,
)
from ochmr_lit.vis.paper_figure import FIGURE_PANELS, paper_figure

WIDTH, HEIGHT, FOCAL = 320, 240, 400.0
PRINCIPAL = (WIDTH / 2.0, HEIGHT / 2.0)
#: (12, 3) triangles of a cuboid whose 8 corners are ordered as in :func:`_cuboid`.
CUBOID_FACES = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1], [2, 3, 7], [2, 7, 6],
                         [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])



def _cuboid(centre: tuple[float, float, float], size: tuple[float, float, float] = (0.5, 1.7, 0.3)) -> np.ndarray:
    """(8, 3) camera-frame metres: corners of an axis-aligned person-sized box, corner i = (i & 4, i & 2, i & 1)."""
    half = np.asarray(size) / 2.0
    signs = np.array([[(i >> 2) & 1, (i >> 1) & 1, i & 1] for i in range(8)]) * 2.0 - 1.0
    return np.asarray(centre) + signs * half


def _projected_box(vertices: np.ndarray) -> np.ndarray:
    """(4,) xywh px of the image camera's projection of (V, 3) vertices."""
    uv = FOCAL * vertices[:, :2] / vertices[:, 2:] + np.asarray(PRINCIPAL)
    lo, hi = uv.min(0), uv.max(0)
    return np.r_[lo, hi - lo]


def _grey_image() -> np.ndarray:
    """(H, W, 3) uint8 grey ramp: no pixel has a person's colour."""
    ramp = np.linspace(60, 200, WIDTH).astype(np.uint8)
    return np.repeat(np.tile(ramp, (HEIGHT, 1))[..., None], 3, axis=-1)


@pytest.fixture
def crowd() -> SimpleNamespace:
    """Two near people, two far ones with 11-13 px wide boxes, one behind the camera and one with a broken box."""
    vertices = np.stack([_cuboid((-1.2, 0.0, 5.0)), _cuboid((1.0, 0.2, 7.0)), _cuboid((-0.5, -0.5, 16.0)),
                         _cuboid((0.3, -0.6, 18.0)), _cuboid((0.0, 0.0, -3.0)), _cuboid((2.0, 0.0, 9.0))])
    boxes = np.array([_projected_box(v) if v[:, 2].min() > 0 else [10.0, 10.0, 30.0, 60.0] for v in vertices])
    boxes[5] = [150.0, 100.0, np.nan, 40.0]
    return SimpleNamespace(image=_grey_image(), vertices=vertices, boxes=boxes)


def _gaussian(centre: tuple[float, float], sigma: float, peak: float) -> np.ndarray:
    yy, xx = np.mgrid[:HEIGHT, :WIDTH]
    heat = peak * np.exp(-((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / (2 * sigma**2))
    heat[heat < 1e-3 * peak] = 0.0
    return heat.astype(np.float32)


# -- the centermap panel -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("peak", [1.0, 0.05])
def test_centermap_panel_shows_the_map_where_it_is_high_and_the_dimmed_image_where_it_is_zero(peak):
    """A weak map (peak 0.05, which a fixed 0..1 scale blended away) is as visible as a strong one."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    heat = _gaussian((100.0, 80.0), 12.0, peak)
    panel = heatmap_overlay(image, heat)
    base = dim_image(image)
    zero, high = heat == 0, heat >= 0.5 * peak
    assert zero.sum() > 0.8 * heat.size and high.sum() > 50
    np.testing.assert_array_equal(panel[zero], base[zero])  # no map: the dimmed image, untouched
    assert base.mean() < 0.5 * image.mean()  # dimmed, so that the colours stand out
    diff_base = np.abs(panel.astype(int) - base.astype(int)).sum(-1)
    diff_plain = np.abs(panel.astype(int) - image.astype(int)).sum(-1)
    assert diff_base[high].mean() > 120 and diff_plain[high].mean() > 120
    # the peak has the colormap's top colour (dark red), nearly opaque
    top = np.asarray(colormaps[CENTERMAP_CMAP](1.0)[:3]) * 255
    y, x = np.unravel_index(np.argmax(heat), heat.shape)
    assert np.abs(panel[y, x].astype(float) - top).max() < 0.2 * 255


def test_centermap_legend_is_a_colour_bar_from_zero_to_the_maximum():
    strip, bar = centermap_legend(WIDTH, (WIDTH, HEIGHT), 0.37)
    assert strip.shape == (caption_height((WIDTH, HEIGHT)), WIDTH, 3) and bar is not None
    x0, y0, x1, y1 = bar
    assert x1 - x0 > 0.5 * WIDTH and y1 - y0 >= 8
    expected = np.rint(colormaps[CENTERMAP_CMAP](np.linspace(0, 1, x1 - x0))[:, :3] * 255)
    for row in strip[y0:y1, x0:x1]:
        np.testing.assert_array_equal(row, expected)
    # the range's ends are written on both sides of the bar: dark text left of it ("0") and right of it (0.37)
    dark = strip.max(axis=-1) < 100
    assert dark[y0:y1, :x0].sum() > 5 and dark[y0:y1, x1:].sum() > 15
    # no bar (and no invented range) for a model without centermaps or a map that is 0 everywhere
    for vmax in (None, 0.0):
        strip, bar = centermap_legend(WIDTH, (WIDTH, HEIGHT), vmax)
        assert bar is None and (strip.max(axis=-1) < 100).sum() > 20  # the caption says why


def test_figure_carries_the_colour_bar_under_the_centermap_panel(crowd):
    require_renderer()
    crop = 64
    centres = crowd.boxes[:4, :2] + crowd.boxes[:4, 2:] / 2
    sides = crowd.boxes[:4, 2:].max(1) * 1.2
    affines = np.stack([[[crop / s, 0, crop / 2 - crop / s * c[0]], [0, crop / s, crop / 2 - crop / s * c[1]]]
                        for c, s in zip(centres, sides, strict=True)])
    maps = np.zeros((4, 16, 16), np.float32)
    maps[:, 7:9, 7:9] = 0.3  # each crop's centre
    figure, panels = paper_figure(crowd.image, crowd.boxes[:4], crowd.vertices[:4], CUBOID_FACES, FOCAL, PRINCIPAL,
                                  global_maps=maps, crop_affine=affines, crop_size=crop)
    captions = caption_height((WIDTH, HEIGHT))
    assert figure.shape == (HEIGHT + captions + 3 * FIGURE_PAD, len(FIGURE_PANELS) * (WIDTH + FIGURE_PAD) + FIGURE_PAD,
                            3)
    k = FIGURE_PANELS.index("centermap")
    x, y = FIGURE_PAD + k * (WIDTH + FIGURE_PAD), HEIGHT + 2 * FIGURE_PAD
    strip, bar = centermap_legend(WIDTH, (WIDTH, HEIGHT), 0.3)
    np.testing.assert_array_equal(figure[y:y + captions, x:x + WIDTH], strip)
    np.testing.assert_array_equal(figure[FIGURE_PAD:FIGURE_PAD + HEIGHT, x:x + WIDTH], panels["centermap"])
    # the map is visible at the body centres and the rest of the panel is the dimmed image
    base = dim_image(crowd.image).astype(int)
    changed = np.abs(panels["centermap"].astype(int) - base).sum(-1) > 60
    for cx, cy in centres:
        assert changed[int(round(cy)), int(round(cx))]
    assert changed.mean() < 0.2
    # a map that is 0 everywhere: the dimmed image, and the caption says so (no colour bar)
    _, zero_panels = paper_figure(crowd.image, crowd.boxes[:4], crowd.vertices[:4], CUBOID_FACES, FOCAL, PRINCIPAL,
                                  global_maps=np.zeros_like(maps), crop_affine=affines, crop_size=crop)
    np.testing.assert_array_equal(zero_panels["centermap"], dim_image(crowd.image))


# -- who is drawn --------------------------------------------------------------------------------------------------
def test_figure_people_keeps_tiny_boxes_and_names_every_reason():
    near = _cuboid((0.0, 0.0, 5.0))
    cases = {
        "tiny": (_projected_box(_cuboid((0.0, 0.0, 30.0))), _cuboid((0.0, 0.0, 30.0))),
        "invalid_box": (np.array([10.0, 10.0, 0.0, 20.0]), near),
        "box_outside_image": (np.array([WIDTH + 5.0, 10.0, 20.0, 20.0]), near),
        "invalid_mesh": (np.array([10.0, 10.0, 20.0, 20.0]), np.where(np.arange(8)[:, None] == 3, np.nan, near)),
        "behind_camera": (np.array([10.0, 10.0, 20.0, 20.0]), _cuboid((0.0, 0.0, 0.5), (0.5, 1.7, 1.5))),
        "outside_image": (np.array([10.0, 10.0, 20.0, 20.0]), _cuboid((40.0, 0.0, 5.0))),
        "beyond_far_plane": (np.array([150.0, 110.0, 2.0, 3.0]), _cuboid((0.0, 0.0, 1200.0))),
    }
    boxes = np.stack([_projected_box(near)] + [box for box, _ in cases.values()])
    vertices = np.stack([near] + [v for _, v in cases.values()])
    assert boxes[1, 2] < 13  # the tiny person's box is a few pixels wide
    people = figure_people(boxes, vertices, FOCAL, PRINCIPAL, (WIDTH, HEIGHT))
    np.testing.assert_array_equal(people.drawn, [0, 1])
    assert people.left_out == {k + 2: why for k, why in enumerate(list(cases)[1:])}
    assert set(people.left_out.values()) == set(LEFT_OUT_REASONS)
    assert people.counts() == dict.fromkeys(sorted(LEFT_OUT_REASONS), 1)
    with pytest.raises(ValueError, match="one of each per person"):
        figure_people(boxes[:3], vertices, FOCAL, PRINCIPAL, (WIDTH, HEIGHT))


def _colour_pixels(panel: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    return np.all(panel == np.asarray(colour, np.uint8), axis=-1)


def test_every_panel_shows_the_same_people_tiny_boxes_included(crowd):
    require_renderer()
    size = (WIDTH, HEIGHT)
    people = figure_people(crowd.boxes, crowd.vertices, FOCAL, PRINCIPAL, size)
    np.testing.assert_array_equal(people.drawn, [0, 1, 2, 3])
    assert people.left_out == {4: "behind_camera", 5: "invalid_box"}
    assert all(11 <= w <= 13 for w in crowd.boxes[2:4, 2])  # the boxes the issue lost
    figure, panels = paper_figure(crowd.image, crowd.boxes, crowd.vertices, CUBOID_FACES, FOCAL, PRINCIPAL)
    colours = [tuple(int(round(255 * c)) for c in rgb) for rgb in person_colors(len(crowd.boxes))]

    # boxes: each drawn person's box is a ring in its colour along the whole outline, however small
    thickness = line_width(size)
    boxes_drawn = []
    for k, (x, y, w, h) in enumerate(crowd.boxes):
        mine = _colour_pixels(panels["image"], colours[k])
        if k not in people.drawn:
            assert not mine.any()
            continue
        left, top = int(round(x)), int(round(y))
        right, bottom = int(round(x + w)) - 1, int(round(y + h)) - 1
        ring = mine[top - 1:bottom + 2, left - 1:right + 2]
        sides = [ring[:, :thickness + 1], ring[:, -thickness - 1:], ring[:thickness + 1], ring[-thickness - 1:]]
        assert all(side.sum() >= 0.8 * max(side.shape) for side in sides), k
        boxes_drawn.append(k)

    # meshes and side view: the same people, each visible, and each labelled in its colour in both panels
    drawn = people.drawn
    render = render_people(crowd.image, crowd.vertices[drawn], CUBOID_FACES, FOCAL, PRINCIPAL,
                           colors=person_colors(len(crowd.boxes))[drawn])
    side = side_view(crowd.vertices[drawn], CUBOID_FACES, size, colors=person_colors(len(crowd.boxes))[drawn])
    meshes_drawn = [int(drawn[i]) for i in np.unique(render.instance) if i >= 0]
    side_drawn = [int(drawn[i]) for i in np.unique(side.instance) if i >= 0]
    assert boxes_drawn == meshes_drawn == side_drawn == drawn.tolist()
    assert min(np.bincount(render.instance[render.instance >= 0])) >= 20  # tiny people are still a blob
    for name in ("meshes", "side"):
        labelled = [k for k in range(len(crowd.boxes)) if _colour_pixels(panels[name], colours[k]).sum() >= 30]
        assert labelled == drawn.tolist(), name
    # the people left out are in no panel
    for name in FIGURE_PANELS:
        assert not any(_colour_pixels(panels[name], colours[k]).any() for k in people.left_out), name


def test_labels_stay_inside_the_image_and_apart():
    anchors = np.array([[50.0, 40.0], [52.0, 41.0], [55.0, 39.0], [0.0, 0.0], [WIDTH + 30.0, HEIGHT + 30.0]])
    sizes = np.array([[14, 12]] * 5)
    corners = place_labels(anchors, sizes, (WIDTH, HEIGHT))
    rects = np.c_[corners, corners + sizes]
    assert np.all(rects[:, :2] >= 0) and np.all(rects[:, 2] <= WIDTH) and np.all(rects[:, 3] <= HEIGHT)
    for i in range(len(rects)):
        for j in range(i):
            a, b = rects[i], rects[j]
            assert a[0] >= b[2] or b[0] >= a[2] or a[1] >= b[3] or b[1] >= a[3], (i, j)
    # the first label sits right on its anchor
    np.testing.assert_array_equal(rects[0, [1, 3]], [40 - 12, 40])


def test_box_lines_grow_with_the_image_and_show_on_white():
    assert line_width((320, 240)) == 2 and line_width((1920, 1080)) == 6
    white = np.full((60, 80, 3), 255, np.uint8)
    out = draw_person_boxes(white, np.array([[30.0, 20.0, 11.0, 13.0]]), [(255, 127, 14)], ["0"])
    assert _colour_pixels(out, (255, 127, 14)).sum() >= 2 * (11 + 13)
    assert (out.max(axis=-1) < 60).sum() >= 2 * (11 + 13)  # a dark outline around it


# -- predict's figure writer ---------------------------------------------------------------------------------------
def test_write_figure_reports_the_people_it_left_out(crowd, tmp_path):
    require_renderer()
    translation = np.zeros((len(crowd.boxes), 3))
    pred = SimpleNamespace(
        boxes=SimpleNamespace(boxes=crowd.boxes, image_path=Path("crowd.jpg")), image=crowd.image,
        vertices=crowd.vertices, translation=translation, focal_length=FOCAL, principal_point=np.array(PRINCIPAL),
        image_size=(WIDTH, HEIGHT), context=None, crop_affine=np.zeros((len(crowd.boxes), 2, 3)), crop_size=64)
    path, left_out = write_figure(pred, tmp_path / "crowd.png", CUBOID_FACES)
    assert left_out == {4: "behind_camera", 5: "invalid_box"}
    assert Counter(left_out.values()) == Counter({"behind_camera": 1, "invalid_box": 1})
    written = cv2.imread(str(path))
    assert written.shape[:2] == (HEIGHT + caption_height((WIDTH, HEIGHT)) + 3 * FIGURE_PAD,
                                 len(FIGURE_PANELS) * (WIDTH + FIGURE_PAD) + FIGURE_PAD)
