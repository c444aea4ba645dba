"""SynthCrowd: scene sampling, ground truth from the depth buffer, files in COCO/SPIN formats, determinism."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from ochmr_lit.data.datamodules.synthcrowd import SynthCrowdDataModule
from ochmr_lit.data.synthcrowd import (
    OCCLUSION_BUCKETS,
    GeneratorConfig,
    SynthCrowdGenerator,
    ensure_synthcrowd,
    generate_synthcrowd,
    occlusion_bucket,
    split_seed,
)
from ochmr_lit.data.synthcrowd import generate as generate_module
from ochmr_lit.data.synthcrowd import writer as writer_module
from ochmr_lit.data.synthcrowd.__main__ import main as cli_main
from ochmr_lit.data.synthcrowd.annotate import (
    JOINT_DEPTH_TOLERANCE_M,
    SURFACE_DEPTH_TOLERANCE_M,
    SURFACE_LANDMARKS,
)
from ochmr_lit.data.synthcrowd.scene import (
    JOINT_LIMITS,
    SMPL_JOINT_NAMES,
    load_user_poses,
    rot_x,
    sample_scene,
)
from ochmr_lit.geometry import axis_angle_to_rotmat
from ochmr_lit.vis.draw import VISIBILITY_COLORS

SPLIT_SIZE = (160, 192)  # (H, W): not square, so a swapped axis shows
SPLIT_IMAGES = 6
SPLIT_SEED = 11
GENDER_CODES = {"neutral": 0, "male": 1, "female": 2}


@pytest.fixture(scope="module")
def generator() -> SynthCrowdGenerator:
    """A generator at the default settings (256 x 256, 1-6 people, the synthetic body model)."""
    return SynthCrowdGenerator(GeneratorConfig())


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synthcrowd") / "split"
    return generate_synthcrowd(out, SPLIT_IMAGES, SPLIT_SEED, image_size=SPLIT_SIZE)


@pytest.fixture(scope="module")
def doc(split: Path) -> dict:
    return json.loads((split / "annotations.json").read_text())


@pytest.fixture(scope="module")
def body_model():
    from ochmr_lit.body import BodyModel

    return BodyModel().eval()


def _pose_rotmats(pose: np.ndarray) -> torch.Tensor:
    return axis_angle_to_rotmat(torch.as_tensor(np.asarray(pose).reshape(-1, 24, 3), dtype=torch.float32))


# -- ground truth against the renderer's buffers --------------------------------------------------------


def test_visibility_flags_agree_with_the_depth_buffer(generator: SynthCrowdGenerator) -> None:
    from ochmr_lit.body.keypoints import get_convention

    names = get_convention("coco17").joint_names
    tol = [SURFACE_DEPTH_TOLERANCE_M if n in SURFACE_LANDMARKS else JOINT_DEPTH_TOLERANCE_M for n in names]
    counts = np.zeros(4, dtype=int)
    edges = total = 0
    for index in range(6):
        res = generator.generate(seed=5, index=index)
        depth, instance = res.render.depth, res.render.instance
        h, w = depth.shape
        for i, person in enumerate(res.people):
            kp3d_z = _keypoint_depths(generator, res, i)
            for j, (u, v, vflag) in enumerate(person["keypoints"]):
                code = int(person["visibility_code"][j])
                total += 1
                counts[code] += 1
                c, r = int(np.rint(u)), int(np.rint(v))
                assert vflag == {0: 0, 1: 2, 2: 1, 3: 1}[code]
                if code == 0:
                    assert not (0 <= c < w and 0 <= r < h)
                    continue
                assert 0 <= c < w and 0 <= r < h
                front, zf, zj = int(instance[r, c]), float(depth[r, c]), kp3d_z[j]
                if person["edge"][j]:  # nothing in front at its pixel: decided by the 3 x 3 patch
                    edges += 1
                    assert names[j] in SURFACE_LANDMARKS  # only surface landmarks sit on the outline
                    assert front != i and not (front >= 0 and zf < zj)
                    patch = (slice(max(r - 1, 0), r + 2), slice(max(c - 1, 0), c + 2))
                    own_near = (instance[patch] == i) & (depth[patch] >= zj - tol[j])
                    assert code == (1 if own_near.any() else 2)
                elif code == 3:  # another person's surface in front of the keypoint
                    assert front not in (-1, i) and zf < zj
                elif code == 2:  # own surface further than the tolerance in front of it
                    assert front == i and zf < zj - tol[j]
                else:  # visible: own front surface within the tolerance
                    assert front == i and zf >= zj - tol[j]
    # Every code occurs in these scenes, and the edge rule stays the exception.
    assert np.all(counts > 0), counts
    assert edges <= 0.1 * total, (edges, total)


def _keypoint_depths(generator: SynthCrowdGenerator, res, i: int) -> np.ndarray:
    """Camera-frame z of person i's COCO-17 keypoints, recomputed with the body model from the GT params."""
    person = res.people[i]
    with torch.no_grad():
        out = generator.body(
            _pose_rotmats(person["pose"]),
            torch.as_tensor(person["betas"][None]).float(),
            gender=torch.tensor([person["gender"]]),
            transl=torch.as_tensor(person["transl"][None]).float(),
        )
    return out.keypoints("coco17")[0][0, :, 2].numpy().astype(np.float64)


