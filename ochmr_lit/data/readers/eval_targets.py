"""Evaluation-only labels: the ground truth a protocol compares against, carried from a record into its sample.

The sample schema holds COCO-17 3D keypoints; some protocols compare against joints of another convention
(SPIN's 24-joint ``S`` for H36M / MPI-INF-3DHP, LSP-14 for 3DOH, Panoptic's 19 for CMU Panoptic). Their
readers keep those joints in ``PersonRecord.extra``; :class:`EvalTargetTransform` adds them to the samples of
evaluation splits under the keys of :data:`~ochmr_lit.data.schema.EVAL_TARGET_KEYS`. Evaluation splits are not
augmented, so the joints stay in the record's camera frame, as the predictions of an unaugmented crop are.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from ochmr_lit.data.schema import EVAL_TARGET_KEYS, PersonRecord
from ochmr_lit.data.transforms import TopDownTransform

#: Joint targets and their number of joints.
JOINT_TARGETS: dict[str, int] = {"joints_spin24": 24, "joints_lsp14": 14, "joints_panoptic19": 19}


def eval_target(record: PersonRecord, key: str, source: str) -> torch.Tensor:
    """The value of sample key ``key`` from ``record.extra[source]``.

    Joint targets become (J, 4) float32 ``[x, y, z, confidence]`` metres: a (J, 3) source gets confidence 1,
    a missing one all zeros (masked). ``sequence_code`` becomes a () int64 (-1 when missing).

    Raises:
        ValueError: naming the sample and the extra key when the source has the wrong shape.
    """
    value = record.extra.get(source)
    if key == "sequence_code":
        return torch.tensor(-1 if value is None else int(value), dtype=torch.int64)
    joints = JOINT_TARGETS[key]
    out = np.zeros((joints, 4), np.float32)
    if value is not None:
        array = np.asarray(value, np.float64)
        if array.shape not in ((joints, 3), (joints, 4)):
            raise ValueError(f"{record.sample_id}: extra['{source}'] has shape {array.shape}, expected "
                             f"({joints}, 3) or ({joints}, 4) metres for the evaluation target '{key}'")
        out[:, : array.shape[1]] = array
        if array.shape[1] == 3:
            out[:, 3] = 1.0
    return torch.from_numpy(out)


class EvalTargetTransform:
    """A split's :class:`TopDownTransform` plus evaluation targets from ``record.extra``.

    Args:
        base: the split's transform; it must not augment (targets are copied as they are, unrotated).
        sources: sample key (of ``EVAL_TARGET_KEYS``) -> the ``record.extra`` key holding its value.
    """

    def __init__(self, base: TopDownTransform, sources: Mapping[str, str]):
        if base.augment is not None:
            raise ValueError("evaluation targets are added only to splits without augmentation (they are not "
                             "rotated or flipped); set augment to null for the evaluated split")
        unknown = sorted(set(sources) - set(EVAL_TARGET_KEYS))
        if unknown:
            raise ValueError(f"unknown evaluation target keys {unknown}; known: {sorted(EVAL_TARGET_KEYS)}")
        self.base = base
        self.sources = dict(sources)

    def __call__(self, record: PersonRecord, rng: np.random.Generator | None = None,
                 image: np.ndarray | None = None, epoch: int | None = None) -> dict:
        sample = self.base(record, rng=rng, image=image, epoch=epoch)
        for key, source in self.sources.items():
            sample[key] = eval_target(record, key, source)
        return sample
