"""Named evaluation protocols, the 3DPW subsets, the evaluation-joint pipeline and the detector sweep."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ochmr_lit.body.keypoints import H36M_TO_J14, get_convention
from ochmr_lit.eval import PROTOCOLS, DetectorSweep, Protocol, build_metrics, format_sweep_table, get_protocol
from ochmr_lit.eval import joints as J
from ochmr_lit.eval.mesh_evaluation import MeshEvaluation
from ochmr_lit.eval.protocols import MESH_ERRORS, SPIN_MESH_PROTOCOL, in_3dpw_occ, in_3dpw_pc
from ochmr_lit.metrics import MPJPE, PAMPJPE, PVE, KeypointAP, MatchedMPJPE, PAMPJPEDepth, PAMPJPEPlane

# SPIN's constants.py (nkolot/SPIN): the evaluation joint selections the pipeline must reproduce.
SPIN_H36M_TO_J17 = [6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10, 0, 7, 9]
SPIN_J24_TO_J17 = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 18, 14, 16, 17]

REQUIRED = [
    "3dpw",
    "3dpw_pc",
    "3dpw_occ",
    "3doh",
    "h36m_p1",
    "h36m_p2",
    "mpi_inf_3dhp",
    "panoptic",
    "coco_ap",
    "ochuman_ap",
    "crowdpose_ap",
    "synthcrowd",
    "detector_sweep",
]


@pytest.mark.parametrize(
    ("sequence", "frame", "expected"),
    [
        ("courtyard_basketball_00", 199, False),
        ("courtyard_basketball_00", 200, True),
        ("courtyard_basketball_00", 279, True),
        ("courtyard_basketball_00", 280, False),
        ("courtyard_dancing_01", 60, True),
        ("courtyard_dancing_01", 270, False),
        ("downtown_bus_00", 1899, True),
        ("test/downtown_bus_00.pkl", 1620, True),
        ("courtyard_hug_00", 99, False),
        ("courtyard_hug_00", 499, True),
        ("courtyard_hug_01", 200, False),  # another take of the same scene is not in 3DPW-PC
        ("downtown_walking_00", 300, False),
    ],
)
def test_in_3dpw_pc(sequence: str, frame: int, expected: bool) -> None:
    assert in_3dpw_pc(sequence, frame) is expected


@pytest.mark.parametrize(
    ("sequence", "expected"),
    [
        ("courtyard_backpack_00", True),
        ("courtyard_basketball_01", True),
        ("courtyard_bodyScannerMotions_00", True),
        ("courtyard_laceShoe_00", True),
        ("downtown_stairs_00", True),
        ("flat_packBags_00", True),
        ("outdoors_fencing_01", True),
        ("outdoors_slalom_00.pkl", True),
        ("courtyard_hug_00", False),
        ("downtown_bus_00", False),
        ("flat_guitar", True),
        ("outdoors_freestyle_00", True),
        ("office_phoneCall_00", False),
        ("courtyard", False),
    ],
)
def test_in_3dpw_occ(sequence: str, expected: bool) -> None:
    assert in_3dpw_occ(sequence) is expected


def test_registry_names_fields_and_round_trip() -> None:
    assert set(REQUIRED) <= set(PROTOCOLS)
    for name, p in PROTOCOLS.items():
        d = p.to_dict()
        assert json.loads(json.dumps(d)) == d  # JSON-ready, stored with every result
        assert Protocol(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}) == p
        assert p.name == name and p.metrics and p.description and p.subset
    assert get_protocol("3dpw").gendered_gt and not get_protocol("synthcrowd").gendered_gt
    assert "60457274" in get_protocol("h36m_p2").subset and "60457274" not in get_protocol("h36m_p1").subset
    assert get_protocol("detector_sweep").score_thresholds == (
        0.0,
        0.1,
        0.2,
        0.3,
        0.4,
        0.5,
        0.6,
        0.7,
        0.8,
        0.9,
        0.99,
    )
    assert get_protocol("crowdpose_ap").ap_flavour == "crowdpose"
    with pytest.raises(KeyError, match="known protocols: .*3dpw_occ"):
        get_protocol("3dpw-occ")


def test_joint_selections_equal_spin_constants() -> None:
    assert (
        J.joint_indices("h36m17", "lsp14").tolist()
        == H36M_TO_J14
        == [6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10]
    )
    assert J.joint_indices("spin24", "lsp14").tolist() == SPIN_J24_TO_J17[:14]
    assert J.joint_indices("h36m17", "lsp14_h36m3").tolist() == SPIN_H36M_TO_J17
    assert J.joint_indices("spin24", "lsp14_h36m3").tolist() == SPIN_J24_TO_J17
    assert get_protocol("mpi_inf_3dhp").num_joints == 17 and get_protocol("3dpw").num_joints == 14


def _regressor(v: int, seed: int = 0) -> torch.Tensor:
    reg = torch.rand(17, v, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return reg / reg.sum(1, keepdim=True)  # rows sum to one, like J_regressor_h36m


def test_mesh_vs_mesh_centres_on_the_pelvis_before_selecting() -> None:
    g = torch.Generator().manual_seed(1)
    pred_v = torch.randn(3, 40, 3, generator=g, dtype=torch.float64)
    gt_v = torch.randn(3, 40, 3, generator=g, dtype=torch.float64)
    reg = _regressor(40)
    ej = J.mesh_vs_mesh(pred_v, gt_v, reg)
    # written out as SPIN's eval.py does it
    joints = torch.einsum("jv,bvc->bjc", reg, gt_v)
    np.testing.assert_allclose(ej.target, joints[:, H36M_TO_J14] - joints[:, [0]], atol=1e-12)
    assert ej.pred.shape == (3, 14, 3) and bool(ej.mask.all())
    moved = J.mesh_vs_mesh(pred_v + torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64), gt_v, reg)
    np.testing.assert_allclose(moved.pred, ej.pred, atol=1e-12)  # joints are root-relative
    assert moved.pred_vertices is not None and torch.equal(moved.target_vertices, gt_v)  # PVE: as given


def test_mesh_vs_spin24_roots_and_masks() -> None:
    g = torch.Generator().manual_seed(2)
    s = torch.cat([torch.randn(2, 24, 3, generator=g, dtype=torch.float64), torch.ones(2, 24, 1)], -1)
    spin = get_convention("spin24")
    lh, rh, pelvis = spin.index("left_hip"), spin.index("right_hip"), spin.index("pelvis")
    s[:, pelvis, :3] = 0.5 * (s[:, lh, :3] + s[:, rh, :3])  # a pelvis at the hip midpoint: both roots agree
    s[1, 0, 3] = 0  # an unlabelled right ankle
    pred_v, reg = torch.randn(2, 30, 3, generator=g, dtype=torch.float64), _regressor(30)
    mid = J.mesh_vs_spin24(pred_v, s, reg, gt_root="mid_hips")
    pel = J.mesh_vs_spin24(pred_v, s, reg, gt_root="pelvis")
    np.testing.assert_allclose(mid.target, pel.target, atol=1e-12)
    np.testing.assert_allclose(mid.target, s[:, SPIN_J24_TO_J17[:14], :3] - s[:, [pelvis], :3], atol=1e-12)
    assert mid.mask.sum() == 2 * 14 - 1 and not bool(mid.mask[1, 0])
    s[:, pelvis, :3] += 0.01  # a pelvis joint off the hip midpoint: the two roots now differ by 1 cm
    off = J.mesh_vs_spin24(pred_v, s, reg, gt_root="pelvis").target - mid.target
    np.testing.assert_allclose(off, torch.full_like(off, -0.01), atol=1e-12)
    mpi = J.mesh_vs_spin24(pred_v, s, reg, joint_set="lsp14_h36m3", gt_root="pelvis")
    assert mpi.pred.shape == (2, 17, 3) and float(mpi.target[:, 14].abs().max()) == 0.0  # pelvis at origin
    with pytest.raises(ValueError, match=r"\(B, 24, 4\)"):
        J.mesh_vs_spin24(pred_v, s[..., :3], reg)


# SPIN's datasets/preprocess/h36m.py: where its 17 extracted H36M joints (pelvis first) go in the 24.
SPIN_H36M_GLOBAL_IDX = [14, 3, 4, 5, 2, 1, 0, 16, 12, 17, 18, 9, 10, 11, 8, 7, 6]


def _spin_s24(s17: np.ndarray, centre: bool) -> np.ndarray:
    """(B, 24, 4) S as SPIN's H36M preprocessing writes it; ``centre=False`` leaves out its ``S17 -= S17[0]``."""
    s17 = s17 - s17[:, :1] if centre else s17
    s24 = np.zeros((s17.shape[0], 24, 4))
    s24[:, SPIN_H36M_GLOBAL_IDX, :3] = s17
    s24[:, SPIN_H36M_GLOBAL_IDX, 3] = 1.0
    return s24


