"""``evaluate`` end to end on real-dataset formats, with an untrained tiny OCHMR checkpoint (nothing is trained).

* Keypoint AP on the COCO, CrowdPose and OCHuman fixtures: results files, AP in [0, 1], every annotated person
  with keypoints scored once, and AP 1.0 when the ground-truth keypoints go through the same evaluation path.
* 3D protocols on files written here in the official formats (SPIN npz for H36M and MPI-INF-3DHP, 3DOH
  ``annots.json``, CMU Panoptic JSON + calibration): the numbers equal a plain numpy transcription of the
  protocol applied to the predictions the model made.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import lightning as L
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module
from test_datasets_3d import SEQ, _oh_entry, panoptic_root  # noqa: F401 (a fixture)
from test_metrics_matched import _crmh_numpy

from ochmr_lit.body import BodyModel
from ochmr_lit.body.keypoints import get_convention
from ochmr_lit.eval.mesh_evaluation import MeshEvaluation, regressor_focal_length
from ochmr_lit.evaluate import evaluate
from ochmr_lit.geometry import apply_affine, axis_angle_to_rotmat, perspective_projection
from ochmr_lit.lit import MeshRegressorModule

# SPIN's constants.py (the spin24 order is SPIN's 24 ground-truth joints)
H36M_TO_J17 = [6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10, 0, 7, 9]
J24_TO_J17 = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 18, 14, 16, 17]
RIGHT_HIP, LEFT_HIP, SPIN_PELVIS = 2, 3, 14  # in spin24 and (hips) in lsp14

#: protocol -> (data config, annotation file, image folder, keypoint convention) of the fixtures
AP_CASES = {
    "coco_ap": ("coco", "coco/test_coco.json", "coco", "coco17"),
    "crowdpose_ap": ("crowdpose", "crowdpose/test_crowdpose.json", "crowdpose", "crowdpose14"),
    "ochuman_ap": ("ochuman", "ochuman/test_ochuman.json", "ochuman", "coco17"),
}
SMALL = ["data.num_workers=0", "data.crop_size=64", "data.map_size=16", "data.eval_batch_size=3", "trainer=cpu",
         "logger=csv"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """An untrained OCHMR regressor (ResNet-18, CoNorm after layer 2, GT context, 64 px crops)."""
    module = MeshRegressorModule(backbone="resnet18", conorm_depths=[2], hidden_channels=16, context_source="gt",
                                 crop_size=64, channels_last=False, num_vis=0)
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False)
    trainer.strategy.connect(module)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    trainer.save_checkpoint(path)
    return path


def _evaluate(checkpoint: Path, run_dir: Path, protocol: str, data: str, overrides: list[str]) -> dict:
    with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
        cfg = compose(config_name="evaluate", overrides=[
            "~experiment", "experiment_name=tiny", f"ckpt_path={checkpoint}", f"run_dir={run_dir}",
            f"protocol={protocol}", f"data={data}", *overrides, *SMALL])
    return evaluate(cfg)["results"]


def _ap_overrides(fixtures_dir: Path, protocol: str) -> list[str]:
    _, ann, folder, _ = AP_CASES[protocol]
    return [f"data.ann_files={{test:{fixtures_dir / ann}}}", f"data.image_roots={{test:{fixtures_dir / folder}}}"]


def _people_with_keypoints(ann_file: Path) -> list[int]:
    anns = json.loads(ann_file.read_text())["annotations"]
    return sorted(a["id"] for a in anns if not a.get("iscrowd", 0) and any(v > 0 for v in a["keypoints"][2::3]))


def _rows(folder: Path) -> list[dict]:
    with (folder / "per_sample.csv").open() as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("protocol", sorted(AP_CASES))
def test_keypoint_ap_protocols_on_the_fixtures(protocol, checkpoint, fixtures_dir, tmp_path):
    data, ann, _, _ = AP_CASES[protocol]
    results = _evaluate(checkpoint, tmp_path, protocol, data, _ap_overrides(fixtures_dir, protocol))
    metrics, folder = results["metrics"], tmp_path / "results"
    assert {p.name for p in folder.iterdir()} >= {"metrics.json", "per_sample.csv", "table.md"}
    saved = json.loads((folder / "metrics.json").read_text())
    assert saved["protocol"]["name"] == protocol and saved["metrics"]["kp_AP"] == metrics["kp_AP"]
    assert 0.0 <= metrics["kp_AP"] <= 1.0 and 0.0 <= metrics["kp_AR"] <= 1.0
    expected = ({"kp_AP_easy", "kp_AP_medium", "kp_AP_hard"} if protocol == "crowdpose_ap" else {"kp_APm", "kp_APl"})
    assert expected <= set(metrics)
    people = _people_with_keypoints(fixtures_dir / ann)
    rows = _rows(folder)
    assert sorted(int(r["ann_id"]) for r in rows) == people  # each annotated person with keypoints, once
    assert metrics["kp_num_scored"] == metrics["kp_num_gt_people"] == len(people)
    assert all(0.0 <= float(r["oks"]) < 0.9 for r in rows)  # an untrained model is far from every person
    assert f"| kp_AP | {metrics['kp_AP']:.4f} |" in (folder / "table.md").read_text()


@pytest.mark.parametrize("protocol", sorted(AP_CASES))
def test_ground_truth_keypoints_score_ap_one(protocol, checkpoint, fixtures_dir, tmp_path, monkeypatch):
    data, ann, _, convention = AP_CASES[protocol]
    annotated = {a["id"]: np.asarray(a["keypoints"], np.float64).reshape(-1, 3)[:, :2]
                 for a in json.loads((fixtures_dir / ann).read_text())["annotations"]}
    predict = MeshRegressorModule.predict_batch

    def ground_truth_prediction(self, batch, context=None):  # the annotation, in crop pixels, as the prediction
        pred = predict(self, batch, context)
        image_px = torch.from_numpy(np.stack([annotated[int(a)] for a in batch["ann_id"]]))
        pred[f"keypoints_2d_{convention}"] = apply_affine(batch["crop_affine"].double(), image_px)
        return pred

    monkeypatch.setattr(MeshRegressorModule, "predict_batch", ground_truth_prediction)
    metrics = _evaluate(checkpoint, tmp_path, protocol, data, _ap_overrides(fixtures_dir, protocol))["metrics"]
    assert metrics["kp_AP"] == pytest.approx(1.0) and metrics["kp_AR"] == pytest.approx(1.0)
    assert metrics["kp_AP50"] == pytest.approx(1.0) and metrics["kp_AP75"] == pytest.approx(1.0)
    assert all(float(r["oks"]) > 0.9999 for r in _rows(tmp_path / "results"))


def test_protocol_keypoints_are_projected_with_the_regressor_camera(fixtures_dir):
    body = BodyModel()
    g = torch.Generator().manual_seed(0)
    rotmat = axis_angle_to_rotmat(torch.randn(2, 24, 3, generator=g) * 0.2)
    betas = torch.randn(2, 10, generator=g) * 0.5
    coco, _ = body(rotmat, betas).keypoints("coco17")
    cam_t = torch.tensor([[0.1, -0.05, 20.0], [-0.2, 0.1, 25.0]])
    centre = torch.full((2, 2), 32.0)
    pred = {"rotmat": rotmat, "betas": betas, "cam_t": cam_t, "keypoints_3d": coco,
            "keypoints_2d": perspective_projection(coco, cam_t, 5000.0, centre)}
    np.testing.assert_allclose(regressor_focal_length(pred, 64.0), [5000.0, 5000.0], rtol=1e-5)
    crowd = MeshEvaluation("crowdpose_ap", keypoint_ground_truth=fixtures_dir / "crowdpose" / "test_crowdpose.json")
    projected = crowd._keypoints_in_crop({"image": torch.zeros(2, 3, 64, 64)}, pred, body)
    cp, cc = get_convention("crowdpose14"), get_convention("coco17")
    for name in ("left_wrist", "right_ankle", "left_shoulder"):  # the joints both conventions share
        np.testing.assert_allclose(projected[:, cp.index(name)], pred["keypoints_2d"][:, cc.index(name)], atol=1e-3)
    assert projected.shape == (2, 14, 2) and torch.isfinite(projected).all()


# -- 3D protocols ----------------------------------------------------------------------------------------
def _spy_vertices(monkeypatch) -> dict[int, np.ndarray]:
    """Record the predicted vertices of every evaluated sample, by dataset index."""
    seen: dict[int, np.ndarray] = {}
    predict = MeshRegressorModule.predict_batch

    def spy(self, batch, context=None):
        pred = predict(self, batch, context)
        for index, vertices in zip(batch["index"].tolist(), pred["vertices"], strict=True):
            seen[index] = vertices.double().cpu().numpy()
        return pred

    monkeypatch.setattr(MeshRegressorModule, "predict_batch", spy)
    return seen


def _procrustes(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """SPIN's compute_similarity_transform: pred aligned to target."""
    mu1, mu2 = pred.mean(0), target.mean(0)
    x1, x2 = pred - mu1, target - mu2
    k = x1.T @ x2
    u, _, vh = np.linalg.svd(k)
    z = np.eye(3)
    z[2, 2] = np.sign(np.linalg.det(u @ vh))
    rot = vh.T @ z @ u.T
    scale = np.trace(rot @ k) / (x1**2).sum()
    return scale * x1 @ rot.T + mu2


