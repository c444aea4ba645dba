"""Callbacks that make interrupted runs lose nothing: exact mid-epoch resume, a checkpoint on SIGTERM and
checkpoint files that are never left half-written."""

from __future__ import annotations

import io
import logging
import os
import random
import signal
import tempfile
import threading
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from fsspec.core import url_to_fs
from fsspec.utils import get_protocol
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)

#: Name ending of the temporary file a checkpoint is written to before it is renamed over its target
#: (not ``.ckpt``, so that nothing looking for checkpoints picks up a half-written one).
PARTIAL_SUFFIX = ".partial"

_WRITE_CHUNK = 64 << 20


def _is_local(path: str | Path) -> bool:
    """Whether ``path`` is on the local filesystem (a plain path or ``file://``), not ``s3://`` and the like."""
    return get_protocol(str(path)) == "file"


def _umask() -> int:
    """The process's file-creation mask (read by setting it and putting it back, as there is no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_directory(directory: Path) -> None:
    """Make a rename inside ``directory`` durable (best effort: some filesystems cannot open directories)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes_atomically(path: Path, data: bytes | memoryview) -> None:
    """Replace ``path`` by ``data`` so that any reader, at any moment, sees either the old file or the new one.

    The bytes go to a temporary ``.<name>.<random>.partial`` file in the same directory (same filesystem, so
    the final ``os.replace`` is an atomic rename, wherever ``TMPDIR`` points), are synced to disk, and only
    then is the temporary file renamed over ``path``. A process killed mid-write leaves ``path`` as it was
    plus a ``.partial`` file (removed by :class:`AtomicCheckpoints` when the next run starts).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(prefix=f".{path.name}.", suffix=PARTIAL_SUFFIX, dir=path.parent)
    try:
        try:
            os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes the file private; a checkpoint gets the usual mode
            view = memoryview(data).cast("B")
            while view:
                written = os.write(fd, view[:_WRITE_CHUNK])
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


class AtomicTorchCheckpointIO(TorchCheckpointIO):
    """:class:`TorchCheckpointIO` whose local checkpoint files are written by :func:`write_bytes_atomically`.

    Lightning's own save writes to a temporary file under ``TMPDIR`` and moves it into place; when ``TMPDIR``
    is on another filesystem than the checkpoint (node-local scratch vs. a shared filesystem, common on
    clusters) the move is a copy into ``last.ckpt`` itself, and a process killed during it leaves a truncated
    ``last.ckpt``. Remote paths (``s3://``, ...) keep Lightning's fsspec transaction.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None) -> None:
        """Serialise ``checkpoint`` in memory, then write it to ``path`` atomically."""
        if storage_options is not None or not _is_local(path):
            super().save_checkpoint(checkpoint, path, storage_options=storage_options)
            return
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        _, local_path = url_to_fs(str(path))
        write_bytes_atomically(Path(local_path), buffer.getbuffer())


class AtomicCheckpoints(Callback):
    """Every checkpoint of the run (``last.ckpt``, epoch checkpoints, the SIGTERM one) is written atomically.

    Installs :class:`AtomicTorchCheckpointIO` as the strategy's checkpoint IO (when the strategy uses the plain
    :class:`TorchCheckpointIO`; a custom checkpoint IO is left alone with a warning), and at the start of fit
    removes ``.partial`` files that a process killed mid-write left in the checkpoint folders.
    """

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Swap the strategy's plain checkpoint IO for the atomic one (before any checkpoint is written)."""
        checkpoint_io = trainer.strategy.checkpoint_io
        if type(checkpoint_io) is TorchCheckpointIO:
            trainer.strategy.checkpoint_io = AtomicTorchCheckpointIO()
        elif not isinstance(checkpoint_io, AtomicTorchCheckpointIO):
            log.warning("checkpoints are written by %s, not atomically by AtomicTorchCheckpointIO; remove the "
                        "custom checkpoint IO plugin to get atomic writes", type(checkpoint_io).__name__)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Remove the ``.partial`` leftovers of a killed run from the checkpoint folders (rank zero only)."""
        if not trainer.is_global_zero:
            return
        folders = {Path(c.dirpath) for c in trainer.checkpoint_callbacks
                   if getattr(c, "dirpath", None) and _is_local(c.dirpath)}
        for folder in folders:
            for partial in folder.glob(f".*.ckpt.*{PARTIAL_SUFFIX}"):
                log.warning("removing %s, a checkpoint left half-written by a killed run", partial)
                partial.unlink(missing_ok=True)


class ExactResume(Callback):
    """Resume mid-epoch on exactly the batches and random numbers an uninterrupted run would see.

    It counts the training batches of the current epoch; the checkpoint holds that count (here and in the
    training DataLoader's state, :class:`~ochmr_lit.data.datamodules.base.ResumableTrainLoader`, through Lightning's
    stateful-loader protocol) and, on resume, the sampler (a deterministic order per (seed, epoch)) skips the
    batches already trained on. This callback stores the torch / numpy / Python RNG states
    (dropout draws from torch's) and restores them just before the first resumed batch (after the data iterator
    has drawn its own seed, as it had in the uninterrupted run). Needs a :class:`TopDownDataModule`.
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
        if self._datamodule is not None and hasattr(self._datamodule, "train_progress"):
            self._datamodule.train_progress = self  # the training loader's state comes from here

    def _skip_resumed_batches(self, batches: int) -> None:
        datamodule = getattr(self, "_datamodule", None)
        if datamodule is None or not hasattr(datamodule, "resume_skip_batches"):
            raise RuntimeError("cannot resume mid-epoch exactly: the data module cannot skip batches; use the "
                               "framework's DataModules or resume from an end-of-epoch checkpoint")
        datamodule.resume_skip_batches = batches

    def loader_state(self) -> dict[str, int]:
        """The training loader's checkpoint state: the epoch and the batches of it trained on."""
        trainer = getattr(self, "_trainer", None)
        epoch_batches = trainer.num_training_batches if trainer is not None else float("inf")
        # a checkpoint written after the epoch's last batch resumes at the next epoch: nothing to skip
        return {"epoch": self.epoch, "batches_done": self.batches_done if self.batches_done < epoch_batches else 0}

    def resume_from(self, epoch: int, batches_done: int) -> None:
        """Continue counting from a checkpoint's loader state (the loader skips the batches itself).

        The count continues at once: Lightning does not call ``on_train_epoch_start`` when it restarts in the
        middle of an epoch, and a checkpoint written later in the resumed epoch must count the batches trained
        before the interruption too (else a second resume would skip only the batches trained since the first)."""
        self._resume = (epoch, batches_done)
        self.epoch, self.batches_done = epoch, batches_done

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
        return {**self.loader_state(), "torch_rng": torch.get_rng_state(),
                "numpy_rng": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)],
                "python_rng": random.getstate()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # Callback states are restored before the optimisers are configured, which is where Lightning may build
        # the training loader (``estimated_stepping_batches``) and then never hand it its saved state: the
        # skip is therefore scheduled here too. When Lightning does call the loader's ``load_state_dict``, it
        # sets the same skip again (an assignment, before the first batch), so nothing is skipped twice.
        self.resume_from(int(state["epoch"]), int(state["batches_done"]))
        if self._resume[1]:
            self._skip_resumed_batches(self._resume[1])
        kind, keys, pos, has_gauss, gauss = state["numpy_rng"]
        version, internal, python_gauss = state["python_rng"]
        self._rng_states = {"torch": state["torch_rng"],
                            "numpy": (kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss),
                            "python": (version, tuple(internal), python_gauss)}


