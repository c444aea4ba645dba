"""The top-down DataModule every dataset builds on: crops, augmentation, loaders, bad samples, resume."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader

from ochmr_lit.data.bad_samples import BadSampleMonitor
from ochmr_lit.data.dataset import (
    BAD_SAMPLE_POLICIES,
    SeededSampler,
    TopDownDataset,
    collate_skipping_bad,
    is_empty_batch,
    merge_bad_counts,
    report_skipped,
)
from ochmr_lit.data.predicted_centres import apply_predicted_centres, load_predicted_centres
from ochmr_lit.data.schema import PersonRecord
from ochmr_lit.data.transforms import AugmentationConfig, TopDownTransform
from ochmr_lit.errors import ConfigError
from ochmr_lit.setting_types import is_number, is_whole

log = logging.getLogger(__name__)


class SkipEmptyBatchesLoader(DataLoader):
    """DataLoader of an evaluation split under ``data.on_bad_sample=skip``.

    Evaluation steps cannot skip a batch, so a batch whose samples all failed to load is not yielded; its
    counts are added to a neighbouring batch's ``bad_samples`` (the next one, or the previous one at the
    end), so that every bad sample is still counted. A split where no sample at all loads is an error.
    """

    def __iter__(self):
        held: dict | None = None  # the latest good batch, yielded once the next one arrives
        pending: dict = {}  # counts of empty batches seen before any good batch
        for batch in super().__iter__():
            if is_empty_batch(batch):
                merge_bad_counts(held if held is not None else pending, batch)
                continue
            merge_bad_counts(batch, pending)
            pending = {}
            if held is not None:
                yield held
            held = batch
        if held is None and pending.get("bad_samples"):
            counts = ", ".join(f"{n} {reason}" for reason, n in sorted(pending["bad_samples"].items()))
            example = next(iter(pending["bad_examples"].values()), "")
            raise RuntimeError(f"no sample of this evaluation split could be loaded ({counts}; first: {example}); "
                               "data.on_bad_sample=skip cannot leave out a whole split: fix the data")
        if held is not None:
            yield held


class ResumableTrainLoader(DataLoader):
    """The training DataLoader, resumable mid-epoch through Lightning's stateful-loader protocol.

    Lightning stores ``state_dict()`` in every checkpoint (``loops.fit_loop.combined_loader``) and hands it back
    to ``load_state_dict`` before the first resumed batch is drawn. The state is how many batches of the epoch
    were trained on, as counted by the training-progress object the trainer's callbacks keep
    (:class:`~ochmr_lit.lit.callbacks.ExactResume`, set as ``progress``); resuming makes the sampler (a fixed order
    per seed and epoch) leave those batches out, so the run continues on exactly the batches it would have seen.
    """

    progress = None  # ExactResume sets itself here; without it the state is empty and a resume restarts the epoch

    def state_dict(self) -> dict:
        return self.progress.loader_state() if self.progress is not None else {}

    def load_state_dict(self, state: dict) -> None:
        done = int(state.get("batches_done", 0))
        if done:
            self.sampler.skip_samples = done * self.batch_size
        if self.progress is not None and "epoch" in state:
            self.progress.resume_from(int(state["epoch"]), done)


#: Settings of every top-down data module that must be whole numbers, with their smallest valid value and meaning.
_WHOLE_SETTINGS = {
    "crop_size": (1, "the crop side in px"),
    "map_size": (1, "the centermap side in cells"),
    "batch_size": (1, "people per training batch"),
    "eval_batch_size": (1, "people per evaluation batch (null = batch_size)"),
    "num_workers": (0, "data-loader worker processes (0 = in the main process)"),
    "prefetch_factor": (1, "batches each worker loads ahead"),
    "min_keypoints": (0, "labelled keypoints a training person needs"),
    "seed": (0, "the sampling and augmentation seed"),
}


def check_loader_settings(values: dict, key: str = "data") -> None:
    """The numeric settings of a :class:`TopDownDataModule` (``values``: its keyword arguments): whole numbers for
    sizes, counts and the seed (:data:`_WHOLE_SETTINGS`), positive ``scale_factor`` and ``sigma``, a known
    ``on_bad_sample`` policy and a ``max_bad_fraction`` in [0, 1].

    Raises:
        ConfigError naming ``<key>.<setting>``, what it means and the valid range.
    """
    for name, (smallest, meaning) in _WHOLE_SETTINGS.items():
        value = values.get(name)
        if value is None and name == "eval_batch_size":
            continue
        if name in values and not is_whole(value, smallest):
            raise ConfigError(f"{key}.{name}={value!r}: {meaning}, a whole number >= {smallest}")
    for name, meaning in (("scale_factor", "the box side's scale to the crop"),
                          ("sigma", "the centermap Gaussian's sigma in cells")):
        value = values.get(name)
        if name in values and (not is_number(value) or value <= 0):
            raise ConfigError(f"{key}.{name}={value!r}: {meaning}, a number > 0")
    if "on_bad_sample" in values and values["on_bad_sample"] not in BAD_SAMPLE_POLICIES:
        raise ConfigError(f"{key}.on_bad_sample={values['on_bad_sample']!r}; use one of {list(BAD_SAMPLE_POLICIES)}")
    fraction = values.get("max_bad_fraction", 0.0)
    if not is_number(fraction) or not 0.0 <= fraction <= 1.0:
        raise ConfigError(f"{key}.max_bad_fraction={fraction!r}; use a fraction between 0 and 1 (0.01 = 1 % of an "
                          "epoch's samples)")


class TopDownDataModule(L.LightningDataModule):
    """Crops of people, seeded augmentation, and DataLoaders with workers and pinned memory.

    Subclasses implement :meth:`load_records` for their format, and :meth:`keypoint_ground_truth` when
    the split can be scored with keypoint AP.

    Args:
        crop_size: crop side in px (224 regressor, 256 context estimator).
        map_size: centermap side in px (crop_size / 4).
        scale_factor: crop side = scale_factor x max box side.
        sigma: centermap Gaussian sigma in map px.
        batch_size: per-process batch size.
        num_workers, pin_memory, persistent_workers, prefetch_factor: DataLoader settings.
        seed: base seed of sampling and augmentation.
        augment: AugmentationConfig fields for training; None disables augmentation.
        min_keypoints: training people with fewer labelled keypoints are skipped (and counted).
        eval_batch_size: batch size of validation/test loaders (defaults to batch_size).
        on_bad_sample: ``raise`` stops at the first sample that cannot be built (unreadable image, bad box,
            ...) with its message; ``skip`` leaves such samples out of their batch, and
            :class:`~ochmr_lit.data.bad_samples.BadSampleMonitor` counts them per epoch by reason.
        max_bad_fraction: under ``skip``, the share of an epoch's samples that may fail before the run stops.
        predicted_centres: folder of ``<split>.npz`` body centres predicted by a frozen context estimator
            (:mod:`ochmr_lit.data.predicted_centres`); the centermaps of every crop are then rendered from
            them instead of the annotated centres. None: annotated centres (ground-truth context).
    """

    name = "topdown"

    def __init__(self, crop_size: int = 224, map_size: int = 56, scale_factor: float = 1.2, sigma: float = 2.0,
                 batch_size: int = 32, num_workers: int = 2, pin_memory: bool = True,
                 persistent_workers: bool = True, prefetch_factor: int = 2, seed: int = 0,
                 augment: dict | None = None, min_keypoints: int = 0, eval_batch_size: int | None = None,
                 on_bad_sample: str = "raise", max_bad_fraction: float = 0.01,
                 predicted_centres: str | None = None):
        super().__init__()
        check_loader_settings({"crop_size": crop_size, "map_size": map_size, "scale_factor": scale_factor,
                               "sigma": sigma, "batch_size": batch_size, "num_workers": num_workers,
                               "prefetch_factor": prefetch_factor, "seed": seed, "min_keypoints": min_keypoints,
                               "eval_batch_size": eval_batch_size, "on_bad_sample": on_bad_sample,
                               "max_bad_fraction": max_bad_fraction})
        self.predicted_centres = str(predicted_centres) if predicted_centres else None
        self.on_bad_sample, self.max_bad_fraction = on_bad_sample, float(max_bad_fraction)
        self.crop_size, self.map_size = crop_size, map_size
        self.scale_factor, self.sigma = scale_factor, sigma
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.persistent_workers, self.prefetch_factor = persistent_workers, prefetch_factor
        self.seed = seed
        self.augment = AugmentationConfig(**augment) if augment is not None else None
        self.min_keypoints = min_keypoints
        self.datasets: dict[str, TopDownDataset] = {}
        #: Training batches of the first epoch to leave out (set by ExactResume when resuming mid-epoch).
        self.resume_skip_batches = 0  # checkpoints written before the loader kept its own state
        self.train_progress = None  # the trainer's ExactResume callback, when it has one
        self.skipped: dict[str, Counter] = {}
        #: The split ``test_dataloader`` reads (``evaluate split=...`` sets it): any split, as evaluation crops.
        self.test_split = "test"

    # -- format-specific -------------------------------------------------------------------------------
    def load_records(self, split: str) -> tuple[list[PersonRecord], Counter]:
        raise NotImplementedError(f"{type(self).__name__} must implement load_records(split)")

    def keypoint_ground_truth(self, split: str) -> Path | None:
        """COCO-format keypoint JSON the split is scored against with keypoint AP, if any."""
        return None

    # -- shared ----------------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        """Under ``on_bad_sample=skip``, make sure skipped samples are counted: add the monitor if missing."""
        trainer = self.trainer
        if self.on_bad_sample != "skip" or trainer is None:
            return
        if not any(isinstance(callback, BadSampleMonitor) for callback in trainer.callbacks):
            trainer.callbacks.append(BadSampleMonitor())

    def transform(self, split: str) -> TopDownTransform:
        return TopDownTransform(self.crop_size, self.map_size, self.scale_factor, self.sigma,
                                augment=self.augment if split == "train" else None)

    def dataset(self, split: str, evaluation: bool = False) -> TopDownDataset:
        """The split's people as crops: augmented for ``train`` unless ``evaluation`` (then as any evaluation split)."""
        key = f"{split} (evaluation)" if evaluation and split == "train" else split
        if key not in self.datasets:
            records, skipped = self.load_records(split)
            if not records:
                raise ValueError(f"{self.name} split '{split}' has no usable people ({report_skipped(split, skipped)});"
                                 f" check the split's annotation file (data.min_keypoints={self.min_keypoints})")
            self.skipped[split] = skipped
            if self.predicted_centres:
                path = Path(self.predicted_centres) / f"{split}.npz"
                records = apply_predicted_centres(records, load_predicted_centres(path), path)
            log.info("%s %s: %d people. %s", self.name, split, len(records), report_skipped(split, skipped))
            transform = self.transform("val" if evaluation else split)
            self.datasets[key] = TopDownDataset(records, transform, seed=self.seed, on_bad_sample=self.on_bad_sample)
        return self.datasets[key]

    def unaugmented_loader(self, split: str) -> DataLoader:
        """The split's annotated records as evaluation crops (no augmentation, in order), whatever
        ``predicted_centres`` says: the input of :func:`~ochmr_lit.data.predicted_centres.predict_centres`.
        Not split over DDP ranks: every rank reads the whole split."""
        records, _ = self.load_records(split)
        dataset = TopDownDataset(records, self.transform("val"), seed=self.seed, on_bad_sample=self.on_bad_sample)
        # every sample on every rank, even inside a DDP process group: each rank builds the whole cache
        whole = SeededSampler(len(dataset), shuffle=False, seed=self.seed, rank=0, world_size=1, pad=False)
        return self._make_loader(dataset, whole, train=False)

    def _loader(self, split: str, train: bool) -> DataLoader:
        dataset = self.dataset(split, evaluation=not train)
        sampler = SeededSampler(len(dataset), shuffle=train, seed=self.seed, pad=train)
        return self._make_loader(dataset, sampler, train)

    def _make_loader(self, dataset: TopDownDataset, sampler, train: bool) -> DataLoader:
        if train and self.resume_skip_batches:
            sampler.skip_samples = self.resume_skip_batches * self.batch_size
            self.resume_skip_batches = 0
        workers = self.num_workers
        skip = self.on_bad_sample == "skip"
        # training steps skip empty batches themselves (in step on every DDP rank); evaluation cannot
        loader = ResumableTrainLoader if train else SkipEmptyBatchesLoader if skip else DataLoader
        built = loader(
            dataset, batch_size=self.batch_size if train else self.eval_batch_size, sampler=sampler,
            collate_fn=collate_skipping_bad if skip else None,
            num_workers=workers, pin_memory=self.pin_memory and torch.cuda.is_available(),
            drop_last=train and len(sampler) > self.batch_size,
            persistent_workers=self.persistent_workers and workers > 0,
            prefetch_factor=self.prefetch_factor if workers > 0 else None,
        )
        if train:
            built.progress = self.train_progress
        return built

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_split, train=False)
