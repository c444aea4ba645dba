"""SPIN's training mix: several SPIN-format datasets drawn by fixed ratios, evaluated on another set.

SPIN draws 30 % of its samples from H36M, 60 % from the in-the-wild sets (LSP, LSP-extended, MPII, COCO,
each in proportion to its size) and 10 % from MPI-INF-3DHP. Here a *group* is a list of sources and a
ratio; within a group sources are drawn in proportion to their size. Draws are seeded by (seed, epoch).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from ochmr_lit.data.datamodules.base import TopDownDataModule
from ochmr_lit.data.datamodules.eval_targets import EvalTargetsMixin
from ochmr_lit.data.readers.spin_npz import load_spin_npz_records
from ochmr_lit.data.schema import PersonRecord
from ochmr_lit.errors import ConfigError


def source_probabilities(sizes: dict[str, int], groups: Sequence[dict]) -> dict[str, float]:
    """Per-source sampling probability from group ratios (sizes split each group's share).

    Raises a ValueError naming the group when ratios do not sum to 1 or a source is unknown or empty.
    """
    total = sum(float(g["ratio"]) for g in groups)
    if not math.isclose(total, 1.0, abs_tol=1e-6):
        raise ConfigError(f"data.groups ratios sum to {total}, not 1: {[dict(g) for g in groups]}")
    probabilities: dict[str, float] = {}
    for group in groups:
        names = list(group["datasets"])
        unknown = [n for n in names if n not in sizes]
        if unknown:
            raise ConfigError(f"data.groups names {unknown}, which data.sources does not define ({sorted(sizes)})")
        group_size = sum(sizes[n] for n in names)
        if group_size == 0:
            raise ConfigError(f"data.groups: group {names} has no samples")
        for name in names:
            probabilities[name] = probabilities.get(name, 0.0) + float(group["ratio"]) * sizes[name] / group_size
    return probabilities


class RatioSampler(Sampler):
    """``epoch_size`` keys ``(epoch, global index)`` per epoch, sources drawn by probability, split over ranks."""

    def __init__(self, offsets: Sequence[int], sizes: Sequence[int], probabilities: Sequence[float],
                 epoch_size: int, seed: int = 0, rank: int | None = None, world_size: int | None = None):
        if rank is None or world_size is None:
            initialised = torch.distributed.is_available() and torch.distributed.is_initialized()
            rank, world_size = (torch.distributed.get_rank(), torch.distributed.get_world_size()) if initialised \
                else (0, 1)
        self.offsets, self.sizes = np.asarray(offsets), np.asarray(sizes)
        self.probabilities = np.asarray(probabilities, np.float64)
        self.epoch_size, self.seed = int(epoch_size), seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.skip_samples = 0  # keys of the next epoch to leave out once (resuming mid-epoch)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return math.ceil(self.epoch_size / self.world_size)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        rng = np.random.default_rng([self.seed, self.epoch, 104729])
        total = len(self) * self.world_size
        sources = rng.choice(len(self.sizes), size=total, p=self.probabilities / self.probabilities.sum())
        local = (rng.random(total) * self.sizes[sources]).astype(np.int64)
        keys = self.offsets[sources] + local
        skip, self.skip_samples = self.skip_samples, 0
        for index in keys[self.rank::self.world_size][skip:]:
            yield (self.epoch, int(index))


class MixedDataModule(EvalTargetsMixin, TopDownDataModule):
    """Training on a ratio mix of SPIN-format npz sources; validation/test on one SPIN-format npz.

    Args:
        sources: name -> ``{npz: path, image_root: path}`` of each training source.
        groups: ``[{datasets: [names], ratio: p}, ...]`` with ratios summing to 1.
        eval_sets: split (``val``/``test``) -> ``{name, npz, image_root}``.
        epoch_size: samples drawn per epoch (over all processes).
        **kwargs: :class:`TopDownDataModule` settings.

    Validation/test samples carry SPIN's ``S`` joints as ``joints_spin24`` (masked when the npz has none), so the
    ``h36m_p1``/``h36m_p2``/``mpi_inf_3dhp`` protocols evaluate the paper recipe's eval sets directly.
    """

    name = "mixed"
    eval_targets = {"joints_spin24": "S"}

    def __init__(self, sources: dict, groups: list, eval_sets: dict, epoch_size: int = 100_000, **kwargs):
        super().__init__(**kwargs)
        self.sources, self.groups, self.eval_sets = dict(sources), list(groups), dict(eval_sets)
        self.epoch_size = int(epoch_size)
        self._source_ranges: dict[str, tuple[int, int]] = {}

    def load_records(self, split: str) -> tuple[list[PersonRecord], Counter]:
        if split == "train":
            records, skipped = [], Counter()
            for name, source in self.sources.items():
                part, why = load_spin_npz_records(source["npz"], source["image_root"], name, self.scale_factor,
                                                  key=f"data.sources.{name}.npz")
                self._source_ranges[name] = (len(records), len(part))
                records += part
                skipped.update({f"{name}:{k}": v for k, v in why.items()})
            return records, skipped
        if split not in self.eval_sets:
            raise KeyError(f"data.eval_sets has no '{split}' entry; it has {sorted(self.eval_sets)}")
        spec = self.eval_sets[split]
        return load_spin_npz_records(spec["npz"], spec["image_root"], spec["name"], self.scale_factor,
                                     key=f"data.eval_sets.{split}.npz")

    def train_dataloader(self) -> DataLoader:
        dataset = self.dataset("train")
        names = list(self._source_ranges)
        probabilities = source_probabilities({n: self._source_ranges[n][1] for n in names}, self.groups)
        sampler = RatioSampler([self._source_ranges[n][0] for n in names], [self._source_ranges[n][1] for n in names],
                               [probabilities.get(n, 0.0) for n in names], self.epoch_size, seed=self.seed)
        return self._make_loader(dataset, sampler, train=True)
