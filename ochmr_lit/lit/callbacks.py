"""Callbacks that make interrupted runs lose nothing: exact mid-epoch resume and a checkpoint on SIGTERM."""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)


class ExactResume(Callback):
    """Resume mid-epoch on exactly the batches and random numbers an uninterrupted run would see.

    The checkpoint stores how many training batches of the current epoch are done and the torch /
    numpy / Python RNG states (dropout draws from torch's). On resume, the data module's training
    sampler (a deterministic order per (seed, epoch)) skips the batches already trained on, and the RNG
    states are restored just before the first resumed batch (after the data iterator has drawn its own
    seed, as it had in the uninterrupted run). Needs a :class:`TopDownDataModule` (``resume_skip_batches``).
    """

    def __init__(self) -> None:
        self.epoch = 0
        self.batches_done = 0
        self._resume: tuple[int, int] | None = None
        self._rng_states: dict[str, Any] | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # setup() runs before the checkpoint is restored, which runs before the training loader is built.
        self._datamodule = trainer.datamodule
        self._trainer = trainer

    def _skip_resumed_batches(self, batches: int) -> None:
        datamodule = getattr(self, "_datamodule", None)
        if datamodule is None or not hasattr(datamodule, "resume_skip_batches"):
            raise RuntimeError("cannot resume mid-epoch exactly: the data module cannot skip batches; use the "
                               "framework's DataModules or resume from an end-of-epoch checkpoint")
        datamodule.resume_skip_batches = batches

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.epoch = trainer.current_epoch
        resuming = self._resume is not None and self._resume[0] == self.epoch
        self.batches_done = self._resume[1] if resuming else 0
        self._resume = None

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        if self._rng_states is not None:
            states, self._rng_states = self._rng_states, None
            torch.set_rng_state(states["torch"])
            np.random.set_state(states["numpy"])
            random.setstate(states["python"])

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self.batches_done += 1

    def state_dict(self) -> dict[str, Any]:
        # Only tensors and plain types, so that the checkpoint loads with torch.load(weights_only=True).
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        trainer = getattr(self, "_trainer", None)
        epoch_batches = trainer.num_training_batches if trainer is not None else float("inf")
        # a checkpoint written after the epoch's last batch resumes at the next epoch: nothing to skip
        batches_done = self.batches_done if self.batches_done < epoch_batches else 0
        return {"epoch": self.epoch, "batches_done": batches_done, "torch_rng": torch.get_rng_state(),
                "numpy_rng": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)],
                "python_rng": random.getstate()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._resume = (int(state["epoch"]), int(state["batches_done"]))
        if self._resume[1]:
            self._skip_resumed_batches(self._resume[1])
        kind, keys, pos, has_gauss, gauss = state["numpy_rng"]
        version, internal, python_gauss = state["python_rng"]
        self._rng_states = {"torch": state["torch_rng"],
                            "numpy": (kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss),
                            "python": (version, tuple(internal), python_gauss)}


class PreemptionCheckpoint(Callback):
    """On SIGTERM (SLURM preemption, ``kill``), write ``last.ckpt`` after the batch in flight.

    Lightning finishes the current training batch, then raises ``SIGTERMException``; this callback saves
    the state at that point (weights, optimiser, schedulers, loop progress, :class:`ExactResume` state),
    so ``ckpt_path=last`` continues exactly where the run stopped.
    """

    def __init__(self, dirpath: str | None = None, filename: str = "last.ckpt") -> None:
        self.dirpath = dirpath
        self.filename = filename
        self.saved_path: Path | None = None

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException):
            return
        checkpoint_dir = (self.dirpath or getattr(trainer.checkpoint_callback, "dirpath", None)
                          or trainer.default_root_dir)
        path = Path(checkpoint_dir) / self.filename
        trainer.save_checkpoint(path)
        self.saved_path = path
        if trainer.is_global_zero:
            log.warning("SIGTERM received: saved %s at step %d; continue with ckpt_path=last", path,
                        trainer.global_step)