def _spin_eval_mpjpe_mm(pred_vertices: np.ndarray, s24: np.ndarray, regressor: np.ndarray) -> float:
    """SPIN's eval.py for h36m-p1/p2, written out: GT is the stored S as it is, pred minus its pelvis."""
    gt_keypoints_3d = s24[:, SPIN_J24_TO_J17[:14], :-1]
    pred_keypoints_3d = np.einsum("jv,bvc->bjc", regressor, pred_vertices)
    pred_pelvis = pred_keypoints_3d[:, [0], :]
    pred_keypoints_3d = pred_keypoints_3d[:, SPIN_H36M_TO_J17[:14], :] - pred_pelvis
    error = np.sqrt(((pred_keypoints_3d - gt_keypoints_3d) ** 2).sum(-1)).mean(-1)
    return float(1000 * error.mean())


def _h36m_case(seed: int = 5) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Predicted vertices (4, 50, 3), a regressor (17, 50) and 17 GT joints (4, 17, 3) in SPIN's extraction
    order, in camera coordinates about 5 m away, whose hips do not sit symmetrically about the pelvis."""
    g = torch.Generator().manual_seed(seed)
    pred_v = torch.randn(4, 50, 3, generator=g, dtype=torch.float64)
    s17 = 0.3 * torch.randn(4, 17, 3, generator=g, dtype=torch.float64).numpy() + np.array([0.1, -0.2, 5.0])
    return pred_v, _regressor(50, seed=1), s17


def _protocol_mpjpe_mm(name: str, pred_v: torch.Tensor, s24: np.ndarray, reg: torch.Tensor, **root: str) -> float:
    """The protocol's MPJPE (its joint pipeline and metric); ``root`` overrides its ``gt_root``."""
    p = get_protocol(name)
    target = torch.from_numpy(s24)
    ej = J.mesh_vs_spin24(pred_v, target, reg, p.joint_set, **root) if root else p.eval_joints(pred_v, target, reg)
    assert bool(ej.mask.all())  # every J24_TO_J14 joint is in SPIN's H36M S
    metric = build_metrics(p, keep_per_sample=False)["mpjpe"]
    metric.update(ej.pred, ej.target)
    return float(metric.compute())


