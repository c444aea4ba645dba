"""Headless renderer (EGL) and drawing: pixel rule, linear depth, compositing, shading, silhouettes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import REAL_GET_CONTEXT, require_renderer

from ochmr_lit.vis import render as render_module
from ochmr_lit.vis.draw import COCO17_SKELETON, VISIBILITY_COLORS, draw_keypoints, image_grid, overlay_mask
from ochmr_lit.vis.render import (
    Mesh,
    MeshRenderer,
    RendererUnavailableError,
    projection_matrix,
    vertex_normals,
)

W, H = 64, 48
# fx != fy and an off-centre principal point, so a swapped axis or a half-pixel shift shows.
K = np.array([[100.0, 0.0, 30.3], [0.0, 90.0, 22.6], [0.0, 0.0, 1.0]])
QUAD_FACES = np.array([[0, 1, 2], [0, 2, 3]])


def quad(x0: float, x1: float, y0: float, y1: float, z0: float, z1: float | None = None) -> np.ndarray:
    """Rectangle [x0, x1] x [y0, y1]; depth z0 at x0 and z1 at x1 (tilted about y when they differ)."""
    z1 = z0 if z1 is None else z1
    return np.array([[x0, y0, z0], [x1, y0, z1], [x1, y1, z1], [x0, y1, z0]], dtype=np.float64)


def pixel_grid() -> tuple[np.ndarray, np.ndarray]:
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    return u, v


@pytest.fixture(scope="module")
def renderer() -> MeshRenderer:
    require_renderer()
    return MeshRenderer(W, H)


def test_coverage_follows_pixel_centres(renderer: MeshRenderer) -> None:
    # A fronto-parallel rectangle at z = 2 covers exactly the pixels whose centres back-project into it.
    x0, x1, y0, y1, z = -0.213, 0.171, -0.157, 0.303, 2.0
    res = renderer.render([Mesh(quad(x0, x1, y0, y1, z), QUAD_FACES, (1.0, 0.0, 0.0))], K)
    u, v = pixel_grid()
    x = (u - K[0, 2]) * z / K[0, 0]
    y = (v - K[1, 2]) * z / K[1, 1]
    expected = (x > x0) & (x < x1) & (y > y0) & (y < y1)
    # By hand: u = 50 x + 30.3 spans (19.65, 38.85) -> columns 20..38; v = 45 y + 22.6 spans
    # (15.535, 36.235) -> rows 16..36; 19 x 21 pixels.
    assert expected.sum() == 19 * 21
    np.testing.assert_array_equal(res.instance == 0, expected)
    np.testing.assert_array_equal(res.instance[~expected], -1)
    assert res.instance.dtype == np.int16 and res.depth.dtype == np.float32
    assert np.all(np.isinf(res.depth[~expected]))
    assert np.all(res.image[~expected] == 0)


def test_depth_is_linear_camera_z_in_metres(renderer: MeshRenderer) -> None:
    # Plane tilted about y: z = 2 + 1.5 (x + 0.3) for x in [-0.3, 0.3], i.e. depth from 2.0 to 2.9 m.
    verts = quad(-0.3, 0.3, -0.2, 0.2, 2.0, 2.9)
    res = renderer.render([Mesh(verts, QUAD_FACES)], K)
    u, v = pixel_grid()
    covered = res.instance == 0
    assert covered.sum() > 300
    # Ray (a, b, 1) * z meets the plane z = 2 + 1.5 (a z + 0.3)  =>  z = 2.45 / (1 - 1.5 a).
    a = (u - K[0, 2]) / K[0, 0]
    z_true = 2.45 / (1.0 - 1.5 * a)
    np.testing.assert_allclose(res.depth[covered], z_true[covered], rtol=2e-5)
    assert res.depth[covered].min() > 2.0 and res.depth[covered].max() < 2.9


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_nearer_mesh_wins_whatever_the_order(renderer: MeshRenderer, order: tuple[int, int]) -> None:
    far = Mesh(quad(-0.4, 0.2, -0.2, 0.2, 3.0), QUAD_FACES, (0.0, 0.0, 1.0))
    near = Mesh(quad(-0.1, 0.4, -0.1, 0.3, 2.0), QUAD_FACES, (0.0, 1.0, 0.0))
    meshes = [far, near]
    res = renderer.render([meshes[i] for i in order], K)
    near_id = order.index(1)
    u, v = pixel_grid()
    x, y = (u - K[0, 2]) * 2.0 / K[0, 0], (v - K[1, 2]) * 2.0 / K[1, 1]
    near_mask = (x > -0.1) & (x < 0.4) & (y > -0.1) & (y < 0.3)
    np.testing.assert_array_equal(res.instance == near_id, near_mask)
    np.testing.assert_allclose(res.depth[near_mask], 2.0, atol=1e-5)
    assert np.all(res.image[near_mask][:, 1] > 0) and np.all(res.image[near_mask][:, 2] == 0)
    assert ((res.instance == 1 - near_id).sum()) > 100
    np.testing.assert_allclose(res.depth[res.instance == 1 - near_id], 3.0, atol=1e-5)


def test_lambert_plus_ambient_with_light_at_camera(renderer: MeshRenderer) -> None:
    color = np.array([0.8, 0.5, 0.2])
    facing = Mesh(quad(-0.5, -0.05, -0.2, 0.2, 2.0), QUAD_FACES, color)
    # Turned 60 degrees about y: the normal makes 60 degrees with the light direction (-z).
    c, s = np.cos(np.pi / 3), np.sin(np.pi / 3)
    turned_verts = quad(0.05, 0.05 + 0.3 * c, -0.2, 0.2, 2.0, 2.0 + 0.3 * s)
    turned = Mesh(turned_verts, QUAD_FACES, color)
    res = renderer.render([facing, turned], K, ambient=0.3, diffuse=0.6)
    lit_facing = np.rint(255 * color * (0.3 + 0.6 * 1.0))
    lit_turned = np.rint(255 * color * (0.3 + 0.6 * 0.5))
    assert np.abs(res.image[res.instance == 0].astype(float) - lit_facing).max() <= 1.0
    assert np.abs(res.image[res.instance == 1].astype(float) - lit_turned).max() <= 1.0


def test_alpha_blend_and_background(renderer: MeshRenderer) -> None:
    rng = np.random.default_rng(0)
    background = rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)
    mesh = Mesh(quad(-0.2, 0.2, -0.2, 0.2, 2.0), QUAD_FACES, (1.0, 1.0, 1.0), alpha=0.25)
    res = renderer.render([mesh], K, background=background, ambient=1.0, diffuse=0.0)
    covered = res.instance == 0
    expected = np.rint(0.25 * 255 + 0.75 * background[covered].astype(float))
    np.testing.assert_array_equal(res.image[covered], expected.astype(np.uint8))
    np.testing.assert_array_equal(res.image[~covered], background[~covered])


def test_silhouettes_equal_solo_renders_beyond_one_pass(renderer: MeshRenderer) -> None:
    # Ten overlapping quads at growing depth: more than one silhouette pass (8 per pass).
    meshes = [
        Mesh(
            quad(-0.35 + 0.06 * k, -0.05 + 0.06 * k, -0.2 + 0.02 * k, 0.15 + 0.02 * k, 2.0 + 0.1 * k),
            QUAD_FACES,
        )
        for k in range(10)
    ]
    sil = renderer.silhouettes(meshes, K)
    assert sil.shape == (10, H, W)
    full = renderer.render(meshes, K)
    for k, mesh in enumerate(meshes):
        alone = renderer.render([mesh], K).instance == 0
        np.testing.assert_array_equal(sil[k], alone)
        # The full render shows each mesh only where nothing nearer covers it.
        assert np.all(sil[k][full.instance == k])
    assert (full.instance == 9).sum() < sil[9].sum()


def test_projection_matrix_maps_pixel_centres_to_ndc() -> None:
    P = projection_matrix(K, W, H)
    point = np.array([0.1, -0.05, 2.5, 1.0])
    clip = P @ point
    ndc = clip[:3] / clip[3]
    u = K[0, 0] * point[0] / point[2] + K[0, 2]
    v = K[1, 1] * point[1] / point[2] + K[1, 2]
    np.testing.assert_allclose(ndc[:2], [2 * (u + 0.5) / W - 1, 2 * (v + 0.5) / H - 1], atol=1e-12)
    for z, expected in ((render_module.Z_NEAR, -1.0), (render_module.Z_FAR, 1.0)):
        clip = P @ np.array([0.0, 0.0, z, 1.0])
        assert clip[2] / clip[3] == pytest.approx(expected, abs=1e-9)


def test_vertex_normals_of_a_closed_box_point_outwards() -> None:
    corners = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], dtype=np.float64)
    faces = np.array(
        [
            [0, 1, 3],
            [0, 3, 2],
            [4, 6, 7],
            [4, 7, 5],
            [0, 4, 5],
            [0, 5, 1],
            [2, 3, 7],
            [2, 7, 6],
            [0, 2, 6],
            [0, 6, 4],
            [1, 5, 7],
            [1, 7, 3],
        ]
    )
    normals = vertex_normals(corners, faces)
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-6)
    outward = (corners - 0.5) / np.linalg.norm(corners - 0.5, axis=1, keepdims=True)
    # Each corner touches faces of three sides; the area-weighted sum points out of the box.
    assert np.all(np.abs((normals * outward).sum(axis=1)) > 0.9)


def test_bad_inputs_name_the_argument(renderer: MeshRenderer) -> None:
    mesh = Mesh(quad(-0.2, 0.2, -0.2, 0.2, 2.0), QUAD_FACES)
    with pytest.raises(ValueError, match="background"):
        renderer.render([mesh], K, background=np.zeros((H, W), np.uint8))
    with pytest.raises(ValueError, match=r"meshes\[0\].faces"):
        renderer.render([Mesh(quad(-0.2, 0.2, -0.2, 0.2, 2.0), np.array([[0, 1, 7]]))], K)
    with pytest.raises(ValueError, match="intrinsics"):
        renderer.render([mesh], np.eye(4))


def test_missing_egl_gives_an_actionable_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import moderngl

    def no_egl(*args, **kwargs):
        raise Exception("eglGetDisplay failed")

    monkeypatch.setattr(render_module, "_CONTEXT", None)
    monkeypatch.setattr(render_module, "get_context", REAL_GET_CONTEXT)
    monkeypatch.setattr(moderngl, "create_standalone_context", no_egl)
    with pytest.raises(RendererUnavailableError, match="libegl1"):
        MeshRenderer(8, 8).render([Mesh(quad(-0.2, 0.2, -0.2, 0.2, 2.0), QUAD_FACES)], np.eye(3))


# -- drawing -------------------------------------------------------------------------------------------


def test_coco_skeleton_matches_the_official_category(fixtures_dir) -> None:
    category = json.loads((fixtures_dir / "coco" / "test_coco.json").read_text())["categories"][0]
    assert [[a + 1, b + 1] for a, b in COCO17_SKELETON] == category["skeleton"]


def test_draw_keypoints_colours_by_visibility_at_the_keypoint_pixel() -> None:
    image = np.zeros((40, 50, 3), np.uint8)
    kp = np.array([[10.0, 12.0], [30.0, 25.0], [44.0, 5.0]])
    out = draw_keypoints(image, kp, visibility=np.array([1, 3, 0]), skeleton=[(0, 1), (1, 2)], radius=2)
    assert tuple(out[12, 10]) == VISIBILITY_COLORS[1]
    assert tuple(out[25, 30]) == VISIBILITY_COLORS[3]
    assert out[5, 44].max() == 0  # code 0 is not drawn, nor its bone
    assert out[18, 20].max() > 0  # the bone 0-1 passes through (20, 18.5)
    assert image.max() == 0  # the input is not modified


def test_image_grid_places_cells_row_by_row() -> None:
    images = [np.full((10, 12, 3), 10 * (k + 1), np.uint8) for k in range(5)]
    grid = image_grid(images, ncols=3, pad=2, pad_value=255)
    assert grid.shape == (2 * 12 + 2, 3 * 14 + 2, 3)
    assert grid[2, 2, 0] == 10 and grid[2 + 12, 2 + 14, 0] == 50
    assert grid[2 + 12, 2 + 2 * 14, 0] == 255  # the empty sixth cell keeps the padding value
    masked = overlay_mask(images[0], np.eye(10, 12, dtype=bool), color=(255, 0, 0), alpha=0.5)
    assert tuple(masked[3, 3]) == (132, 5, 5) and tuple(masked[3, 4]) == (10, 10, 10)