def test_occlusion_ratio_and_centre_match_independent_computations(generator: SynthCrowdGenerator) -> None:
    from ochmr_lit.vis.render import Mesh

    res = next(r for r in (generator.generate(seed=2, index=k) for k in range(20)) if len(r.people) >= 3)
    for i, person in enumerate(res.people):
        with torch.no_grad():
            out = generator.body(
                _pose_rotmats(person["pose"]),
                torch.as_tensor(person["betas"][None]).float(),
                gender=torch.tensor([person["gender"]]),
                transl=torch.as_tensor(person["transl"][None]).float(),
            )
        alone = generator.renderer.render([Mesh(out.vertices[0].numpy(), generator.faces)], res.K).instance == 0
        # The solo render of the mesh rebuilt from the written parameters (float32) may differ from the
        # generator's silhouette only in a few outline pixels.
        amodal = res.amodal[i]
        assert (alone ^ amodal).sum() <= 0.01 * amodal.sum() + 2
        hidden = amodal & (res.render.instance != i)
        assert person["occlusion_ratio"] == pytest.approx(hidden.sum() / amodal.sum(), abs=1e-12)
        solo_ratio = (alone & (res.render.instance != i)).sum() / alone.sum()
        assert person["occlusion_ratio"] == pytest.approx(solo_ratio, abs=0.01)
        assert (res.render.instance == i).sum() == amodal.sum() - hidden.sum()  # visible = amodal - hidden
        torso = person["keypoints"][[5, 6, 11, 12]]
        labelled = torso[:, 2] > 0
        expected = torso[labelled, :2].mean(axis=0) if labelled.any() else person["bbox"][:2] + person["bbox"][2:] / 2
        np.testing.assert_allclose(person["body_center"], expected, atol=1e-9)


def test_people_stand_on_the_ground_inside_the_depth_range(generator: SynthCrowdGenerator, body_model) -> None:
    res = generator.generate(seed=3, index=0)
    R = rot_x(res.scene.pitch)
    for person in res.people:
        with torch.no_grad():
            out = body_model(
                _pose_rotmats(person["pose"]),
                torch.as_tensor(person["betas"][None]).float(),
                gender=torch.tensor([person["gender"]]),
                transl=torch.as_tensor(person["transl"][None]).float(),
            )
        level = out.vertices[0].numpy().astype(np.float64) @ R  # rows: R^T v, the level camera frame
        assert level[:, 1].max() == pytest.approx(res.scene.camera_height, abs=1e-4)  # soles on the ground
        assert 3.0 - 1e-4 <= level[:, 2].mean() <= 9.0 + 0.5
        np.testing.assert_allclose(out.joints[0].numpy(), person["joints_3d"], atol=1e-4)


def test_heavy_bucket_is_non_empty_at_default_settings(generator: SynthCrowdGenerator) -> None:
    ratios = [p["occlusion_ratio"] for k in range(16) for p in generator.generate(seed=0, index=k).people]
    buckets = [occlusion_bucket(r) for r in ratios]
    assert buckets.count("heavy") >= 2, sorted(ratios)
    assert buckets.count("none") >= 1 and buckets.count("partial") >= 1


def test_occlusion_bucket_boundaries() -> None:
    assert OCCLUSION_BUCKETS == {"none": (0, 0.10), "partial": (0.10, 0.40), "heavy": (0.40, 1.0)}
    assert [occlusion_bucket(r) for r in (0.0, 0.0999, 0.10, 0.25, 0.3999, 0.40, 0.4001, 1.0)] == [
        "none",
        "none",
        "partial",
        "partial",
        "partial",
        "heavy",  # [0.40, 1]: the rule of bucket_summary too
        "heavy",
        "heavy",
    ]
    with pytest.raises(ValueError, match="occlusion ratio"):
        occlusion_bucket(1.5)