@pytest.mark.parametrize("name", ["h36m_p1", "h36m_p2"])
def test_h36m_protocols_use_spins_pelvis_centred_s_as_stored(name: str) -> None:
    pred_v, reg, s17 = _h36m_case()
    stored = _spin_s24(s17, centre=True)  # SPIN's file
    assert np.all(stored[:, get_convention("spin24").index("pelvis"), :3] == 0.0)
    spin_mm = _spin_eval_mpjpe_mm(pred_v.numpy(), stored, reg.numpy())
    assert _protocol_mpjpe_mm(name, pred_v, stored, reg) == pytest.approx(spin_mm, rel=0, abs=1e-9)
    ej = get_protocol(name).eval_joints(pred_v, torch.from_numpy(stored), reg)
    assert torch.equal(ej.target, torch.from_numpy(stored[:, SPIN_J24_TO_J17[:14], :3]))  # untouched, bit for bit
    # not vacuous: centring on the hip midpoint (the previous rule) gives another number on these arrays
    spin = get_convention("spin24")
    mid = 0.5 * (stored[:, spin.index("left_hip"), :3] + stored[:, spin.index("right_hip"), :3])
    assert np.linalg.norm(mid, axis=-1).min() > 0.05
    assert abs(_protocol_mpjpe_mm(name, pred_v, stored, reg, gt_root="mid_hips") - spin_mm) > 1.0


@pytest.mark.parametrize("name", ["h36m_p1", "h36m_p2"])
def test_h36m_protocols_centre_an_uncentred_s_as_spin_preprocessing_does(name: str) -> None:
    pred_v, reg, s17 = _h36m_case()
    raw = _spin_s24(s17, centre=False)  # camera coordinates, without SPIN's S17 -= S17[0]
    spin_mm = _spin_eval_mpjpe_mm(pred_v.numpy(), _spin_s24(s17, centre=True), reg.numpy())
    assert _protocol_mpjpe_mm(name, pred_v, raw, reg) == pytest.approx(spin_mm, rel=0, abs=1e-9)
    assert _spin_eval_mpjpe_mm(pred_v.numpy(), raw, reg.numpy()) > spin_mm + 1000  # as stored it is unusable


