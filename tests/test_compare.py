"""``python -m ochmr_lit.vis.compare``: predicted next to ground-truth meshes on SynthCrowd val images."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from conftest import REPO_ROOT, require_renderer
from pycocotools import mask as mask_utils

from ochmr_lit.vis.figures import FIGURE_PAD, person_colors, render_people
from ochmr_lit.vis.render import Mesh, MeshRenderer


def _run(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
    return subprocess.run([sys.executable, "-m", "ochmr_lit.vis.compare", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _panel(figure: np.ndarray, k: int, width: int, height: int) -> np.ndarray:
    x0 = FIGURE_PAD + k * (width + FIGURE_PAD)
    return figure[FIGURE_PAD:FIGURE_PAD + height, x0:x0 + width]


def _box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two xywh boxes."""
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


@pytest.fixture(scope="module")
def comparison(tiny_run, tmp_path_factory):
    """The command on the tiny run's checkpoint (SynthCrowd val of ``tiny_synthcrowd``, 2 images)."""
    require_renderer()
    out = tmp_path_factory.mktemp("compare")
    checkpoint = tiny_run[1]["checkpoint"]
    result = _run(f"ckpt_path={checkpoint}", "num_images=4", f"out={out}", "device=cpu")
    assert result.returncode == 0, result.stderr[-3000:]
    return out, checkpoint, result.stdout


def test_compare_writes_one_figure_per_val_image(comparison, tiny_synthcrowd):
    out, checkpoint, stdout = comparison
    summary = json.loads((out / "summary.json").read_text())
    val = json.loads((tiny_synthcrowd / "val" / "annotations.json").read_text())
    assert summary["split"] == "val" and summary["context_source"] == "predicted"
    assert f"compare: 2 images of SynthCrowd val -> {out}" in stdout
    assert [r["image_id"] for r in summary["images"]] == [im["id"] for im in val["images"]]  # 2 (< num_images=4)
    for row, info in zip(summary["images"], val["images"], strict=True):
        anns = [a for a in val["annotations"] if a["image_id"] == info["id"]]
        assert row["ann_ids"] == [a["id"] for a in anns] and row["predicted_people"] == row["gt_people"] == len(anns)
        figure = cv2.imread(str(out / row["figure"]))
        w, h = info["width"], info["height"]
        assert figure.shape == (h + 2 * FIGURE_PAD, 5 * w + 6 * FIGURE_PAD, 3)
    assert sorted(p.name for p in out.iterdir()) == sorted([r["figure"] for r in summary["images"]] + ["summary.json"])


def test_ground_truth_panel_is_the_annotated_people(comparison, tiny_synthcrowd):
    """GT meshes rebuilt here from the annotations: they reproduce the annotated 3D joints, the panel equals their
    render, and each person's rendered mask is that person's annotated (visible) segmentation."""
    from ochmr_lit.body import BodyModel
    from ochmr_lit.geometry import axis_angle_to_rotmat

    out, _, _ = comparison
    body = BodyModel(None)
    faces = body.faces.numpy()
    summary = json.loads((out / "summary.json").read_text())
    val = json.loads((tiny_synthcrowd / "val" / "annotations.json").read_text())
    genders = {"neutral": 0, "male": 1, "female": 2}
    checked = 0
    for row in summary["images"]:
        info = next(im for im in val["images"] if im["id"] == row["image_id"])
        anns = [a for a in val["annotations"] if a["image_id"] == info["id"]]
        pose = torch.tensor([a["smpl_pose"] for a in anns])
        with torch.no_grad():
            gt = body(axis_angle_to_rotmat(pose.view(-1, 24, 3)), torch.tensor([a["smpl_betas"] for a in anns]),
                      gender=torch.tensor([genders[a["gender"]] for a in anns]),
                      transl=torch.tensor([a["transl"] for a in anns]))
        joints = np.array([a["joints_3d"] for a in anns])
        assert np.abs(gt.joints.numpy() - joints).max() < 2e-3  # metres: the annotation's own skeleton
        vertices = gt.vertices.double().numpy()

        image = cv2.cvtColor(cv2.imread(str(tiny_synthcrowd / "val" / info["file_name"])), cv2.COLOR_BGR2RGB)
        h, w = image.shape[:2]
        figure = cv2.cvtColor(cv2.imread(str(out / row["figure"])), cv2.COLOR_BGR2RGB)
        focal, principal = info["camera"]["focal"][0], info["camera"]["principal_point"]
        direct = render_people(image, vertices, faces, focal, principal)
        np.testing.assert_array_equal(_panel(figure, 2, w, h), direct.image)  # PNG is lossless
        # the scene-scaled render agrees with a plain render in the annotated camera
        K = np.array([[focal, 0, principal[0]], [0, focal, principal[1]], [0, 0, 1]])
        plain = MeshRenderer(w, h).render([Mesh(v, faces) for v in vertices], K)
        assert (plain.instance == direct.instance).mean() > 0.995

        for k, ann in enumerate(anns):
            if ann["area"] == 0:  # hidden entirely: nothing to overlap
                continue
            mask = direct.instance == k
            rle = {"size": ann["segmentation"]["size"], "counts": ann["segmentation"]["counts"].encode("ascii")}
            annotated = mask_utils.decode(rle).astype(bool)
            iou = (mask & annotated).sum() / (mask | annotated).sum()
            assert iou >= 0.98, (ann["id"], iou)  # the same renderer drew the dataset: equal up to a few pixels
            ys, xs = np.nonzero(mask)
            box = np.array([xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1], np.float64)
            assert _box_iou(box, np.array(ann["bbox"])) >= 0.95, (ann["id"], box, ann["bbox"])
            checked += 1
    assert checked == sum(a["area"] > 0 for a in val["annotations"]) >= 3