# -- the files --------------------------------------------------------------------------------------------


def test_coco_json_loads_and_scores_its_ground_truth_at_ap_1(split: Path, doc: dict) -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(split / "annotations.json"))
        anns = gt.loadAnns(gt.getAnnIds())
        assert len(anns) >= SPLIT_IMAGES
        dets = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0} for a in anns]
        ev = COCOeval(gt, gt.loadRes(dets), "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0)  # AP over OKS 0.50:0.95
    assert ev.stats[5] == pytest.approx(1.0)  # AR
    for ann in anns:
        h, w = SPLIT_SIZE
        assert ann["segmentation"]["size"] == [h, w]
        mask = gt.annToMask(ann)
        assert mask.sum() == ann["area"] > 0
        np.testing.assert_allclose(mask_utils.toBbox(gt.annToRLE(ann)), ann["bbox"])
        assert ann["num_keypoints"] == sum(1 for v in ann["keypoints"][2::3] if v > 0)
        assert ann["occlusion_bucket"] == occlusion_bucket(ann["occlusion_ratio"])
    assert doc["categories"][0]["keypoints"][5] == "left_shoulder"
    assert {im["file_name"] for im in doc["images"]} == {f"images/{k:06d}.jpg" for k in range(SPLIT_IMAGES)}
    assert all((split / im["file_name"]).is_file() for im in doc["images"])


def test_visible_keypoints_lie_in_their_persons_mask(doc: dict) -> None:
    body_inside = body_visible = face_inside = face_near = face_visible = 0
    for ann in doc["annotations"]:
        rle = ann["segmentation"]
        mask = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()})
        kp = np.asarray(ann["keypoints"], dtype=np.float64).reshape(17, 3)
        for j, (x, y, v) in enumerate(kp):
            if v != 2:
                continue
            c, r = int(np.rint(x)), int(np.rint(y))
            if j >= 5:  # joints inside the body (shoulders ... ankles)
                body_visible += 1
                body_inside += int(mask[r, c])
            else:  # surface landmarks (nose, eyes, ears) may sit on the outline
                face_visible += 1
                face_inside += int(mask[r, c])
                face_near += int(mask[max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2].any())
    assert body_visible > 30 and face_visible > 5
    assert body_inside == body_visible  # every visible body joint lies in its person's mask
    assert face_near == face_visible  # visible landmarks at most one pixel from it ...
    assert face_inside >= 0.7 * face_visible  # ... and most of them inside


def test_ground_truth_reproduces_joints_and_keypoints(doc: dict, body_model) -> None:
    cameras = {im["id"]: im["camera"] for im in doc["images"]}
    anns = doc["annotations"]
    pose = np.array([a["smpl_pose"] for a in anns])
    with torch.no_grad():
        out = body_model(
            _pose_rotmats(pose),
            torch.tensor([a["smpl_betas"] for a in anns]).float(),
            gender=torch.tensor([GENDER_CODES[a["gender"]] for a in anns]),
            transl=torch.tensor([a["transl"] for a in anns]).float(),
        )
    np.testing.assert_allclose(out.joints.numpy(), np.array([a["joints_3d"] for a in anns]), atol=2e-4)
    coco3d = out.keypoints("coco17")[0].numpy().astype(np.float64)
    for k, ann in enumerate(anns):
        cam = cameras[ann["image_id"]]
        (fx, fy), (cx, cy) = cam["focal"], cam["principal_point"]
        uv = np.stack([fx * coco3d[k, :, 0] / coco3d[k, :, 2] + cx, fy * coco3d[k, :, 1] / coco3d[k, :, 2] + cy], 1)
        kp = np.asarray(ann["keypoints"], dtype=np.float64).reshape(17, 3)
        labelled = kp[:, 2] > 0
        np.testing.assert_allclose(kp[labelled, :2], uv[labelled], atol=0.02)
        assert np.all(kp[~labelled, :2] == 0)