def test_panoptic_joints_visibility_follows_crmh() -> None:
    g = torch.Generator().manual_seed(3)
    gt = torch.cat([torch.randn(2, 19, 3, generator=g, dtype=torch.float64), torch.ones(2, 19, 1)], -1)
    pan, h36m = get_convention("panoptic19"), get_convention("h36m17")
    gt[0, pan.index("left_wrist"), 3] = 0.05  # below CRMH's 0.1 confidence
    ej = J.panoptic_joints(torch.randn(4, 30, 3, generator=g, dtype=torch.float64), gt, _regressor(30))
    assert ej.pred.shape == (4, 17, 3) and ej.target.shape == (2, 17, 3)
    never = [h36m.index(n) for n in ("spine", "jaw", "head_h36m")]
    assert not bool(ej.mask[:, never].any())
    assert not bool(ej.mask[0, h36m.index("left_wrist")]) and bool(ej.mask[1, h36m.index("left_wrist")])
    assert bool(ej.mask[:, h36m.index("neck")].all()) and float(ej.target[:, 0].abs().max()) == 0.0
    neck = gt[:, pan.index("neck_openpose"), :3] - gt[:, pan.index("mid_hip"), :3]
    np.testing.assert_allclose(ej.target[:, h36m.index("neck")], neck, atol=1e-12)
    assert ej.mask.sum(1).tolist() == [13, 14]  # pelvis (the root), neck and 12 limb joints, less one wrist
    with pytest.raises(ValueError, match="no 3D joint pipeline"):
        get_protocol("coco_ap").eval_joints(torch.zeros(1, 30, 3), torch.zeros(1, 30, 3), _regressor(30))


def test_3dpw_protocol_end_to_end_with_the_body_model() -> None:
    from ochmr_lit.body import BodyModel
    from ochmr_lit.geometry import axis_angle_to_rotmat

    body = BodyModel().double()
    g = torch.Generator().manual_seed(4)
    pose = axis_angle_to_rotmat(0.3 * torch.randn(2, 24, 3, generator=g, dtype=torch.float64))
    betas = torch.randn(2, 10, generator=g, dtype=torch.float64)
    gt = body(pose, betas)
    turned = pose.clone()
    turned[:, 0] = axis_angle_to_rotmat(torch.tensor([0.0, 0.7, 0.0], dtype=torch.float64)) @ pose[:, 0]
    pred = body(turned, betas)
    p = get_protocol("3dpw")
    ej = p.eval_joints(pred.vertices, gt.vertices, body.J_regressor_h36m)
    np.testing.assert_allclose(ej.target, gt.joints_h36m[:, H36M_TO_J14] - gt.joints_h36m[:, [0]], atol=1e-9)
    metrics = build_metrics(p, keep_per_sample=False)
    assert [type(m) for m in metrics.values()] == [MPJPE, PAMPJPE, PVE, PAMPJPEDepth, PAMPJPEPlane]
    for name in ("mpjpe", "pa_mpjpe", "pa_mpjpe_depth", "pa_mpjpe_plane"):
        metrics[name].update(ej.pred, ej.target, ej.mask)
    metrics["pve"].update(ej.pred_vertices, ej.target_vertices)
    for name in ("pa_mpjpe", "pa_mpjpe_depth", "pa_mpjpe_plane"):
        assert float(metrics[name].compute()) < 1e-3, name  # a global rotation is aligned away
    assert float(metrics["mpjpe"].compute()) > 50 and float(metrics["pve"].compute()) > 50


