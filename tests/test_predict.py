"""Prediction on real images: the full-image camera, figures and result files (box sources: test_predict_boxes)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from conftest import require_renderer

from ochmr_lit.data.centermaps import render_centermaps
from ochmr_lit.data.transforms import BadSampleError
from ochmr_lit.geometry import (
    apply_affine,
    axis_angle_to_rotmat,
    box_to_center_size,
    crop_affine,
    invert_affine,
    perspective_projection,
    weak_perspective_to_translation,
)
from ochmr_lit.inference.boxes import load_json_boxes
from ochmr_lit.inference.camera import crop_focal_length, crop_geometry, crop_points_to_image, crop_to_image_camera
from ochmr_lit.inference.inputs import list_images
from ochmr_lit.inference.writers import write_meshes, write_obj, write_ply
from ochmr_lit.vis.figures import FIGURE_PAD, centermaps_to_image, render_people, side_view
from ochmr_lit.vis.render import Mesh, MeshRenderer


def _enlarged_box_mask(uv: np.ndarray, box: np.ndarray, factor: float = 1.2) -> np.ndarray:
    """Which points (N, 2) px lie in the xywh box enlarged by ``factor`` about its centre."""
    x, y, w, h = box
    cx, cy = x + w / 2.0, y + h / 2.0
    return (np.abs(uv[:, 0] - cx) <= factor * w / 2.0) & (np.abs(uv[:, 1] - cy) <= factor * h / 2.0)


# -- full-image camera ---------------------------------------------------------------------------------------------
def test_image_camera_reproduces_the_crop_projection():
    """The body origin lands exactly where the crop camera puts it; with the image focal length that gives the
    image the crop's field of view per pixel (``f * max(W, H) / S``), other points within 1 % of the crop side."""
    gen = torch.Generator().manual_seed(0)
    crop, f, width, height = 224, 5000.0, 900, 640
    boxes = torch.tensor([[100.0, 50.0, 200.0, 500.0], [600.0, 300.0, 150.0, 200.0], [10.0, 10.0, 80.0, 60.0]],
                         dtype=torch.float64)
    center, side = box_to_center_size(boxes, 1.2)
    affine = crop_affine(center, side, crop)
    cam = torch.stack([torch.tensor([0.6, 0.9, 1.2]), torch.randn(3, generator=gen) * 0.2,
                       torch.randn(3, generator=gen) * 0.2], dim=1).double()
    points = torch.cat([torch.zeros(3, 1, 3), (torch.rand(3, 200, 3, generator=gen) - 0.5).double() * 1.8], dim=1)
    points[..., 2] *= 0.3  # a body's depth extent

    F, principal, transl = crop_to_image_camera(cam, affine, (width, height), crop,
                                                focal_length=f * max(width, height) / crop)
    assert F == pytest.approx(f * max(width, height) / crop)
    assert principal.tolist() == [width / 2.0, height / 2.0]
    in_image = perspective_projection(points, transl, F, principal.expand(3, 2))
    cam_t = weak_perspective_to_translation(cam, f, crop)
    in_crop = perspective_projection(points, cam_t, f, torch.full((3, 2), crop / 2.0, dtype=torch.float64))
    via_crop = apply_affine(invert_affine(affine), in_crop)
    assert torch.allclose(in_image[:, 0], via_crop[:, 0], atol=1e-8)  # the origin: exact
    # in the plane z = 0 of the body exactly (both cameras are affine there) ...
    flat = points.clone()
    flat[..., 2] = 0.0
    in_image_flat = perspective_projection(flat, transl, F, principal.expand(3, 2))
    in_crop_flat = perspective_projection(flat, cam_t, f, torch.full((3, 2), crop / 2.0, dtype=torch.float64))
    assert torch.allclose(in_image_flat, apply_affine(invert_affine(affine), in_crop_flat), atol=1e-7)
    # ... and elsewhere up to the two cameras' different perspective: under 1 % of the crop side
    error = (in_image - via_crop).norm(dim=-1).amax(dim=1)
    assert bool((error > 0).all()) and bool((error < 0.01 * side).all()), (error / side).tolist()
    # scale: one metre at the origin spans s * side / 2 image px in both cameras
    assert torch.allclose(F / transl[:, 2], cam[:, 0] * side / 2.0, rtol=1e-9)