def test_predicted_panel_is_the_pipeline_output_in_the_right_places(comparison, tiny_synthcrowd):
    from ochmr_lit.inference.boxes import load_json_boxes
    from ochmr_lit.inference.inputs import list_images
    from ochmr_lit.inference.pipeline import Predictor, load_regressor

    out, checkpoint, _ = comparison
    summary = json.loads((out / "summary.json").read_text())
    items, _ = load_json_boxes(tiny_synthcrowd / "val" / "annotations.json",
                               list_images(tiny_synthcrowd / "val" / "images"))
    module = load_regressor(checkpoint)
    faces = module.body.faces.numpy()
    for pred, row in zip(Predictor(module, keep_context=False).predict(items), summary["images"], strict=True):
        h, w = pred.image.shape[:2]
        figure = cv2.cvtColor(cv2.imread(str(out / row["figure"])), cv2.COLOR_BGR2RGB)
        placed = pred.vertices.astype(np.float64) + pred.translation[:, None]
        direct = render_people(pred.image, placed, faces, pred.focal_length, pred.principal_point,
                               colors=person_colors(pred.num_people))
        panel = _panel(figure, 1, w, h)
        np.testing.assert_array_equal(panel, direct.image)
        # every predicted person is drawn inside the square crop of its own box (side 1.2 x the longer box side,
        # the crop camera mapped back to the image); where a one-epoch model puts the mesh inside its crop is a
        # matter of training, not of placement
        for k, box in enumerate(pred.boxes.boxes):
            ys, xs = np.nonzero(direct.instance == k)
            assert len(xs) >= 20
            half = 0.5 * 1.2 * max(box[2], box[3])
            cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
            assert abs(xs.mean() - cx) <= half and abs(ys.mean() - cy) <= half, (k, box, xs.mean(), ys.mean())
        # side views show meshes on their white background (small: they frame the whole scene's depth)
        for k in (3, 4):
            assert np.any(_panel(figure, k, w, h) != 255, axis=-1).sum() >= 30 * pred.num_people


def test_compare_refuses_bad_input_with_clear_messages(tmp_path):
    from hydra import compose, initialize_config_module

    from ochmr_lit.vis.comparison_run import run_compare, synthcrowd_split_dir

    result = _run("num_images=0", "ckpt_path=x.ckpt", timeout=120)
    assert result.returncode != 0 and "num_images=0: how many images of the split to draw, a whole number >= 1" in (
        result.stderr)
    missing = tmp_path / "none.ckpt"
    with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
        cfg = compose(config_name="compare", overrides=[f"ckpt_path={missing}"])
    assert (cfg.split, cfg.num_images, cfg.out, cfg.side_view) == ("val", 4, None, True)
    with pytest.raises(FileNotFoundError, match=f"ckpt_path={missing}: no such file"):
        run_compare(cfg)
    with pytest.raises(ValueError, match=r"data._target_=ochmr_lit.data.OCHumanDataModule; compare draws SynthCrowd"):
        synthcrowd_split_dir({"data": {"_target_": "ochmr_lit.data.OCHumanDataModule"}}, "val")
    with pytest.raises(ValueError, match="stores no run_config.data"):
        synthcrowd_split_dir(None, "val")