def test_spin_npz_has_spin_keys_consistent_with_the_json(split: Path, doc: dict) -> None:
    from ochmr_lit.body.keypoints import convert_keypoints, keypoint_mapping

    with np.load(split / "smpl_gt.npz", allow_pickle=False) as data:
        npz = {k: data[k] for k in data.files}
    anns = doc["annotations"]
    n = len(anns)
    for key, shape in {
        "imgname": (n,),
        "center": (n, 2),
        "scale": (n,),
        "part": (n, 24, 3),
        "S": (n, 24, 4),
        "pose": (n, 72),
        "shape": (n, 10),
        "has_smpl": (n,),
        "openpose": (n, 25, 3),
        "gender": (n,),
    }.items():
        assert npz[key].shape == shape, key
    np.testing.assert_array_equal(npz["ann_id"], [a["id"] for a in anns])
    images = {im["id"]: im["file_name"] for im in doc["images"]}
    assert list(npz["imgname"]) == [images[a["image_id"]] for a in anns]
    assert list(npz["gender"]) == [a["gender"][0] for a in anns]
    np.testing.assert_allclose(npz["pose"], [a["smpl_pose"] for a in anns])
    amodal = np.array([a["bbox_amodal"] for a in anns])
    # Tolerance: the JSON box is rounded to 1e-3 px (x 1.2 / 200), the scale to 1e-6.
    np.testing.assert_allclose(npz["scale"], 1.2 * amodal[:, 2:].max(axis=1) / 200.0, atol=5e-6)
    np.testing.assert_allclose(npz["center"], amodal[:, :2] + amodal[:, 2:] / 2, atol=2e-3)
    # 3D: spin24 joints shared with SMPL's 24 equal the JSON joints.
    joints = np.array([a["joints_3d"] for a in anns])
    from_smpl, present = convert_keypoints(joints, "smpl24", "spin24")
    assert present.sum() >= 12
    np.testing.assert_allclose(npz["S"][:, present, :3], np.asarray(from_smpl)[:, present], atol=2e-6)
    assert np.all(npz["S"][:, :, 3] == npz["S"][0, :, 3])  # confidence = joint modelled, same for all
    # 2D: COCO joints in spin24 equal the JSON keypoints wherever those are labelled.
    idx = keypoint_mapping("coco17", "spin24")
    kp = np.array([a["keypoints"] for a in anns], dtype=np.float64).reshape(n, 17, 3)
    for j_spin, j_coco in enumerate(idx):
        if j_coco < 0:
            continue
        labelled = kp[:, j_coco, 2] > 0
        np.testing.assert_allclose(npz["part"][labelled, j_spin, :2], kp[labelled, j_coco, :2], atol=2e-3)
        np.testing.assert_array_equal(npz["part"][:, j_spin, 2], labelled.astype(float))


@pytest.mark.slow
def test_same_seed_gives_identical_bytes_with_any_worker_count(split: Path, tmp_path: Path) -> None:
    again = generate_synthcrowd(tmp_path / "again", SPLIT_IMAGES, SPLIT_SEED, image_size=SPLIT_SIZE, num_workers=2)
    for name in ["annotations.json", "smpl_gt.npz", "DONE"] + [f"images/{k:06d}.jpg" for k in range(SPLIT_IMAGES)]:
        assert (again / name).read_bytes() == (split / name).read_bytes(), name
    other = generate_synthcrowd(tmp_path / "other", 2, SPLIT_SEED + 1, image_size=SPLIT_SIZE)
    assert (other / "annotations.json").read_bytes() != (split / "annotations.json").read_bytes()


def test_interrupted_generation_never_looks_complete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(writer_module, "write_npz", broken)
    with pytest.raises(KeyboardInterrupt):
        generate_synthcrowd(tmp_path / "s", 1, 0, image_size=(64, 64))
    assert not (tmp_path / "s" / "DONE").exists()
    assert not (tmp_path / "s" / "smpl_gt.npz").exists()
    assert [p.name for p in (tmp_path / "s").iterdir() if p.name.startswith(".")] == []  # no temp files left


def test_ensure_synthcrowd_skips_complete_splits_and_regenerates_stale_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = generate_module.generate_synthcrowd

    def counting(out_dir, *args, **kwargs):
        calls.append(Path(out_dir).name)
        return real(out_dir, *args, **kwargs)

    monkeypatch.setattr(generate_module, "generate_synthcrowd", counting)
    splits = {"train": 2, "val": 1}
    dirs = ensure_synthcrowd(tmp_path, splits, seed=4, image_size=(64, 80))
    assert calls == ["train", "val"] and set(dirs) == {"train", "val"}
    done = json.loads((dirs["train"] / "DONE").read_text())
    assert done["seed"] == split_seed(4, "train") != split_seed(4, "val")
    assert done["num_images"] == 2 and done["image_size"] == [64, 80]
    ensure_synthcrowd(tmp_path, splits, seed=4, image_size=(64, 80))
    assert calls == ["train", "val"]  # both complete: nothing regenerated
    (dirs["val"] / "DONE").unlink()
    ensure_synthcrowd(tmp_path, splits, seed=4, image_size=(64, 80))
    assert calls == ["train", "val", "val"]
    ensure_synthcrowd(tmp_path, {"train": 1, "val": 1}, seed=4, image_size=(64, 80))
    assert calls == ["train", "val", "val", "train"]  # a different size of split is regenerated
    assert len(list((dirs["train"] / "images").iterdir())) == 1