def test_crop_geometry_inverts_the_crop_affine_and_refuses_rotations():
    center, size = np.array([[320.5, 211.0]]), np.array([333.0])
    c, s = crop_geometry(torch.as_tensor(crop_affine(center, size, 96)), 96)
    assert np.allclose(c.numpy(), center) and np.allclose(s.numpy(), size)
    with pytest.raises(ValueError, match="scale and shift only"):
        crop_geometry(torch.as_tensor(crop_affine(center, size, 96, rotation_deg=10.0)), 96)


# -- figures and files ---------------------------------------------------------------------------------------------
def test_centermaps_warped_back_peak_at_the_body_centres(fixtures_dir):
    """GT global centermaps of each crop, mapped back into the image, peak at the annotated body centres."""
    folder = fixtures_dir / "ochuman"
    items, _ = load_json_boxes(folder / "test_ochuman.json", list_images(folder))
    item = max(items, key=len)
    width, height = 602, 900
    crop, size = 64, 16
    maps, affines = [], []
    for k in range(len(item)):
        center, side = box_to_center_size(item.boxes[k], 1.2)
        affine = crop_affine(center, side, crop)
        maps.append(render_centermaps(item.centers[k], item.centers[k:k + 1], affine, crop, size)[1].numpy())
        affines.append(affine)
    heat = centermaps_to_image(np.stack(maps), np.stack(affines), crop, (width, height))
    assert heat.shape == (height, width) and heat.max() <= 1.0 + 1e-6
    for k in range(len(item)):
        _, side = box_to_center_size(item.boxes[k], 1.2)
        one = centermaps_to_image(np.stack(maps[k:k + 1]), np.stack(affines[k:k + 1]), crop, (width, height))
        peak = np.array(np.unravel_index(np.argmax(one), one.shape)[::-1], np.float64)
        assert np.linalg.norm(peak - item.centers[k]) <= side / size  # within one map pixel
        assert one.max() > 0.9
        x0, y0 = np.floor(apply_affine(invert_affine(affines[k]), np.array([[0.0, 0.0]]))[0]).astype(int)
        if x0 > 1:
            assert np.all(one[:, : x0 - 1] == 0)  # nothing left of the crop


def test_scene_scaling_renders_like_the_plain_render():
    """Rendering after scaling the scene to a near depth gives the same coverage as rendering it where it is."""
    require_renderer()
    from ochmr_lit.body import BodyModel

    body = BodyModel(None)
    with torch.no_grad():
        verts = body(torch.eye(3).expand(2, 24, 3, 3), torch.zeros(2, 10)).vertices.numpy()
    faces = body.faces.numpy()
    placed = verts + np.array([[[-0.4, 0.0, 12.0]], [[0.5, 0.2, 14.0]]])
    image = np.zeros((96, 128, 3), np.uint8)
    mine = render_people(image, placed, faces, 400.0, (64.0, 48.0))
    K = np.array([[400.0, 0, 64.0], [0, 400.0, 48.0], [0, 0, 1]])
    plain = MeshRenderer(128, 96).render([Mesh(v, faces) for v in placed], K)
    assert (mine.instance == plain.instance).mean() > 0.995
    both = (mine.instance >= 0) & (plain.instance >= 0)
    np.testing.assert_allclose(mine.depth[both], plain.depth[both], rtol=1e-3)
    assert set(np.unique(mine.instance)) == {-1, 0, 1}

    # side view: nearer people to the right; bodies 40 m apart in depth stay visible (enlarged in place)
    apart = verts + np.array([[[0.0, 0.0, 10.0]], [[0.0, 0.0, 50.0]]])
    side = side_view(apart, faces, (128, 96))
    columns = [np.nonzero(side.instance == k)[1] for k in (0, 1)]
    assert min(len(c) for c in columns) > 30
    assert columns[0].mean() > columns[1].mean() + 40