def _errors_mm(pred: list[np.ndarray], target: list[np.ndarray]) -> tuple[float, float]:
    mpjpe = np.mean([np.linalg.norm(p - t, axis=1).mean() for p, t in zip(pred, target, strict=True)]) * 1000
    pa = np.mean([np.linalg.norm(_procrustes(p, t) - t, axis=1).mean() for p, t in zip(pred, target, strict=True)])
    return float(mpjpe), float(pa * 1000)


def _write_spin_npz(folder: Path, name: str, people: int, seed: int) -> np.ndarray:
    """A SPIN-format npz (imgname, center, scale, part, S) and its images; returns S (people, 24, 4)."""
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    names = [f"images/S9_Directions_1.60457274_{i:06d}.jpg" for i in range(people)]
    for n in names:
        cv2.imwrite(str(folder / n), rng.integers(0, 255, (96, 96, 3), dtype=np.uint8))
    part = np.zeros((people, 24, 3))
    part[:, :14, :2] = rng.uniform(20, 76, (people, 14, 2))
    part[:, :14, 2] = 1.0
    s = np.concatenate([rng.normal(0, 0.3, (people, 24, 3)), np.ones((people, 24, 1))], axis=2)
    s[:, SPIN_PELVIS, :3] = 0.5 * (s[:, RIGHT_HIP, :3] + s[:, LEFT_HIP, :3]) + 0.02  # off the hip midpoint
    np.savez(folder / name, imgname=np.array(names), center=np.full((people, 2), 48.0), scale=np.full(people, 0.4),
             part=part, S=s)
    return s