def test_runs_started_together_generate_a_split_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    # A second run arrives on the empty cache while the first generates: it waits, then finds the split complete,
    # instead of clearing the first one's files. (The second run is a thread: rendering stays in this one.)
    calls, second = [], []
    original = generate_module.generate_synthcrowd

    def first_generates(out_dir, *args, **kwargs):
        calls.append(Path(out_dir).name)
        if not second:
            second.append(pool.submit(ensure_synthcrowd, tmp_path, {"train": 1}, seed=2, image_size=(64, 64)))
            time.sleep(1.0)  # the second run is now waiting for this one
        return original(out_dir, *args, **kwargs)

    monkeypatch.setattr(generate_module, "generate_synthcrowd", first_generates)
    with caplog.at_level(logging.INFO, logger="ochmr_lit.paths"), ThreadPoolExecutor(1) as pool:
        first = ensure_synthcrowd(tmp_path, {"train": 1}, seed=2, image_size=(64, 64))
        assert second[0].result(timeout=60) == first
    assert calls == ["train"]  # generated once
    assert generate_module.is_complete(first["train"], json.loads((first["train"] / "DONE").read_text()))
    assert [r.getMessage() for r in caplog.records if "waiting" in r.getMessage()] == [
        f"waiting for another process that is generating SynthCrowd {tmp_path / 'train'}"]


