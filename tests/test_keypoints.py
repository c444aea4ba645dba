"""The keypoint convention registry, checked against SPIN's index lists, pycocotools and real
annotation files."""

import json

import cv2
import numpy as np
import pytest
import torch
from pycocotools.cocoeval import COCOeval

from ochmr_lit.body.keypoints import (
    H36M_TO_J14,
    _build,
    available_conventions,
    convert_keypoints,
    flip_keypoints,
    get_convention,
    keypoint_mapping,
)

EXPECTED_SIZES = {
    "coco17": 17,
    "crowdpose14": 14,
    "ochuman19": 19,
    "lsp14": 14,
    "h36m17": 17,
    "smpl24": 24,
    "smpl_face29": 29,
    "openpose25": 25,
    "panoptic19": 19,
    "spin24": 24,
}

# Index lists copied from SPIN (constants.py and datasets/preprocess/*.py), the reference implementation.
SPIN_J24_TO_J14 = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 18]
SPIN_J24_FLIP_PERM = [5, 4, 3, 2, 1, 0, 11, 10, 9, 8, 7, 6, 12, 13, 14, 15, 16, 17, 18, 19, 21, 20, 23, 22]
SPIN_SMPL_JOINTS_FLIP_PERM = [0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 14, 13, 15, 17, 16, 19, 18, 21, 20,
                              23, 22]
SPIN_OPENPOSE_FLIP_PERM = [0, 1, 5, 6, 7, 2, 3, 4, 8, 12, 13, 14, 9, 10, 11, 16, 15, 18, 17, 22, 23, 24,
                           19, 20, 21]
# h36m_extract.py: the 17 J_regressor_h36m-ordered joints go to these slots of the 24 GT joints.
SPIN_H36M_GLOBAL_IDX = [14, 3, 4, 5, 2, 1, 0, 16, 12, 17, 18, 9, 10, 11, 8, 7, 6]
# coco.py: the 17 COCO keypoints go to these slots of the 24 GT joints.
SPIN_COCO_JOINTS_IDX = [19, 20, 21, 22, 23, 9, 8, 10, 7, 11, 6, 3, 2, 4, 1, 5, 0]
# OCHuman's raw order as the OCHuman API's COCO conversion indexes it.
OCHUMAN_RAW = [
    "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow", "left_wrist",
    "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "head", "neck", "right_ear", "left_ear", "nose", "right_eye", "left_eye",
]


def test_registry_has_every_convention_with_its_size():
    for name, size in EXPECTED_SIZES.items():
        conv = get_convention(name)
        assert conv.name == name and conv.num_joints == size == len(conv.flip_perm)
    assert set(EXPECTED_SIZES) <= set(available_conventions())
    assert get_convention("smpl_face29").joint_names == get_convention("smpl24").joint_names + (
        "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    )


def test_unknown_convention_and_joint_errors_name_the_choices():
    with pytest.raises(ValueError, match="coco17"):
        get_convention("coco18")
    with pytest.raises(ValueError, match="left_shoulder"):
        get_convention("coco17").index("head_top")
    assert get_convention("coco17").index("right_wrist") == 10


@pytest.mark.parametrize("name", sorted(EXPECTED_SIZES) + ["spin_extra9"])
def test_flip_perm_is_an_involution_that_swaps_sides(name):
    conv = get_convention(name)
    perm = conv.flip_perm
    assert np.array_equal(perm[perm], np.arange(conv.num_joints))
    for j, joint in enumerate(conv.joint_names):
        partner = conv.joint_names[perm[j]]
        if joint.startswith("left_"):
            assert partner == "right_" + joint[5:]
        elif joint.startswith("right_"):
            assert partner == "left_" + joint[6:]
        else:
            assert perm[j] == j
    assert sum(n.startswith("left_") for n in conv.joint_names) == sum(
        n.startswith("right_") for n in conv.joint_names
    )


def test_flip_perms_equal_reference_lists():
    coco_flip = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]
    assert get_convention("coco17").flip_perm.tolist() == coco_flip
    assert get_convention("spin24").flip_perm.tolist() == SPIN_J24_FLIP_PERM
    assert get_convention("smpl24").flip_perm.tolist() == SPIN_SMPL_JOINTS_FLIP_PERM
    assert get_convention("openpose25").flip_perm.tolist() == SPIN_OPENPOSE_FLIP_PERM
    assert get_convention("crowdpose14").flip_perm.tolist() == [1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 12, 13]


def test_registry_rejects_inconsistent_conventions():
    with pytest.raises(ValueError, match="mirror"):
        _build("bad", ["left_knee", "nose"], "test")
    with pytest.raises(ValueError, match="repeats"):
        _build("bad", ["nose", "nose"], "test")
    with pytest.raises(ValueError, match="snake_case"):
        _build("bad", ["Left Knee"], "test")
    with pytest.raises(ValueError, match="sigmas"):
        _build("bad", ["nose"], "test", sigmas=[0.1, 0.2])


def test_h36m_to_lsp14_equals_spin():
    assert H36M_TO_J14 == [6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10]
    assert keypoint_mapping("h36m17", "lsp14").tolist() == H36M_TO_J14


def test_spin24_to_lsp14_equals_spin_j24_to_j14():
    assert keypoint_mapping("spin24", "lsp14").tolist() == SPIN_J24_TO_J14


def test_h36m_and_coco_land_in_spin24_where_spin_puts_them():
    m = keypoint_mapping("h36m17", "spin24")
    for h36m_idx, slot in enumerate(SPIN_H36M_GLOBAL_IDX):
        assert m[slot] == h36m_idx
    assert (m >= 0).sum() == 17  # nothing else matched
    m = keypoint_mapping("coco17", "spin24")
    for coco_idx, slot in enumerate(SPIN_COCO_JOINTS_IDX):
        assert m[slot] == coco_idx
    assert (m >= 0).sum() == 17