@pytest.mark.parametrize("protocol,data", [("h36m_p2", "h36m"), ("mpi_inf_3dhp", "mpi_inf_3dhp")])
def test_spin_npz_protocols(protocol, data, checkpoint, tmp_path, monkeypatch):
    s = _write_spin_npz(tmp_path / "data", f"{data}_valid.npz", people=4, seed=3)
    seen = _spy_vertices(monkeypatch)
    metrics = _evaluate(checkpoint, tmp_path / "run", protocol, data, [
        f"data.npz_files={{test:{tmp_path / 'data' / f'{data}_valid.npz'}}}", f"data.image_root={tmp_path / 'data'}"
    ])["metrics"]
    regressor = BodyModel().J_regressor_h36m.double().numpy()
    joints = 17 if data == "mpi_inf_3dhp" else 14
    pred, target = [], []
    for i in range(4):
        regressed = regressor @ seen[i]
        pred.append(regressed[H36M_TO_J17[:joints]] - regressed[0])
        # SPIN's eval.py uses S as its preprocessing stores it, centred on the pelvis joint (H36M and MPI-INF-3DHP)
        target.append(s[i, J24_TO_J17[:joints], :3] - s[i, SPIN_PELVIS, :3])
    mpjpe, pa = _errors_mm(pred, target)
    assert metrics["mpjpe"] == pytest.approx(mpjpe, rel=1e-4) and metrics["pa_mpjpe"] == pytest.approx(pa, rel=1e-4)
    assert 50 < pa < mpjpe and np.isnan(metrics["pve"])
    saved = json.loads((tmp_path / "run" / "results" / "metrics.json").read_text())
    assert len(saved["per_joint"]["joint_names"]) == joints and len(_rows(tmp_path / "run" / "results")) == 4


