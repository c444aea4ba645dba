"""One occlusion-bucket rule: SynthCrowd's annotator, the protocol's bucket function and every per-bucket summary
put a ratio exactly on an edge in the same bucket (the higher one)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ochmr_lit.body import BodyModel
from ochmr_lit.data.synthcrowd import annotate
from ochmr_lit.data.synthcrowd.generate import _annotation_record
from ochmr_lit.data.synthcrowd.writer import ANNOTATION_FIELDS
from ochmr_lit.eval.buckets import (
    OCCLUSION_BUCKET_EDGES,
    OCCLUSION_BUCKETS,
    describe_occlusion_buckets,
    occlusion_bucket,
    result_bucket_members,
)
from ochmr_lit.eval.mesh_evaluation import MeshEvaluation
from ochmr_lit.eval.protocols import get_protocol
from ochmr_lit.geometry import axis_angle_to_rotmat
from ochmr_lit.metrics import bucket_summary

#: Every edge, and a ratio just below each inner edge (representable in the annotations' 6 decimals).
RATIOS = np.array([0.0, 0.099999, 0.10, 0.399999, 0.40, 1.0])
#: The generator's rule, as the dataset's annotations document it: [0, 0.10), [0.10, 0.40), [0.40, 1].
EXPECTED = ["none", "none", "partial", "partial", "heavy", "heavy"]


def _person(ratio: float) -> dict:
    """The fields the annotation writer reads of one generated person, all zero but the occlusion ratio."""
    return {"keypoints": np.zeros((17, 3)), "bbox": [0.0, 0.0, 1.0, 1.0], "bbox_amodal": [0.0, 0.0, 1.0, 1.0],
            "area": 1, "segmentation": {}, "num_keypoints": 0, "visibility_code": [0] * 17,
            "occlusion_ratio": ratio, "body_center": [0.0, 0.0], "pose": np.zeros(72), "betas": np.zeros(10),
            "transl": np.zeros(3), "gender": 0, "joints_3d": np.zeros((24, 3)), "user_pose": False,
            "part": np.zeros((24, 3)), "S": np.zeros((24, 4)), "openpose": np.zeros((25, 3)),
            "center": [0.0, 0.0], "scale": 1.0}


def _mesh_evaluation_counts(ratios: np.ndarray) -> dict[str, float]:
    """``MeshEvaluation.compute()`` of the SynthCrowd protocol over one person per ratio."""
    body = BodyModel(None)
    n = len(ratios)
    gen = torch.Generator().manual_seed(0)
    pose = torch.randn(n, 72, generator=gen) * 0.2
    betas = torch.zeros(n, 10)
    batch = {"has_smpl": torch.ones(n, dtype=torch.bool), "smpl_pose": pose, "smpl_betas": betas,
             "gender": torch.zeros(n, dtype=torch.int64), "index": torch.arange(n),
             "occlusion_ratio": torch.tensor(ratios, dtype=torch.float32),
             "distractor": torch.zeros(n), "dataset": ["synthcrowd"] * n}
    with torch.no_grad():
        pred = body(axis_angle_to_rotmat((pose * 0.5).view(n, 24, 3)), betas)
    evaluation = MeshEvaluation("synthcrowd")
    evaluation.update(batch, {"vertices": pred.vertices}, body)
    return evaluation.compute()


def test_the_edges_are_one_definition() -> None:
    assert OCCLUSION_BUCKET_EDGES == (0.0, 0.10, 0.40, 1.0)
    assert get_protocol("synthcrowd").occlusion_buckets == OCCLUSION_BUCKET_EDGES
    assert annotate.occlusion_bucket is occlusion_bucket and annotate.OCCLUSION_BUCKETS is OCCLUSION_BUCKETS
    assert describe_occlusion_buckets(percent=True) == "none < 10 %, partial 10 to < 40 %, heavy >= 40 %"
    assert ANNOTATION_FIELDS["occlusion_bucket"].endswith("none < 0.10, partial 0.10 to < 0.40, heavy >= 0.40")


def test_annotator_protocol_and_summaries_agree_at_the_edges() -> None:
    assert [_annotation_record(_person(float(r)))["occlusion_bucket"] for r in RATIOS] == EXPECTED
    assert [occlusion_bucket(r) for r in RATIOS] == EXPECTED
    members = result_bucket_members(RATIOS, np.zeros(len(RATIOS)))
    assert [b for i in range(len(RATIOS)) for b in OCCLUSION_BUCKETS if members[b][i]] == EXPECTED
    expected_counts = [EXPECTED.count(b) for b in OCCLUSION_BUCKETS]
    rows = bucket_summary(np.ones(len(RATIOS)), RATIOS, get_protocol("synthcrowd").occlusion_buckets)
    assert [r["count"] for r in rows] == [*expected_counts, 0] == [2, 2, 2, 0]
    metrics = _mesh_evaluation_counts(RATIOS)
    assert [metrics[f"count_{b}"] for b in OCCLUSION_BUCKETS] == expected_counts


def test_bucket_summary_means_unknown_and_distractor_rows() -> None:
    ratios = np.array([0.0, 0.0999, 0.10, 0.25, 0.3999, 0.40, 0.4001, 1.0])
    names = [occlusion_bucket(r) for r in ratios]
    assert names == ["none", "none", "partial", "partial", "partial", "heavy", "heavy", "heavy"]
    errors = np.arange(1.0, 9.0)  # one distinct error per person, mm
    rows = bucket_summary(errors, ratios, OCCLUSION_BUCKET_EDGES)
    assert [r["count"] for r in rows] == [names.count(b) for b in OCCLUSION_BUCKETS] + [0] == [2, 3, 3, 0]
    assert [r["mean"] for r in rows[:3]] == [1.5, 4.0, 7.0]  # (1+2)/2, (3+4+5)/3, (6+7+8)/3
    assert [r["name"] for r in rows] == ["[0, 0.1)", "[0.1, 0.4)", "[0.4, 1]", "unknown"]
    # unknown and out-of-range ratios are in no bucket (occlusion_bucket refuses them)
    rows = bucket_summary([1.0, 2.0, 3.0], [np.nan, 1.5, 0.40], OCCLUSION_BUCKET_EDGES,
                          distractor=np.array([1.0, np.nan, 1.0]))
    assert [r["count"] for r in rows] == [0, 0, 1, 2, 2] and rows[-1]["name"] == "distractor"
    assert rows[-1]["mean"] == 2.0  # the distractor row ignores occlusion: people 1 and 3
    for bad in (math.nan, 1.5, -0.1):
        with pytest.raises(ValueError, match="occlusion ratio must be in"):
            occlusion_bucket(bad)