class PreemptionCheckpoint(Callback):
    """On SIGTERM (SLURM preemption, ``kill``) or Ctrl-C, write ``last.ckpt`` after the batch in flight.

    Lightning finishes the current training batch, then raises ``SIGTERMException``; this callback saves
    the state at that point (weights, optimiser, schedulers, loop progress, :class:`ExactResume` state),
    so ``ckpt_path=last`` continues exactly where the run stopped. A first Ctrl-C (SIGINT) during training is
    turned into that same SIGTERM stop, rather than Python's KeyboardInterrupt mid-step, which would save nothing;
    a second Ctrl-C aborts at once.
    """

    def __init__(self, dirpath: str | None = None, filename: str = "last.ckpt") -> None:
        self.dirpath = dirpath
        self.filename = filename
        self.saved_path: Path | None = None
        self._previous_sigint: Any = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if threading.current_thread() is threading.main_thread():
            self._previous_sigint = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum: int, frame: Any) -> None:
        self._restore_sigint()  # a second Ctrl-C: Python's KeyboardInterrupt
        log.warning("Ctrl-C: stopping after the batch in flight and saving last.ckpt (Ctrl-C again to abort now)")
        os.kill(os.getpid(), signal.SIGTERM)

    def _restore_sigint(self) -> None:
        if self._previous_sigint is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self._previous_sigint)
            self._previous_sigint = None

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore_sigint()

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._restore_sigint()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException):
            return
        checkpoint_dir = (self.dirpath or getattr(trainer.checkpoint_callback, "dirpath", None)
                          or trainer.default_root_dir)
        path = Path(checkpoint_dir) / self.filename
        trainer.save_checkpoint(path, weights_only=False)  # the full state; saying so keeps Lightning quiet
        self.saved_path = path
        if trainer.is_global_zero:
            log.warning("SIGTERM received: saved %s at step %d; continue with ckpt_path=last", path,
                        trainer.global_step)