def test_coco_to_crowdpose_leaves_head_top_and_neck_absent():
    m = keypoint_mapping("coco17", "crowdpose14")
    assert m.tolist() == [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, -1, -1]
    kp = np.random.default_rng(0).uniform(1, 100, size=(2, 17, 3))
    out, present = convert_keypoints(kp, "coco17", "crowdpose14")
    assert present.tolist() == [True] * 12 + [False, False]
    assert np.array_equal(out[:, :12], kp[:, 5:])
    assert np.all(out[:, 12:] == 0)
    # CrowdPose's head top and neck are the LSP ones of SPIN's 24 ground-truth joints.
    assert keypoint_mapping("crowdpose14", "spin24")[[12, 13]].tolist() == [13, 12]


def test_smpl_to_coco_shares_limbs_not_face():
    out, present = convert_keypoints(torch.arange(24 * 3.0).reshape(24, 3), "smpl24", "coco17")
    assert present.tolist() == [False] * 5 + [True] * 12
    assert keypoint_mapping("smpl24", "coco17").tolist()[5:] == [16, 17, 18, 19, 20, 21, 1, 2, 4, 5, 7, 8]
    assert keypoint_mapping("smpl_face29", "coco17").tolist()[:5] == [24, 25, 26, 27, 28]
    # SMPL's pelvis, neck and head are their own points: no other convention's joint maps to them.
    for conv in EXPECTED_SIZES:
        if conv not in ("smpl24", "smpl_face29"):
            assert (keypoint_mapping("smpl24", conv)[:, None] != np.array([0, 12, 15])).all()


def test_ochuman_order_matches_the_raw_file_names():
    names = [n.replace("head", "head_ochuman").replace("neck", "neck_ochuman") for n in OCHUMAN_RAW]
    assert get_convention("ochuman19").joint_names == tuple(names)
    # The OCHuman API's conversion to COCO-17 indexes its raw names by COCO's names.
    expected = [OCHUMAN_RAW.index(n) for n in get_convention("coco17").joint_names]
    assert keypoint_mapping("ochuman19", "coco17").tolist() == expected


def test_names_and_order_equal_the_annotation_files(fixtures_dir):
    for rel in ("coco/test_coco.json", "ochuman/test_ochuman.json"):
        cats = json.loads((fixtures_dir / rel).read_text())["categories"]
        assert tuple(cats[0]["keypoints"]) == get_convention("coco17").joint_names
    cats = json.loads((fixtures_dir / "crowdpose/test_crowdpose.json").read_text())["categories"]
    file_names = [{"head": "head_top"}.get(n, n) for n in cats[0]["keypoints"]]
    assert tuple(file_names) == get_convention("crowdpose14").joint_names


def test_sigmas():
    coco = get_convention("coco17").sigmas
    assert coco is not None
    official = COCOeval(iouType="keypoints").params.kpt_oks_sigmas
    assert np.allclose(coco, official, rtol=0, atol=1e-12)
    crowd = get_convention("crowdpose14").sigmas
    expected = np.array([0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89, 0.79, 0.79])
    expected = expected / 10
    assert crowd is not None and np.allclose(crowd, expected, rtol=0, atol=1e-12)
    for name in ("lsp14", "h36m17", "smpl24", "openpose25", "spin24"):
        assert get_convention(name).sigmas is None


def test_convert_keypoints_torch_is_differentiable_and_checks_shape():
    kp = torch.randn(3, 2, 17, 3, dtype=torch.float64, requires_grad=True)
    out, present = convert_keypoints(kp, "h36m17", "lsp14")
    assert out.shape == (3, 2, 14, 3) and present.dtype == torch.bool and bool(present.all())
    assert torch.equal(out, kp[..., H36M_TO_J14, :])
    out.sum().backward()
    counts = torch.zeros(17, dtype=torch.float64)
    counts[H36M_TO_J14] = 1.0
    assert torch.equal(kp.grad[0, 0, :, 0], counts)
    with pytest.raises(ValueError, match="17 joints of 'h36m17'"):
        convert_keypoints(torch.zeros(2, 14, 3), "h36m17", "lsp14")


def test_flip_keypoints_follows_cv2_flip_and_is_an_involution():
    width, height = 64, 48
    rng = np.random.default_rng(3)
    xy = np.concatenate([rng.integers(0, width, (17, 1)), rng.integers(0, height, (17, 1))], 1)
    kp = np.concatenate([xy, rng.integers(0, 3, (17, 1))], 1).astype(np.float64)
    flipped = flip_keypoints(kp, "coco17", width)
    assert np.array_equal(flip_keypoints(flipped, "coco17", width), kp)
    # Joint 5 (left_shoulder) of the flipped image is where cv2.flip moved the right shoulder (joint 6).
    img = np.zeros((height, width), np.uint8)
    x, y = int(kp[6, 0]), int(kp[6, 1])
    img[y, x] = 255
    ys, xs = np.nonzero(cv2.flip(img, 1))
    assert (xs[0], ys[0]) == (flipped[5, 0], flipped[5, 1])
    assert flipped[5, 2] == kp[6, 2]
    # Torch, batched, with one width per sample.
    kp_t = torch.from_numpy(np.stack([kp, kp]))
    out = flip_keypoints(kp_t, "coco17", torch.tensor([64.0, 100.0], dtype=torch.float64))
    assert torch.equal(out[0], torch.from_numpy(flipped))
    assert torch.equal(out[1, :, 0], 99.0 - kp_t[1, get_convention("coco17").flip_perm.tolist(), 0])
