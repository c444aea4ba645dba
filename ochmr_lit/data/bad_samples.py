"""Samples left out under ``data.on_bad_sample=skip``: counted per epoch and reason, reported, and bounded.

Batches built by :func:`~ochmr_lit.data.dataset.collate_skipping_bad` carry ``bad_samples`` (reason ->
count) for the samples that failed to load. :class:`BadSampleMonitor` sums them over each training,
validation and test epoch in the main process, adds up all DDP ranks, logs ``data/bad_samples/<reason>``
(``data/<split>/bad_samples/<reason>`` for val and test) and ``data/bad_fraction``, prints one line per
epoch, and stops the run with :class:`TooManyBadSamplesError` when the failed share of the epoch's samples
exceeds ``data.max_bad_fraction``. :func:`skip_empty_batch` lets a training step skip a batch whose samples
all failed, on every rank together, returning :func:`skipped_step_loss`.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from ochmr_lit.data.dataset import batch_num_samples, is_empty_batch

log = logging.getLogger(__name__)


class TooManyBadSamplesError(RuntimeError):
    """More samples of an epoch failed to load than ``data.max_bad_fraction`` allows."""


def skip_empty_batch(module: L.LightningModule, batch: dict) -> bool:
    """True when the training step must be skipped: this or another DDP rank got an empty batch.

    Decided jointly (one all-reduce per step, only under ``on_bad_sample=skip``, whose batches carry
    ``bad_samples``) so that all ranks skip the same step and gradients stay in sync.
    """
    if "bad_samples" not in batch:
        return False
    flag = torch.tensor(float(is_empty_batch(batch)), device=module.device)
    trainer = getattr(module, "_trainer", None)
    if trainer is not None and trainer.world_size > 1:
        flag = trainer.strategy.reduce(flag, reduce_op="sum")
    return bool(flag.item() > 0)


#: Set on a module whose training step was skipped under DDP, until the monitor has dropped the zero gradients.
_SKIPPED_FLAG = "_bad_samples_skipped_step"


def skipped_step_loss(module: L.LightningModule) -> torch.Tensor | None:
    """What a training step skipped by :func:`skip_empty_batch` returns.

    In one process, None (Lightning then skips backward and the optimiser step). Under DDP Lightning refuses
    None, so it is a zero loss over every trainable parameter (all ranks run the same backward of zeros);
    :class:`BadSampleMonitor` then drops those gradients so that the optimiser leaves the weights, its
    moments and weight decay untouched.
    """
    trainer = getattr(module, "_trainer", None)
    if trainer is None or trainer.world_size == 1:
        return None
    setattr(module, _SKIPPED_FLAG, True)
    return sum((p.sum() * 0.0 for p in module.parameters() if p.requires_grad), torch.zeros((), device=module.device))


def _gather(value: Any) -> list[Any]:
    """``value`` of every DDP rank (just ``[value]`` in one process)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        values: list[Any] = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(values, value)
        return values
    return [value]


class _Tally:
    """Samples seen and failed in one epoch of one split (this rank)."""

    def __init__(self) -> None:
        self.seen = 0
        self.bad: Counter = Counter()
        self.examples: dict[str, str] = {}

    def add(self, batch: Any) -> None:
        if not isinstance(batch, dict) or "bad_samples" not in batch:
            return
        bad = {reason: int(count) for reason, count in batch["bad_samples"].items()}
        self.bad.update(bad)
        self.seen += batch_num_samples(batch) + sum(bad.values())
        for reason, message in batch.get("bad_examples", {}).items():
            self.examples.setdefault(reason, message)

    def all_ranks(self) -> _Tally:
        total = _Tally()
        for seen, bad, examples in _gather((self.seen, dict(self.bad), self.examples)):
            total.seen += seen
            total.bad.update(bad)
            for reason, message in examples.items():
                total.examples.setdefault(reason, message)
        return total


class BadSampleMonitor(Callback):
    """Counts, logs, reports and bounds the samples left out under ``data.on_bad_sample=skip``.

    Reads the policy and ``max_bad_fraction`` from the trainer's data module; does nothing under ``raise``
    (the first bad sample stops the run with its own message). The data module adds this callback itself
    when the policy is ``skip`` and the callback configuration lacks it.
    """

    def __init__(self) -> None:
        self._tallies: dict[str, _Tally] = {}

    @staticmethod
    def _active(trainer: L.Trainer) -> bool:
        return getattr(trainer.datamodule, "on_bad_sample", "raise") == "skip" and not trainer.sanity_checking

    def _start(self, trainer: L.Trainer, split: str) -> None:
        self._tallies[split] = _Tally()

    def _add(self, trainer: L.Trainer, split: str, batch: Any) -> None:
        if self._active(trainer):
            self._tallies.setdefault(split, _Tally()).add(batch)

    def _end(self, trainer: L.Trainer, pl_module: L.LightningModule, split: str) -> None:
        if not self._active(trainer):
            return
        total = self._tallies.pop(split, _Tally()).all_ranks()  # collective: every rank gets here
        prefix = "data" if split == "train" else f"data/{split}"
        fraction = sum(total.bad.values()) / total.seen if total.seen else 0.0
        for reason, count in sorted(total.bad.items()):
            pl_module.log(f"{prefix}/bad_samples/{reason}", float(count))  # already summed over ranks
        pl_module.log(f"{prefix}/bad_fraction", fraction)
        line = self.report(split, None if split == "test" else trainer.current_epoch, total)
        if trainer.is_global_zero:
            (log.warning if total.bad else log.info)(line)
        limit = float(getattr(trainer.datamodule, "max_bad_fraction", 1.0))
        if fraction > limit:
            raise TooManyBadSamplesError(
                f"{line}, above data.max_bad_fraction={limit:g}: fix or remove those samples (the first "
                "message names the file), or raise data.max_bad_fraction if losing them is acceptable")

    @staticmethod
    def report(split: str, epoch: int | None, total: _Tally) -> str:
        """One line: how many of the epoch's samples were left out, by reason, with the first message."""
        failed = sum(total.bad.values())
        share = failed / total.seen if total.seen else 0.0
        when = f"{split} epoch {epoch}" if epoch is not None else split
        line = f"{when}: {failed} of {total.seen} samples left out ({share:.2%})"
        if failed:
            reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(total.bad.items()))
            first = total.examples[min(total.examples)] if total.examples else ""
            line += f": {reasons}; first: {first}"
        return line

    # -- hooks ---------------------------------------------------------------------------------------------
    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer) -> None:
        if not getattr(pl_module, _SKIPPED_FLAG, False):
            return
        setattr(pl_module, _SKIPPED_FLAG, False)
        if trainer.accumulate_grad_batches == 1:  # when accumulating, the zeros just add nothing
            for group in optimizer.param_groups:
                for p in group["params"]:
                    p.grad = None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start(trainer, "train")

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self._add(trainer, "train", batch)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._end(trainer, pl_module, "train")

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start(trainer, "val")

    def on_validation_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        self._add(trainer, "val", batch)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._end(trainer, pl_module, "val")

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start(trainer, "test")

    def on_test_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                          batch_idx: int, dataloader_idx: int = 0) -> None:
        self._add(trainer, "test", batch)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._end(trainer, pl_module, "test")