def test_obj_round_trip(tmp_path):
    gen = np.random.default_rng(0)
    vertices, faces = gen.normal(size=(30, 3)), gen.integers(0, 30, size=(20, 3))
    path = write_obj(tmp_path / "m.obj", vertices, faces)
    lines = path.read_text().splitlines()
    v = np.array([[float(x) for x in ln.split()[1:]] for ln in lines if ln.startswith("v ")])
    f = np.array([[int(x) for x in ln.split()[1:]] for ln in lines if ln.startswith("f ")])
    np.testing.assert_allclose(v, vertices, atol=1e-6)
    np.testing.assert_array_equal(f - 1, faces)


# -- the pipeline on real images -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ochuman_prediction(tiny_run, fixtures_dir, tmp_path_factory):
    """``predict`` with the tiny run's checkpoint on the OCHuman fixture images and their GT boxes."""
    from hydra import compose, initialize_config_module

    from ochmr_lit.inference.run import run_predict

    _, outcome = tiny_run
    out = tmp_path_factory.mktemp("predict")
    folder = fixtures_dir / "ochuman"
    with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
        cfg = compose(config_name="predict", overrides=[
            f"ckpt_path={outcome['checkpoint']}", f"input={folder}", f"boxes={folder / 'test_ochuman.json'}",
            f"out={out}", "save_meshes=true", "batch_size=2", "device=cpu"])
    return out, run_predict(cfg), outcome["checkpoint"]


def _crop_camera_uv(npz, k: int) -> np.ndarray:
    """(V, 2) image px of person k's vertices projected by its crop camera and mapped back to the image."""
    points = torch.as_tensor(npz["vertices"][k:k + 1]).double()
    return crop_points_to_image(points, torch.as_tensor(npz["cam_t_crop"][k:k + 1]).double(),
                                float(npz["crop_focal_length"]), int(npz["crop_size"]),
                                torch.as_tensor(npz["crop_affine"][k:k + 1]).double())[0].numpy()