def test_datasets_of_other_sizes_get_cache_folders_of_their_own(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCHMR_CACHE", str(tmp_path))
    default = SynthCrowdDataModule().root
    assert default == tmp_path / "synthcrowd" / "s0_256x256"  # the folder of existing caches is kept
    assert SynthCrowdDataModule(splits={"train": 800, "val": 60, "test": 80}).root == default
    larger = SynthCrowdDataModule(splits={"train": 8000, "val": 60, "test": 80}).root
    assert larger == tmp_path / "synthcrowd" / "s0_256x256_train8000"
    assert SynthCrowdDataModule(splits={"train": 6}, generation_seed=1000).root.name == "s1000_256x256_train6"
    assert SynthCrowdDataModule(splits={"val": 2, "train": 4, "test": 2}, image_size=(128, 128)).root.name == (
        "s0_128x128_test2_train4_val2")
    assert SynthCrowdDataModule(root=str(tmp_path / "mine"), splits={"train": 8000}).root == tmp_path / "mine"


def test_cli_writes_a_split_and_a_preview(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    preview = tmp_path / "grid.png"
    assert (
        cli_main(
            [
                "--out",
                str(tmp_path / "cli"),
                "--num-images",
                "2",
                "--seed",
                "3",
                "--image-size",
                "96",
                "128",
                "--preview",
                str(preview),
            ]
        )
        == 0
    )
    assert "2 images" in capsys.readouterr().out
    import cv2

    grid = cv2.imread(str(preview))[..., ::-1]
    assert grid.shape == (96 + 4, 2 * (128 + 2) + 2, 3)
    doc = json.loads((tmp_path / "cli" / "annotations.json").read_text())
    ann = next(a for a in doc["annotations"] if a["image_id"] == 1 and 1 in a["visibility_code"])
    j = ann["visibility_code"].index(1)
    x, y = ann["keypoints"][3 * j], ann["keypoints"][3 * j + 1]
    # The first tile starts at (2, 2); a visible keypoint is drawn green at its pixel (unless another
    # keypoint's dot covers it, hence "any of the visible ones").
    hits = [
        tuple(grid[2 + int(np.rint(ann["keypoints"][3 * k + 1])), 2 + int(np.rint(ann["keypoints"][3 * k]))])
        == VISIBILITY_COLORS[1]
        for k in range(17)
        if ann["visibility_code"][k] == 1
    ]
    assert any(hits), (x, y)


# -- scene sampling ----------------------------------------------------------------------------------------


def test_joint_limits_mirror_left_and_right() -> None:
    for name in SMPL_JOINT_NAMES:
        if name.startswith("left_"):
            left = JOINT_LIMITS[SMPL_JOINT_NAMES.index(name)]
            right = JOINT_LIMITS[SMPL_JOINT_NAMES.index("right_" + name[5:])]
            np.testing.assert_array_equal(right[0], left[0])
            np.testing.assert_array_equal(right[1:], -left[1:, ::-1])
    assert np.all(JOINT_LIMITS[0] == 0) and np.all(JOINT_LIMITS[..., 0] <= JOINT_LIMITS[..., 1])


def test_joint_limit_signs_bend_the_body_as_documented(body_model) -> None:
    """Knee flexion (+x) moves the ankle behind the knee; hip flexion (-x) moves the knee forward; lowering
    the left arm (-z) brings the wrist below the shoulder; bending the left elbow (-y) brings the wrist
    forward (SMPL frame: y up, z forward)."""
    names = SMPL_JOINT_NAMES
    poses = torch.zeros(5, 24, 3)
    poses[1, names.index("left_knee"), 0] = 1.2
    poses[2, names.index("left_hip"), 0] = -1.0
    poses[3, names.index("left_shoulder"), 2] = -1.2
    poses[4, names.index("left_elbow"), 1] = -1.5
    with torch.no_grad():
        j = body_model(axis_angle_to_rotmat(poses), torch.zeros(5, 10)).joints.numpy()
    knee, ankle, shoulder, wrist = (names.index(n) for n in ("left_knee", "left_ankle", "left_shoulder", "left_wrist"))
    assert j[1, ankle, 2] < j[1, knee, 2] - 0.2
    assert j[2, knee, 2] > j[0, knee, 2] + 0.2
    assert j[3, wrist, 1] < j[3, shoulder, 1] - 0.3
    assert j[4, wrist, 2] > j[0, wrist, 2] + 0.15


def test_sampled_scenes_respect_limits_and_user_poses(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    user = rng.uniform(-0.3, 0.3, size=(3, 72))
    path = tmp_path / "poses.npz"
    np.savez(path, poses=user)
    loaded = load_user_poses(str(path))
    np.testing.assert_array_equal(loaded, user)
    used = 0
    for k in range(10):
        scene = sample_scene(np.random.default_rng(k), (128, 160), people=(3, 6), user_poses=loaded)
        assert 1 <= len(scene.people) <= 6 and scene.background.shape == (128, 160, 3)
        assert 0.8 * 160 <= scene.K[0, 0] <= 1.6 * 160
        for p in scene.people:
            if p.user_pose:
                used += 1
                assert any(np.allclose(p.body_pose.reshape(-1), row[3:]) for row in user)
            else:
                assert np.all(p.body_pose >= JOINT_LIMITS[1:, :, 0]) and np.all(p.body_pose <= JOINT_LIMITS[1:, :, 1])
            assert 3.0 <= p.position[1] <= 9.0
    assert used > 0
    again = sample_scene(np.random.default_rng(3), (128, 160), people=(3, 6), user_poses=loaded)
    np.testing.assert_array_equal(
        again.background,
        sample_scene(np.random.default_rng(3), (128, 160), people=(3, 6), user_poses=loaded).background,
    )
    np.savez(tmp_path / "bad.npz", thetas=user)
    with pytest.raises(ValueError, match="'poses' or 'pose'"):
        load_user_poses(str(tmp_path / "bad.npz"))
    np.savez(tmp_path / "short.npz", pose=user[:, :69])
    with pytest.raises(ValueError, match=r"\(N, 72\)"):
        load_user_poses(str(tmp_path / "short.npz"))


def test_benchmark_generates_the_requested_images(tmp_path: Path) -> None:
    from ochmr_lit.data.synthcrowd.bench import benchmark

    rate = benchmark(num_images=4, image_size=(64, 80), num_people=2, num_workers=0, out_dir=tmp_path)
    assert 0.0 < rate < 1e4
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == [f"{k:06d}.jpg" for k in range(4)]


def test_a_worker_that_cannot_start_reports_its_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # In a pool, a failing initializer would be restarted forever; the error must surface from the task.
    monkeypatch.setenv("LP_NUM_THREADS", "1")
    threads = torch.get_num_threads()
    try:
        config = GeneratorConfig(poses_npz=str(tmp_path / "missing.npz"))
        generate_module._init_worker(config, str(tmp_path), worker_process=True)
        with pytest.raises(RuntimeError, match="could not start: FileNotFoundError.*missing.npz"):
            generate_module._work((0, 0))
    finally:
        generate_module._WORKER.clear()
        torch.set_num_threads(threads)
