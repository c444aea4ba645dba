"""The result buckets: occlusion buckets by occlusion ratio, and the distractor bucket.

The one definition of the occlusion buckets. SynthCrowd's generator writes each person's bucket into its
annotations with :func:`occlusion_bucket`, and every evaluation groups people with the same edges and the same
rule (``ochmr_lit.metrics.per_sample.bucket_index``: bucket ``i`` holds ``e_i <= r < e_{i+1}``, the last one
also its upper edge), so a ratio exactly on an edge opens the higher bucket: 0.10 is partial, 0.40 heavy.
"""

from __future__ import annotations

import numpy as np

from ochmr_lit.metrics.per_sample import bucket_index

#: SynthCrowd's occlusion buckets by occlusion ratio (share of a person hidden by others), ``[low, high)``:
#: none below 10 %, partial from 10 % to below 40 %, heavy from 40 % (1.0 included). Each person with a known
#: ratio is in exactly one of them.
OCCLUSION_BUCKETS: dict[str, tuple[float, float]] = {
    "none": (0.0, 0.10),
    "partial": (0.10, 0.40),
    "heavy": (0.40, 1.0),
}

#: The bucket edges ``(0, 0.10, 0.40, 1)``, for per-bucket summaries (``ochmr_lit.metrics.per_sample.bucket_summary``)
#: and a protocol's ``occlusion_buckets``.
OCCLUSION_BUCKET_EDGES: tuple[float, ...] = (*(low for low, _ in OCCLUSION_BUCKETS.values()),
                                             list(OCCLUSION_BUCKETS.values())[-1][1])

#: The bucket of people whose crop shows more visible pixels of one other person than of themselves
#: (``ochmr_lit.data.distractor``). It overlaps the occlusion buckets: a person may be in one of them and in it.
DISTRACTOR_BUCKET = "distractor"

#: Every bucket of the per-bucket results, in report order: the occlusion buckets, then the distractor bucket.
RESULT_BUCKETS: tuple[str, ...] = (*OCCLUSION_BUCKETS, DISTRACTOR_BUCKET)


def occlusion_bucket(ratio: float) -> str:
    """The bucket of an occlusion ratio (a share in [0, 1]): ``none`` below 0.10, ``heavy`` from 0.40, else
    ``partial``.

    Raises:
        ValueError: the ratio is NaN or outside [0, 1].
    """
    ratio = float(ratio)
    index = int(bucket_index(ratio, OCCLUSION_BUCKET_EDGES))
    if index < 0:
        raise ValueError(f"occlusion ratio must be in [0, 1], got {ratio}")
    return list(OCCLUSION_BUCKETS)[index]


def result_bucket_members(occlusion: np.ndarray, distractor: np.ndarray) -> dict[str, np.ndarray]:
    """Which people each bucket of :data:`RESULT_BUCKETS` holds.

    Args:
        occlusion: (N,) occlusion ratios in [0, 1]; NaN (unknown) people are in no occlusion bucket.
        distractor: (N,) distractor flags, 1 / 0; NaN (unknown) people are not in the distractor bucket.

    Returns:
        bucket name -> (N,) bool membership.
    """
    index = bucket_index(np.asarray(occlusion, dtype=np.float64).reshape(-1), OCCLUSION_BUCKET_EDGES)
    members = {name: index == i for i, name in enumerate(OCCLUSION_BUCKETS)}
    members[DISTRACTOR_BUCKET] = np.asarray(distractor, dtype=np.float64).reshape(-1) == 1.0
    return members


def describe_occlusion_buckets(percent: bool = False) -> str:
    """The bucket rule in words, from :data:`OCCLUSION_BUCKETS`.

    Args:
        percent: edges in per cent (``none < 10 %, partial 10 to < 40 %, heavy >= 40 %``) rather than as
            ratios (``none < 0.10, partial 0.10 to < 0.40, heavy >= 0.40``).
    """
    def number(value: float) -> str:
        return f"{100 * value:g}" if percent else f"{value:.2f}"

    unit = " %" if percent else ""
    (first, (_, first_high)), *middle, (last, (last_low, _)) = OCCLUSION_BUCKETS.items()
    return ", ".join([f"{first} < {number(first_high)}{unit}",
                      *(f"{name} {number(low)} to < {number(high)}{unit}" for name, (low, high) in middle),
                      f"{last} >= {number(last_low)}{unit}"])