@pytest.mark.slow
def test_predict_writes_files_and_consistent_geometry(ochuman_prediction, fixtures_dir):
    require_renderer()
    from ochmr_lit.body import BodyModel

    out, summary, checkpoint = ochuman_prediction
    faces = BodyModel(None).faces.numpy()
    folder = fixtures_dir / "ochuman"
    gt = json.loads((folder / "test_ochuman.json").read_text())
    people = {im["file_name"]: sum(a["image_id"] == im["id"] for a in gt["annotations"]) for im in gt["images"]}
    assert summary["images"] == 3 and summary["people"] == 5 == sum(people.values())
    # the crop camera: the checkpoint's focal length, or SPIN's field of view at its crop size when it has none
    stored = torch.load(checkpoint, map_location="cpu", weights_only=True)["hyper_parameters"].get("focal_length")
    crop_focal = crop_focal_length(summary["crop"]["crop_size"], stored)
    assert summary["crop"]["focal_length"] == pytest.approx(crop_focal)
    assert summary["image_focal_length"] == "image_diagonal"
    for name, count in people.items():
        stem = Path(name).stem
        assert sorted(p.name for p in out.glob(f"{stem}*")) == sorted(
            [f"{stem}.json", f"{stem}.npz", f"{stem}.png"] + [f"{stem}_person{k}.obj" for k in range(count)])
        result = json.loads((out / f"{stem}.json").read_text())
        assert len(result["people"]) == count and (result["width"], result["height"]) == cv2.imread(
            str(folder / name)).shape[1::-1]
        F, c = result["camera"]["focal_length"], np.array(result["camera"]["principal_point"])
        # the image camera: focal length the image diagonal, principal point the image centre
        assert F == pytest.approx(np.hypot(result["width"], result["height"]))
        assert result["camera"]["focal_length_source"] == "image_diagonal"
        np.testing.assert_allclose(c, [result["width"] / 2, result["height"] / 2])
        for person in result["people"]:
            # people of a photo at photo depths (they stood 100+ m away with the crop's 5000 px scaled to the image)
            assert person["cam_t"] == person["camera"]["translation"]
            assert person["cam_crop"] == person["camera"]["crop_weak_perspective"]
            assert 1.0 <= person["cam_t"][2] <= 60.0, person["cam_t"]
            assert person["camera"]["crop_focal_length"] == pytest.approx(crop_focal)
            # the image camera's projection of the 3D keypoints lands on the written 2D keypoints: exactly at the
            # body origin, elsewhere up to the perspective the crop camera does not have
            kp3 = np.array(person["keypoints_3d"]) + np.array(person["cam_t"])
            kp2 = np.array(person["keypoints_2d"])
            side = box_to_center_size(np.array(person["box"]), 1.2)[1]
            assert np.abs(F * kp3[:, :2] / kp3[:, 2:] + c - kp2[:, :2]).max() < 0.1 * side
            np.testing.assert_allclose(kp2[:, 2], person["box_score"])

        npz = np.load(out / f"{stem}.npz")
        np.testing.assert_array_equal(npz["cam_t"], npz["translation"])
        placed = npz["vertices"].astype(np.float64) + npz["cam_t"][:, None]
        image = cv2.cvtColor(cv2.imread(str(folder / name)), cv2.COLOR_BGR2RGB)
        height, width = image.shape[:2]
        for k in range(count):
            box = npz["boxes"][k]
            uv = F * placed[k, :, :2] / placed[k, :, 2:] + c
            # the mesh is where the person is: most vertices inside the box enlarged by 20 %, most in the crop
            # the regressor saw (a one-epoch model stays near the mean pose and the training split's mean crop
            # camera, measured on visible boxes: an occluded person's body reaches past its narrow box; 89 % of
            # the tallest fixture person's vertices), and the body spans about the box height
            assert _enlarged_box_mask(uv, box).mean() >= 0.7
            center, side = box_to_center_size(box, 1.2)
            crop = np.r_[center - side / 2, side, side]
            assert _enlarged_box_mask(uv, crop, 1.0).mean() >= 0.85
            # the image camera puts every vertex where the crop camera the model predicted puts it, up to the
            # two cameras' different perspective (a few % of the crop side)
            crop_uv = _crop_camera_uv(npz, k)
            assert np.abs(uv - crop_uv).max() < 0.05 * side
            assert abs(_enlarged_box_mask(uv, crop, 1.0).mean() - _enlarged_box_mask(crop_uv, crop, 1.0).mean()) < 0.02
            assert 0.5 <= np.ptp(uv[:, 1]) / box[3] <= 1.5
            # the 2D keypoints are the crop camera's keypoints mapped back into the image
            cam_t = torch.as_tensor(npz["cam_t_crop"][k:k + 1]).double()
            crop_size = int(npz["crop_size"])
            assert crop_size == summary["crop"]["crop_size"]
            in_crop = perspective_projection(torch.as_tensor(npz["keypoints_3d"][k:k + 1]), cam_t,
                                             float(npz["crop_focal_length"]),
                                             torch.full((1, 2), crop_size / 2.0).double())
            back = apply_affine(invert_affine(npz["crop_affine"][k]), in_crop[0].numpy())
            np.testing.assert_allclose(back, npz["keypoints_2d"][k, :, :2], atol=1e-6 * side)
            # and the image camera puts the body origin where the crop camera does
            origin = F * npz["cam_t"][k, :2] / npz["cam_t"][k, 2] + c
            in_crop = perspective_projection(torch.zeros(1, 1, 3, dtype=torch.float64), cam_t,
                                             float(npz["crop_focal_length"]),
                                             torch.full((1, 2), crop_size / 2.0).double())
            np.testing.assert_allclose(apply_affine(invert_affine(npz["crop_affine"][k]), in_crop[0].numpy())[0],
                                       origin, atol=1e-6 * side)
            # the mesh file is the person in the camera frame
            obj = [ln.split()[1:] for ln in (out / f"{stem}_person{k}.obj").read_text().splitlines()
                   if ln.startswith("v ")]
            np.testing.assert_allclose(np.array(obj, np.float64), placed[k], atol=1e-5)

        # the mesh panel of the figure: mesh pixels mostly inside the people's enlarged boxes
        figure = cv2.cvtColor(cv2.imread(str(out / f"{stem}.png")), cv2.COLOR_BGR2RGB)
        x0 = FIGURE_PAD + 2 * (width + FIGURE_PAD)
        panel = figure[FIGURE_PAD:FIGURE_PAD + height, x0:x0 + width]
        rendered = render_people(image, placed, faces, F, c)
        # the panel is the depth-composited render with each person's small number label on top
        labels = np.any(panel != rendered.image, axis=-1)
        assert labels.sum() <= 0.005 * height * width * count
        changed = np.any(panel != image, axis=-1) & ~labels
        yy, xx = np.mgrid[:height, :width]
        grid = np.c_[xx.ravel(), yy.ravel()].astype(np.float64)
        inside = np.zeros(height * width, bool)
        for box in npz["boxes"]:
            inside |= _enlarged_box_mask(grid, box)
        assert changed.sum() > 0.02 * height * width
        assert (changed.ravel() & inside).sum() / changed.sum() >= 0.8
        assert np.array_equal(changed, (rendered.instance >= 0) & ~labels)
        assert set(np.unique(rendered.instance)) == set(range(-1, count))
        # each person's rendered mask lies over that person: mostly inside the own box enlarged by 20 %
        for k in range(count):
            ys, xs = np.nonzero(rendered.instance == k)
            on_box = _enlarged_box_mask(np.c_[xs, ys].astype(np.float64), npz["boxes"][k])
            assert len(xs) >= 50 and on_box.mean() >= 0.6, (stem, k, len(xs), on_box.mean())