def test_build_metrics(fixtures_dir: Path) -> None:
    assert isinstance(build_metrics("panoptic")["matched_mpjpe"], MatchedMPJPE)
    assert build_metrics("mpi_inf_3dhp")["mpjpe"].num_points == 17
    coco = fixtures_dir / "coco" / "test_coco.json"
    ap = build_metrics("ochuman_ap", keypoint_ground_truth=coco)["keypoint_ap"]
    assert isinstance(ap, KeypointAP) and np.array_equal(ap.sigmas, get_convention("coco17").sigmas)
    crowd = build_metrics(
        "crowdpose_ap", keypoint_ground_truth=fixtures_dir / "crowdpose" / "test_crowdpose.json"
    )
    assert crowd["keypoint_ap"].flavour == "crowdpose"
    sweep = build_metrics("detector_sweep_coco", keypoint_ground_truth=coco)["detector_sweep"]
    assert isinstance(sweep, DetectorSweep) and len(sweep.thresholds) == 11
    with pytest.raises(ValueError, match="keypoint_ground_truth"):
        build_metrics("coco_ap")
    with pytest.raises(ValueError, match="detector_sweep_crowdpose"):
        build_metrics("detector_sweep", keypoint_ground_truth=coco)


def test_the_evaluation_measures_the_mesh_errors_its_protocol_declares(fixtures_dir: Path) -> None:
    assert build_metrics("coco_ap", names=MESH_ERRORS) == {}  # nothing to build: no keypoint file needed
    for name, protocol in PROTOCOLS.items():
        if not protocol.pipeline:
            assert protocol.mesh_protocol is get_protocol(SPIN_MESH_PROTOCOL)
            continue
        declared = [m for m in protocol.metrics if m in MESH_ERRORS]
        evaluation = MeshEvaluation(name)
        assert list(evaluation.mesh_errors) == declared, name
        built = build_metrics(protocol, names=MESH_ERRORS)
        for metric, expected in zip(evaluation.mesh_errors.values(), built.values(), strict=True):
            assert type(metric) is type(expected) and metric.num_points == expected.num_points
        assert list(evaluation.compute())[:len(MESH_ERRORS)] == list(MESH_ERRORS)  # every key, NaN where not measured
    assert list(MeshEvaluation("3doh").mesh_errors) == ["mpjpe", "pa_mpjpe"]  # 3DOH reports no PVE
    assert MeshEvaluation("panoptic").mesh_errors.keys() == set()  # matched MPJPE only
    crowd = MeshEvaluation("crowdpose_ap", keypoint_ground_truth=fixtures_dir / "crowdpose" / "test_crowdpose.json")
    assert list(crowd.mesh_errors) == list(get_protocol(SPIN_MESH_PROTOCOL).metrics) == list(MESH_ERRORS)
    assert (crowd.pipeline, crowd.joint_set, crowd.target) == ("mesh_vs_mesh", "lsp14", "smpl")


def test_detector_sweep_counts_boxes_and_filters_predictions(fixtures_dir: Path) -> None:
    gt_file = fixtures_dir / "coco" / "test_coco.json"
    data = json.loads(gt_file.read_text())
    rng = np.random.default_rng(0)
    anns = [a for a in data["annotations"] if a["num_keypoints"] > 0]
    ids = np.array([a["image_id"] for a in anns] * 2)  # each person found by a good and a poor box
    kps = np.concatenate([np.array([a["keypoints"] for a in anns], dtype=np.float64).reshape(-1, 17, 3)] * 2)
    kps[len(anns) :, :, :2] += rng.normal(0, 25, size=(len(anns), 17, 2))
    kps[..., 2] = 1
    box = np.concatenate([rng.uniform(0.6, 1.0, len(anns)), rng.uniform(0.0, 0.6, len(anns))])
    scores = box * 0.9
    thresholds = (0.0, 0.3, 0.6, 0.99)
    sweep = DetectorSweep(gt_file, get_convention("coco17").sigmas, thresholds=thresholds)
    sweep.update(
        torch.from_numpy(ids), torch.from_numpy(kps), torch.from_numpy(scores), torch.from_numpy(box)
    )
    out = sweep.compute()
    assert out["threshold"].tolist() == list(thresholds)
    assert out["num_boxes"].tolist() == [float((box >= t).sum()) for t in thresholds]
    for i, t in enumerate(thresholds):
        keep = box >= t
        ref = KeypointAP(gt_file, get_convention("coco17").sigmas)
        ref.update(torch.from_numpy(ids[keep]), torch.from_numpy(kps[keep]), torch.from_numpy(scores[keep]))
        assert float(out["AP"][i]) == pytest.approx(float(ref.compute()["AP"]), abs=1e-12)
    assert float(out["AP"][2]) == pytest.approx(1.0)  # only the exact people are left at 0.6
    table = format_sweep_table(out)
    assert table.splitlines()[2].startswith(f"| 0.00 | {2 * len(anns)} |") and len(table.splitlines()) == 6