def test_3doh_protocol(checkpoint, tmp_path, monkeypatch):
    rng = np.random.default_rng(5)
    split = tmp_path / "testset"
    (split / "images").mkdir(parents=True)
    annots = {f"{i:05d}": _oh_entry(rng, f"{i:05d}", [[5.0, 4.0], [55.0, 60.0]]) for i in range(3)}
    (split / "annots.json").write_text(json.dumps(annots))
    for key in annots:
        cv2.imwrite(str(split / "images" / f"{key}.jpg"), rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    seen = _spy_vertices(monkeypatch)
    metrics = _evaluate(checkpoint, tmp_path / "run", "3doh", "3doh",
                        [f"data.ann_files={{test:{split / 'annots.json'}}}"])["metrics"]
    regressor = BodyModel().J_regressor_h36m.double().numpy()
    pred, target = [], []
    for i, key in enumerate(sorted(annots)):
        lsp_pred = (regressor @ seen[i])[H36M_TO_J17[:14]]
        lsp_gt = np.asarray(annots[key]["lsp_joints_3d"])
        pred.append(lsp_pred - 0.5 * (lsp_pred[RIGHT_HIP] + lsp_pred[LEFT_HIP]))
        target.append(lsp_gt - 0.5 * (lsp_gt[RIGHT_HIP] + lsp_gt[LEFT_HIP]))
    mpjpe, pa = _errors_mm(pred, target)
    assert metrics["mpjpe"] == pytest.approx(mpjpe, rel=1e-4) and metrics["pa_mpjpe"] == pytest.approx(pa, rel=1e-4)


def test_panoptic_protocol(checkpoint, panoptic_root, tmp_path, monkeypatch):  # noqa: F811 (the fixture)
    for camera in ("00_16", "00_30"):
        folder = panoptic_root / SEQ / "hdImgs" / camera
        folder.mkdir(parents=True)
        for frame in (100, 101, 102):
            cv2.imwrite(str(folder / f"{camera}_{frame:08d}.jpg"), np.full((240, 320, 3), 90, np.uint8))
    seen = _spy_vertices(monkeypatch)
    records_of = {}  # sample index -> (image, GT joints19), from the data module the evaluation reads

    from ochmr_lit.data.datamodules import PanopticDataModule

    module = PanopticDataModule(str(panoptic_root), splits={"val": [SEQ], "test": [SEQ]},
                                index_dir=str(tmp_path / "idx"), num_workers=0)
    for i, record in enumerate(module.load_records("test")[0]):
        records_of[i] = (record.image_id, record.extra["joints_panoptic19"])
    results = _evaluate(checkpoint, tmp_path / "run", "panoptic", "panoptic", [
        f"data.root={panoptic_root}", f"data.splits={{val:[{SEQ}],test:[{SEQ}]}}",
        f"data.index_dir={tmp_path / 'idx'}"])
    metrics = results["metrics"]
    regressor = BodyModel().J_regressor_h36m.double().numpy()
    pan, h36m = get_convention("panoptic19"), get_convention("h36m17")
    as_panoptic = {"pelvis": "mid_hip", "neck": "neck_openpose"}  # CRMH reads these Panoptic joints as H36M's
    errors = []
    for image in sorted({im for im, _ in records_of.values()}):
        members = [i for i, (im, _) in records_of.items() if im == image]
        pred = np.stack([(regressor @ seen[i]) - (regressor @ seen[i])[0] for i in members])
        gt = np.stack([records_of[i][1] for i in members])
        target, vis = np.zeros((len(members), 17, 3)), np.zeros((len(members), 17), bool)
        for j, name in enumerate(h36m.joint_names):
            source = as_panoptic.get(name, name)
            if source in pan.joint_names:
                k = pan.index(source)
                target[:, j] = gt[:, k, :3] - gt[:, pan.index("mid_hip"), :3]
                vis[:, j] = (gt[:, k, 3] > 0.1) & (gt[:, pan.index("mid_hip"), 3] > 0.1)
        errors.extend(_crmh_numpy(pred, target, vis)[0].tolist())
    assert len(errors) == len(records_of) == 12 and metrics["num_people"] == 12 and metrics["num_images"] == 6
    assert metrics["mpjpe"] == pytest.approx(np.mean(errors), rel=1e-4)
    assert metrics[f"mpjpe/{SEQ}"] == pytest.approx(np.mean(errors), rel=1e-4)
    assert metrics["mpjpe_mean_of_sequences"] == pytest.approx(np.mean(errors), rel=1e-4)
    rows = _rows(tmp_path / "run" / "results")
    assert len(rows) == 12 and {r["image_id"] for r in rows} == {str(im) for im, _ in records_of.values()}


@pytest.mark.parametrize("data,test_file", [
    ("h36m", "h36m_valid_protocol2.npz"), ("h36m_p1", "h36m_valid_protocol1.npz"),
    ("mpi_inf_3dhp", "mpi_inf_3dhp_valid.npz")])
def test_spin_npz_data_configs(data, test_file, tmp_path):
    from hydra.utils import instantiate

    from ochmr_lit.data.datamodules import H36MDataModule, MPIINF3DHPDataModule

    with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
        cfg = compose(config_name="fit", overrides=["~experiment", f"data={data}", f"paths.data_root={tmp_path}"])
    module = instantiate(cfg.data)
    assert type(module) is (MPIINF3DHPDataModule if data == "mpi_inf_3dhp" else H36MDataModule)
    assert module.name == ("mpi_inf_3dhp" if data == "mpi_inf_3dhp" else "h36m")
    assert module.npz_files["test"] == module.npz_files["val"] == tmp_path / "spin_extras" / test_file
    with pytest.raises(FileNotFoundError, match=test_file):
        module.load_records("test")


def test_a_protocol_on_the_wrong_data_is_named(fixtures_dir):
    with pytest.raises(ValueError, match=r"protocol 'crowdpose_ap' measures keypoint AP .*evaluate data=crowdpose$"):
        MeshEvaluation("crowdpose_ap")
    with pytest.raises(ValueError, match=r"protocol 'coco_ap' scores coco17 keypoints.*evaluate data=coco with it"):
        MeshEvaluation("coco_ap", keypoint_ground_truth=fixtures_dir / "crowdpose" / "test_crowdpose.json")
    batch = {"dataset": ["coco"], "index": torch.tensor([0]), "has_smpl": torch.tensor([False])}
    with pytest.raises(ValueError, match=r"protocol 'h36m_p2' compares against 'joints_spin24'.*data=h36m$"):
        MeshEvaluation("h36m_p2").update(batch, {"vertices": torch.zeros(1, 6890, 3)}, body=None)