@pytest.mark.slow
def test_written_smpl_parameters_rebuild_the_written_keypoints(ochuman_prediction):
    """Axis-angle pose and betas from the files, through the body model, give the written 3D keypoints."""
    from ochmr_lit.body import BodyModel

    out, _, _ = ochuman_prediction
    body = BodyModel(None)
    for path in sorted(out.glob("*.json")):
        if path.name == "summary.json":
            continue
        result = json.loads(path.read_text())
        pose = torch.tensor([p["smpl"]["global_orient"] + p["smpl"]["body_pose"] for p in result["people"]],
                            dtype=torch.float64)
        betas = torch.tensor([p["smpl"]["betas"] for p in result["people"]], dtype=torch.float64)
        with torch.no_grad():
            rebuilt = body.double()(axis_angle_to_rotmat(pose.view(-1, 24, 3)), betas)
        kp3 = torch.tensor([p["keypoints_3d"] for p in result["people"]], dtype=torch.float64)
        assert torch.allclose(rebuilt.keypoints("coco17")[0], kp3, atol=1e-4)
        npz = np.load(path.with_suffix(".npz"))
        np.testing.assert_allclose(rebuilt.vertices.numpy(), npz["vertices"], atol=1e-4)


@pytest.mark.slow
def test_batching_across_images_does_not_change_predictions(tiny_run, fixtures_dir, tmp_path):
    """Batch sizes 1 and 4 give the same per-person outputs, in input order, with an image without people between."""
    from ochmr_lit.inference.pipeline import Predictor, load_regressor
    from ochmr_lit.inference.writers import prediction_to_dict

    folder = fixtures_dir / "ochuman"
    items, _ = load_json_boxes(folder / "test_ochuman.json", list_images(folder))
    empty = type(items[0])(image_path=items[1].image_path, image_id=99, boxes=np.zeros((0, 4)), scores=np.zeros(0),
                           centers=np.zeros((0, 2)), ann_ids=np.zeros(0, np.int64), source="gt")
    order = [items[0], empty, items[1], items[2]]
    module = load_regressor(tiny_run[1]["checkpoint"])
    one = list(Predictor(module, batch_size=1).predict(order))
    four = list(Predictor(module, batch_size=4).predict(order))
    assert [p.num_people for p in one] == [p.num_people for p in four] == [len(it) for it in order]
    for a, b in zip(one, four, strict=True):
        assert a.boxes is b.boxes
        np.testing.assert_allclose(a.vertices, b.vertices, atol=1e-4)
        np.testing.assert_allclose(a.keypoints_2d, b.keypoints_2d, atol=1e-2)
    assert prediction_to_dict(one[1])["people"] == [] and one[1].vertices.shape == (0, 6890, 3)


