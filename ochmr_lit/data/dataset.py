"""A map-style dataset over person records, and the seeded sampler that drives it.

Augmentation randomness comes from ``np.random.default_rng([seed, epoch, index])``: the same sample gets
the same augmentation for a given seed and epoch, whatever the number of workers or processes. The
:class:`SeededSampler` yields ``(epoch, index)`` keys and splits them over DDP ranks itself (the
trainer configs set ``use_distributed_sampler: false`` so Lightning does not replace it).

Bad samples (``data.on_bad_sample``): with ``raise`` a sample whose loading raises
:class:`BadSampleError` stops the run with that error's message. With ``skip`` the dataset returns a
:class:`BadSample` marker instead (it crosses DataLoader worker processes), and
:func:`collate_skipping_bad` leaves it out of the batch and counts it by reason in ``batch["bad_samples"]``;
a batch whose samples all failed holds only the counts (:func:`is_empty_batch`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler, default_collate

from ochmr_lit.data.schema import PersonRecord
from ochmr_lit.data.transforms import BadSampleError, TopDownTransform
from ochmr_lit.errors import ConfigError

#: Values of ``data.on_bad_sample``.
BAD_SAMPLE_POLICIES: tuple[str, ...] = ("raise", "skip")


@dataclass(frozen=True)
class BadSample:
    """Stands in for a sample that could not be built (policy ``skip``): why, which one, and the message."""

    reason: str
    sample_id: str
    message: str


class TopDownDataset(Dataset):
    """Person records + a :class:`TopDownTransform` -> samples of the one schema.

    Args:
        records: the people of this split.
        transform: builds a sample from a record, called as ``transform(record, rng=..., epoch=...)`` (the
            epoch of the sampler's key, for augmentation that changes over training).
        seed: base seed of the augmentation randomness.
        on_bad_sample: ``raise`` (a :class:`BadSampleError` propagates) or ``skip`` (a :class:`BadSample`
            marker is returned in its place; batch with :func:`collate_skipping_bad`).
    """

    def __init__(self, records: Sequence[PersonRecord], transform: TopDownTransform, seed: int = 0,
                 on_bad_sample: str = "raise"):
        if on_bad_sample not in BAD_SAMPLE_POLICIES:
            raise ConfigError(f"data.on_bad_sample={on_bad_sample!r}; use one of {list(BAD_SAMPLE_POLICIES)}")
        self.records = list(records)
        self.transform = transform
        self.seed = int(seed)
        self.on_bad_sample = on_bad_sample

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: int | tuple[int, int]) -> dict | BadSample:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        record = self.records[index]
        rng = np.random.default_rng([self.seed, int(epoch), int(index)])
        try:
            sample = self.transform(record, rng=rng, epoch=int(epoch))
        except BadSampleError as error:
            if self.on_bad_sample == "raise":
                raise
            return BadSample(error.reason, record.sample_id, str(error))
        sample["index"] = torch.tensor(index, dtype=torch.int64)
        return sample

    def summary(self) -> dict[str, int]:
        """Number of people and images in the split."""
        return {"people": len(self.records), "images": len({r.image_id for r in self.records})}


class SeededSampler(Sampler):
    """Yields ``(epoch, index)`` keys: shuffled per epoch from ``seed``, split over DDP ranks.

    Training (``pad=True``): every rank gets ``ceil(n / world_size)`` keys, padded by wrapping as
    DistributedSampler does, so ranks step in lockstep. Evaluation (``pad=False``): rank r gets exactly
    the indices ``r, r + world_size, ...``, so no sample is counted twice in a metric.
    """

    def __init__(self, num_samples: int, shuffle: bool, seed: int = 0, rank: int | None = None,
                 world_size: int | None = None, pad: bool = True):
        if rank is None or world_size is None:
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                rank, world_size = torch.distributed.get_rank(), torch.distributed.get_world_size()
            else:
                rank, world_size = 0, 1
        self.num_samples, self.shuffle, self.seed = num_samples, shuffle, seed
        self.rank, self.world_size, self.pad = rank, world_size, pad
        self.epoch = 0
        #: Keys of this rank's next epoch to leave out once (set when resuming mid-epoch).
        self.skip_samples = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        if self.pad:
            return math.ceil(self.num_samples / self.world_size)
        return len(range(self.rank, self.num_samples, self.world_size))

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch, 7919]).permutation(self.num_samples)
        else:
            order = np.arange(self.num_samples)
        if self.pad:
            total = len(self) * self.world_size
            order = np.resize(order, total)  # wrap around, as DistributedSampler pads
        skip, self.skip_samples = self.skip_samples, 0
        for index in order[self.rank::self.world_size][skip:]:
            yield (self.epoch, int(index))


def collate_skipping_bad(items: Sequence[dict | BadSample]) -> dict:
    """Batch the good samples of ``items``; count the :class:`BadSample` markers by reason.

    Returns the default-collated batch of the good samples plus ``bad_samples`` (reason -> count) and
    ``bad_examples`` (reason -> the message of its first sample). When every sample failed, the batch
    holds only those two keys (see :func:`is_empty_batch`).
    """
    good = [item for item in items if not isinstance(item, BadSample)]
    bad = [item for item in items if isinstance(item, BadSample)]
    batch = default_collate(good) if good else {}
    batch["bad_samples"] = dict(Counter(item.reason for item in bad))
    batch["bad_examples"] = {}
    for item in bad:
        batch["bad_examples"].setdefault(item.reason, item.message)
    return batch


def is_empty_batch(batch: dict) -> bool:
    """True for a batch of :func:`collate_skipping_bad` whose samples all failed to load."""
    return "bad_samples" in batch and "index" not in batch


def batch_num_samples(batch: dict) -> int:
    """Samples a batch holds (0 for an empty one)."""
    return 0 if "index" not in batch else int(batch["index"].shape[0])


def merge_bad_counts(into: dict, batch: dict) -> None:
    """Add ``batch``'s ``bad_samples`` / ``bad_examples`` to ``into``'s (batches of :func:`collate_skipping_bad`)."""
    counts, examples = into.setdefault("bad_samples", {}), into.setdefault("bad_examples", {})
    for reason, count in batch.get("bad_samples", {}).items():
        counts[reason] = counts.get(reason, 0) + int(count)
    for reason, message in batch.get("bad_examples", {}).items():
        examples.setdefault(reason, message)


def report_skipped(name: str, skipped: Counter) -> str:
    """One line summarising annotations left out of a split and why."""
    if not skipped:
        return f"{name}: nothing skipped"
    reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(skipped.items()))
    return f"{name}: skipped {sum(skipped.values())} annotations ({reasons})"


__all__ = ["BAD_SAMPLE_POLICIES", "BadSample", "BadSampleError", "SeededSampler", "TopDownDataset",
           "batch_num_samples", "collate_skipping_bad", "is_empty_batch", "merge_bad_counts", "report_skipped"]
