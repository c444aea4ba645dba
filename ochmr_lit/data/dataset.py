"""A map-style dataset over person records, and the seeded sampler that drives it.

Augmentation randomness comes from ``np.random.default_rng([seed, epoch, index])``: the same sample gets
the same augmentation for a given seed and epoch, whatever the number of workers or processes. The
:class:`SeededSampler` yields ``(epoch, index)`` keys and splits them over DDP ranks itself (the
trainer configs set ``use_distributed_sampler: false`` so Lightning does not replace it).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ochmr_lit.data.schema import PersonRecord
from ochmr_lit.data.transforms import BadSampleError, TopDownTransform


class TopDownDataset(Dataset):
    """Person records + a :class:`TopDownTransform` -> samples of the one schema.

    Args:
        records: the people of this split.
        transform: builds a sample from a record.
        seed: base seed of the augmentation randomness.
    """

    def __init__(self, records: Sequence[PersonRecord], transform: TopDownTransform, seed: int = 0):
        self.records = list(records)
        self.transform = transform
        self.seed = int(seed)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        record = self.records[index]
        rng = np.random.default_rng([self.seed, int(epoch), int(index)])
        sample = self.transform(record, rng=rng)
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


def report_skipped(name: str, skipped: Counter) -> str:
    """One line summarising annotations left out of a split and why."""
    if not skipped:
        return f"{name}: nothing skipped"
    reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(skipped.items()))
    return f"{name}: skipped {sum(skipped.values())} annotations ({reasons})"


__all__ = ["TopDownDataset", "SeededSampler", "BadSampleError", "report_skipped"]