@pytest.mark.slow
def test_a_given_focal_length_moves_people_in_depth_only(tiny_run, fixtures_dir):
    """``focal_length=``: every image gets that camera; depths scale with it, x, y and 2D keypoints stay."""
    from ochmr_lit.inference.pipeline import Predictor, load_regressor

    folder = fixtures_dir / "ochuman"
    items, _ = load_json_boxes(folder / "test_ochuman.json", list_images(folder))
    module = load_regressor(tiny_run[1]["checkpoint"])
    default = list(Predictor(module, keep_context=False).predict(items))
    given = list(Predictor(module, keep_context=False, focal_length=1500.0).predict(items))
    for a, b in zip(default, given, strict=True):
        assert a.focal_length == pytest.approx(np.hypot(*a.image_size)) and a.focal_length_source == "image_diagonal"
        assert b.focal_length == 1500.0 and b.focal_length_source == "given"
        np.testing.assert_allclose(b.cam_t[:, 2], a.cam_t[:, 2] * 1500.0 / a.focal_length, rtol=1e-9)
        np.testing.assert_allclose(b.cam_t[:, :2], a.cam_t[:, :2], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(b.keypoints_2d, a.keypoints_2d, atol=1e-6)
        np.testing.assert_array_equal(b.cam_crop, a.cam_crop)
    with pytest.raises(ValueError, match="focal_length=0.0: must be a positive number of pixels"):
        Predictor(module, focal_length=0.0)


def test_predict_takes_a_focal_length_and_refuses_a_bad_one(tmp_path):
    from hydra import compose, initialize_config_module

    from ochmr_lit.inference.run import run_predict

    settings = ["ckpt_path=none.ckpt", f"input={tmp_path}", f"boxes={tmp_path / 'boxes.json'}"]
    with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
        assert compose(config_name="predict", overrides=[*settings, "out=x"]).focal_length is None
        assert compose(config_name="predict", overrides=[*settings, "out=x", "focal_length=1500"]).focal_length == 1500
        bad = [compose(config_name="predict", overrides=[*settings, f"out={tmp_path / 'out'}", f"focal_length={v}"])
               for v in ("-1", "abc")]
    for cfg in bad:
        with pytest.raises(ValueError, match=r"focal_length=(-1|abc): the image camera's focal length in pixels"):
            run_predict(cfg)
    assert not (tmp_path / "out").exists()  # refused before anything was written


# -- PLY meshes ----------------------------------------------------------------------------------------------------
PLY_HEADER = ["ply", "format binary_little_endian 1.0", "comment ochmr_lit prediction, camera frame, metres",
              "element vertex {V}", "property float x", "property float y", "property float z",
              "element face {F}", "property list uchar int vertex_indices", "end_header"]
#: The OBJ (six decimals of float64) and the PLY (float32) of one mesh differ by at most 5e-7 m plus half a float32
#: ulp, i.e. under ``6e-7 + eps * |x|`` (people of an untrained model can stand 100+ m away).
F32_EPS = float(np.finfo(np.float32).eps)


def _read_ply(path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Header lines, (V, 3) float32 vertices and (F, 3) int32 faces of a binary little-endian triangle PLY."""
    data = path.read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    header = data[:end].decode("ascii").splitlines()
    counts = {ln.split()[1]: int(ln.split()[2]) for ln in header if ln.startswith("element ")}
    n_v, n_f = counts["vertex"], counts["face"]
    vertices = np.frombuffer(data, dtype="<f4", count=3 * n_v, offset=end).reshape(n_v, 3)
    records = np.frombuffer(data, dtype=[("count", "u1"), ("indices", "<i4", (3,))], count=n_f,
                            offset=end + 12 * n_v)
    assert len(data) == end + 12 * n_v + 13 * n_f  # nothing after the faces
    assert np.all(records["count"] == 3)
    return header, vertices, records["indices"]


def _read_obj(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(V, 3) float64 vertices and (F, 3) 0-based faces of an OBJ written by ``write_obj``."""
    lines = path.read_text().splitlines()
    v = np.array([[float(x) for x in ln.split()[1:]] for ln in lines if ln.startswith("v ")])
    f = np.array([[int(x) for x in ln.split()[1:]] for ln in lines if ln.startswith("f ")])
    return v, f - 1


def test_ply_round_trip_is_exact_and_agrees_with_the_obj(tmp_path):
    """The PLY holds the float32 vertices and int faces bit for bit, behind the exact header; the OBJ of the same
    mesh agrees to its six decimals; one file per person in the camera frame; bad input is refused."""
    gen = np.random.default_rng(1)
    vertices = gen.normal(size=(50, 3)) + np.array([0.0, 0.0, 12.0])  # metres, ~12 m in front of the camera
    faces = gen.integers(0, 50, size=(40, 3))
    faces[0] = [0, 49, 7]  # both ends of the index range
    header, v, f = _read_ply(write_ply(tmp_path / "m.ply", vertices, faces))
    assert header == [ln.format(V=50, F=40) for ln in PLY_HEADER]
    assert v.dtype == np.float32 and f.dtype == np.int32
    np.testing.assert_array_equal(v, vertices.astype(np.float32))
    np.testing.assert_array_equal(f, faces)
    obj_v, obj_f = _read_obj(write_obj(tmp_path / "m.obj", vertices, faces))
    np.testing.assert_array_equal(obj_f, f)
    np.testing.assert_allclose(obj_v, v, rtol=F32_EPS, atol=6e-7)  # six decimals vs float32 rounding
    assert (tmp_path / "m.ply").stat().st_size < (tmp_path / "m.obj").stat().st_size

    # write_meshes: <stem>_person<k>.ply per person, vertices + translation (camera frame)
    pred = SimpleNamespace(num_people=2, vertices=gen.normal(size=(2, 50, 3)).astype(np.float32),
                           translation=np.array([[0.1, -0.2, 8.0], [-1.0, 0.3, 15.0]]))
    paths = write_meshes(pred, faces, tmp_path, "img", mesh_format="ply")
    assert [p.name for p in paths] == ["img_person0.ply", "img_person1.ply"]
    assert sorted(p.name for p in tmp_path.glob("img_*")) == ["img_person0.ply", "img_person1.ply"]
    for k, path in enumerate(paths):
        _, v, f = _read_ply(path)
        np.testing.assert_array_equal(v, (pred.vertices[k] + pred.translation[k]).astype(np.float32))
        np.testing.assert_array_equal(f, faces)
        assert abs(float(v[:, 2].mean()) - pred.translation[k, 2]) < 0.5
    assert write_meshes(SimpleNamespace(num_people=0, vertices=np.zeros((0, 50, 3)), translation=np.zeros((0, 3))),
                        faces, tmp_path, "empty", mesh_format="ply") == []
    with pytest.raises(ValueError, match="mesh_format='stl'"):
        write_meshes(pred, faces, tmp_path, "img", mesh_format="stl")
    with pytest.raises(ValueError, match=r"face indices must lie in \[0, 50\)"):
        write_ply(tmp_path / "bad.ply", vertices, faces + 1)
    with pytest.raises(ValueError, match=r"needs \(V, 3\) vertices"):
        write_ply(tmp_path / "bad.ply", vertices[:, :2], faces)


@pytest.mark.slow
def test_predict_writes_one_ply_per_person_equal_to_the_prediction(ochuman_prediction, fixtures_dir, tmp_path):
    """``mesh_format=ply``: one PLY per person beside the result files (no OBJ), vertices exactly the npz's camera-frame
    vertices in float32, faces the body model's, and the same meshes as the OBJ run's files."""
    from hydra import compose, initialize_config_module

    from ochmr_lit.body import BodyModel
    from ochmr_lit.inference.run import run_predict

    obj_out, obj_summary, checkpoint = ochuman_prediction
    folder = fixtures_dir / "ochuman"
    out = tmp_path / "ply"
    with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
        settings = [f"ckpt_path={checkpoint}", f"input={folder}", f"boxes={folder / 'test_ochuman.json'}",
                    "save_meshes=true", "save_figures=false", "batch_size=2", "device=cpu"]
        cfg = compose(config_name="predict", overrides=[*settings, f"out={out}", "mesh_format=ply"])
        wrong = compose(config_name="predict", overrides=[*settings, f"out={tmp_path / 'stl'}", "mesh_format=stl"])
    with pytest.raises(ValueError, match=r"mesh_format=stl; use one of obj\|ply"):
        run_predict(wrong)
    assert not (tmp_path / "stl").exists()  # refused before anything was written
    summary = run_predict(cfg)
    faces = BodyModel(None).faces.numpy()
    gt = json.loads((folder / "test_ochuman.json").read_text())
    people = {Path(im["file_name"]).stem: sum(a["image_id"] == im["id"] for a in gt["annotations"])
              for im in gt["images"]}
    assert summary["people"] == obj_summary["people"] == sum(people.values()) == 5
    meshes = sorted(p.name for p in out.glob("*.ply"))
    assert meshes == sorted(f"{stem}_person{k}.ply" for stem, n in people.items() for k in range(n))
    assert not list(out.glob("*.obj"))
    for stem, count in people.items():
        assert sorted(p.name for p in out.glob(f"{stem}*")) == sorted(
            [f"{stem}.json", f"{stem}.npz"] + [f"{stem}_person{k}.ply" for k in range(count)])
        npz = np.load(out / f"{stem}.npz")
        for k in range(count):
            header, v, f = _read_ply(out / f"{stem}_person{k}.ply")
            assert header == [ln.format(V=6890, F=len(faces)) for ln in PLY_HEADER]
            placed = npz["vertices"][k] + npz["translation"][k]
            np.testing.assert_array_equal(v, placed.astype(np.float32))
            np.testing.assert_array_equal(f, faces)
            obj_v, obj_f = _read_obj(obj_out / f"{stem}_person{k}.obj")
            np.testing.assert_array_equal(obj_f, f)
            np.testing.assert_allclose(obj_v, v, rtol=F32_EPS, atol=6e-7)


@pytest.mark.slow
def test_a_folder_with_a_corrupt_image_predicts_the_others_under_skip(tiny_run, fixtures_dir, tmp_path):
    from hydra import compose, initialize_config_module

    from ochmr_lit.inference.run import run_predict

    folder = tmp_path / "images"
    shutil.copytree(fixtures_dir / "ochuman", folder)
    broken = folder / "003799.jpg"
    broken.write_bytes(broken.read_bytes()[:5000])  # cut off before its end-of-image marker

    def predict(policy: str, out: str):
        with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
            cfg = compose(config_name="predict", overrides=[
                f"ckpt_path={tiny_run[1]['checkpoint']}", f"input={folder}", f"boxes={folder / 'test_ochuman.json'}",
                f"out={tmp_path / out}", "save_figures=false", "device=cpu", f"on_bad_sample={policy}"])
        return run_predict(cfg)

    with pytest.raises(BadSampleError, match=r"truncated.*003799.jpg.*; or predict the others with on_bad_sample=skip"):
        predict("raise", "raised")
    summary = predict("skip", "skipped")
    skipped = [(Path(s["image"]).name, s["reason"]) for s in summary["skipped_images"]]
    assert skipped == [("003799.jpg", "truncated_image")]
    written = sorted(p.name for p in (tmp_path / "skipped").glob("*.json") if p.name != "summary.json")
    assert written == ["000817.json", "003896.json"]  # the other two images, predicted
    assert json.loads((tmp_path / "skipped" / "summary.json").read_text())["skipped_images"][0]["reason"] == \
        "truncated_image"


def test_resolve_device_names_an_unknown_or_absent_device(monkeypatch):
    from ochmr_lit.errors import ConfigError
    from ochmr_lit.inference.run import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device(None) == torch.device("cpu") and resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match=r"^device=gpu: not a device; use auto, cpu, cuda or cuda:<index>$"):
        resolve_device("gpu")
    with pytest.raises(ConfigError, match=r"^device=cuda: this machine has no CUDA GPU; use device=cpu \(or auto\)$"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ConfigError, match=r"^device=cuda:2: this machine has 2 CUDA GPU\(s\), cuda:0 to cuda:1$"):
        resolve_device("cuda:2")
