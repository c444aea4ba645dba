"""A process killed with SIGKILL while it writes a checkpoint leaves the previous ``last.ckpt`` loadable.

A subprocess trains a tiny model on CPU with ``last.ckpt`` written every step, and a fault injected into
the file write kills it (SIGKILL, no cleanup possible) part-way through the N-th ``last.ckpt``. The
project's checkpoint callbacks (``callbacks/default.yaml``: ``atomic_checkpoints`` + ``last_checkpoint``)
write to a ``.partial`` file beside the target and rename it only once complete. Lightning's own write
(temporary file under ``TMPDIR``, then moved) is checked too: safe while ``TMPDIR`` shares the checkpoint's
filesystem, a truncated ``last.ckpt`` when the move has to copy across filesystems, which is why the project
writes checkpoints itself.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import lightning as L
import pytest
import torch
from conftest import REPO_ROOT
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader

from ochmr_lit.lit.callbacks import PARTIAL_SUFFIX, AtomicCheckpoints

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="the fault finds files via /proc/self/fd")

KILL_AT = 4  # the 4th last.ckpt write (global_step 4) is killed; the one on disk holds global_step 3
MAX_STEPS = 8  # one epoch of 8 batches: no end-of-epoch checkpoint before the kill

#: Trains the tiny model in a fresh process; a fault in the chosen file write SIGKILLs it mid-checkpoint and
#: first prints ``FAULT {"path": ..., "written": ..., "total": ...}``.
SCRIPT = r'''
import json, os, signal, sys
from collections.abc import Iterator
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tiny_model import Tiny, dataset

args = json.loads(sys.argv[1])
ckpt_dir, writer, fault, kill_at = Path(args["ckpt_dir"]), args["writer"], args["fault"], args["kill_at"]
seen = []


def _fd_path(fd):
    return os.readlink(f"/proc/self/fd/{fd}")


def _kill(path, written, total):
    print("FAULT " + json.dumps({"path": str(path), "written": written, "total": total}), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


def _nth(key):
    if key not in seen:
        seen.append(key)
    return len(seen) == kill_at


if fault == "write" and writer == "project":  # the project's writer: os.write into any last.ckpt file there
    real_write = os.write

    def write(fd, data):
        path = _fd_path(fd)
        if (Path(path).parent == ckpt_dir and "last.ckpt" in os.path.basename(path)
                and os.lseek(fd, 0, os.SEEK_CUR) == 0):  # the first bytes of the next last.ckpt
            seen.append(path)
            if len(seen) == kill_at:
                half = len(data) // 2
                real_write(fd, bytes(data[:half]))
                _kill(path, half, len(data))
        return real_write(fd, data)

    os.write = write
elif fault == "rename":  # the project's writer, complete .partial file, killed just before the rename
    real_replace = os.replace

    def replace(src, dst, **kwargs):
        if str(dst).endswith("last.ckpt") and _nth(src):
            _kill(src, os.path.getsize(src), os.path.getsize(src))
        return real_replace(src, dst, **kwargs)

    os.replace = replace
elif fault == "write":  # Lightning's writer: a file under TMPDIR opened by fsspec inside a transaction
    from fsspec.implementations.local import LocalFileOpener

    real_opener_write = LocalFileOpener.write

    def opener_write(self, data):
        if str(self.path).endswith("last.ckpt") and _nth(self.temp):
            half = len(data) // 2
            self.f.write(data[:half])
            self.f.flush()
            _kill(self.temp, half, len(data))
        return real_opener_write(self, data)

    LocalFileOpener.write = opener_write
elif fault == "copy":  # Lightning's writer: the transaction's move, a copy when TMPDIR is another filesystem
    real_sendfile = os.sendfile

    def sendfile(out_fd, in_fd, offset, count):
        path = _fd_path(out_fd)
        if path.endswith("last.ckpt") and _nth(_fd_path(in_fd)):
            total = os.fstat(in_fd).st_size
            written = real_sendfile(out_fd, in_fd, 0, total // 2)
            _kill(path, written, total)
        return real_sendfile(out_fd, in_fd, offset, count)

    os.sendfile = sendfile

if writer == "project":  # the checkpoint callbacks as the default config composes them
    config = OmegaConf.merge({"run_dir": str(ckpt_dir.parent)},
                             {"callbacks": OmegaConf.load(args["callbacks_yaml"])})
    config.callbacks.last_checkpoint.every_n_train_steps = 1
    callbacks = [instantiate(config.callbacks[name]) for name in ("atomic_checkpoints", "last_checkpoint")]
    assert Path(callbacks[1].dirpath) == ckpt_dir, callbacks[1].dirpath
else:
    callbacks = [ModelCheckpoint(dirpath=ckpt_dir, save_last=True, save_top_k=0, every_n_train_steps=1)]
L.seed_everything(0)
trainer = L.Trainer(accelerator="cpu", max_steps=args["max_steps"], logger=False, enable_progress_bar=False,
                    enable_model_summary=False, callbacks=callbacks)
trainer.fit(Tiny(), DataLoader(dataset(), batch_size=8))
print("FINISHED", trainer.global_step, flush=True)
'''

TINY_MODEL = '''
import torch
from torch import nn
import lightning as L
from torch.utils.data import TensorDataset


class Tiny(L.LightningModule):
    """A linear regression: the subject is the checkpoint write, not the model."""

    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(8, 1)
        self.batches_run = 0

    def training_step(self, batch, batch_idx):
        self.batches_run += 1
        x, y = batch
        return nn.functional.mse_loss(self.layer(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def dataset():
    generator = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randn(64, 8, generator=generator), torch.randn(64, 1, generator=generator))
'''


@pytest.fixture
def other_filesystem(tmp_path: Path) -> Iterator[Path | None]:
    """A fresh writable folder on another filesystem than ``tmp_path`` (a tmpfs such as /dev/shm), or None."""
    folder = None
    device = tmp_path.stat().st_dev
    for candidate in (Path("/dev/shm"), Path(tempfile.gettempdir())):
        try:
            if candidate.is_dir() and os.access(candidate, os.W_OK) and candidate.stat().st_dev != device:
                folder = Path(tempfile.mkdtemp(prefix="ckpt-kill-", dir=candidate))
                break
        except OSError:
            continue
    yield folder
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def _train_and_kill(tmp_path: Path, writer: str, fault: str, tmpdir: Path) -> tuple[Path, dict]:
    """Run the training subprocess until the fault kills it; the checkpoint folder and the fault's report."""
    (tmp_path / "tiny_model.py").write_text(TINY_MODEL)
    script = tmp_path / "train_and_kill.py"
    script.write_text(SCRIPT)
    ckpt_dir = tmp_path / "run" / "checkpoints"
    args = {"ckpt_dir": str(ckpt_dir), "writer": writer, "fault": fault, "kill_at": KILL_AT, "max_steps": MAX_STEPS,
            "callbacks_yaml": str(REPO_ROOT / "ochmr_lit" / "configs" / "callbacks" / "default.yaml")}
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", WANDB_MODE="offline", PYTHONPATH=str(REPO_ROOT),
               TMPDIR=str(tmpdir), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(script), json.dumps(args)], env=env, capture_output=True, text=True,
                          timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode == -signal.SIGKILL, f"expected death by SIGKILL, got {proc.returncode}:\n{output[-3000:]}"
    reports = [json.loads(line[len("FAULT "):]) for line in proc.stdout.splitlines() if line.startswith("FAULT ")]
    assert len(reports) == 1, output[-3000:]
    return ckpt_dir, reports[0]


def _global_step(path: Path) -> int:
    return torch.load(path, map_location="cpu", weights_only=True)["global_step"]


@pytest.mark.parametrize("fault", ["write", "rename"], ids=["mid-write", "before-rename"])
def test_project_checkpoints_survive_sigkill_during_the_write(fault, tmp_path, other_filesystem):
    """Killed while writing last.ckpt #4: last.ckpt is #3, the torn bytes sit in a .partial file beside it."""
    tmpdir = other_filesystem or tmp_path / "tmp"  # the project's writer must not depend on where TMPDIR is
    tmpdir.mkdir(exist_ok=True)
    ckpt_dir, report = _train_and_kill(tmp_path, "project", fault, tmpdir)

    last = ckpt_dir / "last.ckpt"
    state = torch.load(last, map_location="cpu", weights_only=True)
    assert state["global_step"] == KILL_AT - 1
    assert set(state["state_dict"]) == {"layer.weight", "layer.bias"}
    assert len(state["optimizer_states"]) == 1

    partial = Path(report["path"])
    assert partial.parent == ckpt_dir and partial.name.startswith(".last.ckpt.") and partial.suffix == PARTIAL_SUFFIX
    assert partial.stat().st_size == report["written"] > 0
    if fault == "write":
        assert report["written"] < report["total"]  # really torn mid-write, not killed before or after it
    else:  # complete but never renamed: the rename is the commit point
        assert _global_step(partial) == KILL_AT
    assert sorted(p.name for p in ckpt_dir.iterdir()) == sorted(["last.ckpt", partial.name])
    assert [p.name for p in ckpt_dir.glob("*.ckpt")] == ["last.ckpt"]  # nothing else looks like a checkpoint


def test_resume_after_a_torn_write_continues_from_the_previous_step(tmp_path):
    """fit(ckpt_path=last.ckpt) after the kill runs steps 4..8, and the next run's start removes the .partial."""
    ckpt_dir, report = _train_and_kill(tmp_path, "project", "write", tmp_path)
    sys.path.insert(0, str(tmp_path))
    try:
        from tiny_model import Tiny, dataset
    finally:
        sys.path.remove(str(tmp_path))
    model = Tiny()
    trainer = L.Trainer(accelerator="cpu", max_steps=MAX_STEPS, logger=False, enable_progress_bar=False,
                        enable_model_summary=False,
                        callbacks=[AtomicCheckpoints(), ModelCheckpoint(dirpath=ckpt_dir, save_last=True,
                                                                        save_top_k=0, every_n_train_steps=1)])
    trainer.fit(model, DataLoader(dataset(), batch_size=8), ckpt_path=str(ckpt_dir / "last.ckpt"))
    assert model.batches_run == MAX_STEPS - (KILL_AT - 1)
    assert _global_step(ckpt_dir / "last.ckpt") == MAX_STEPS
    assert not Path(report["path"]).exists()
    assert sorted(p.name for p in ckpt_dir.iterdir()) == ["last.ckpt"]


def test_lightning_write_with_tmpdir_on_the_same_filesystem_keeps_the_previous_checkpoint(tmp_path):
    """Lightning alone: the torn temporary file is under TMPDIR, and last.ckpt is the previous one."""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    ckpt_dir, report = _train_and_kill(tmp_path, "lightning", "write", tmpdir)
    assert _global_step(ckpt_dir / "last.ckpt") == KILL_AT - 1
    torn = Path(report["path"])
    assert torn.parent == tmpdir and torn.name != "last.ckpt"
    assert torn.stat().st_size == report["written"] < report["total"]
    assert [p.name for p in ckpt_dir.iterdir()] == ["last.ckpt"]


def test_lightning_write_with_tmpdir_on_another_filesystem_tears_last_checkpoint(tmp_path, other_filesystem):
    """Why the project writes checkpoints itself: Lightning's move across filesystems copies into last.ckpt.

    If this starts failing, Lightning's own save became atomic in that case too.
    """
    tmpdir = other_filesystem
    if tmpdir is None:
        pytest.skip("no writable folder on another filesystem than the test's temporary folder")
    ckpt_dir, report = _train_and_kill(tmp_path, "lightning", "copy", tmpdir)
    last = ckpt_dir / "last.ckpt"
    assert Path(report["path"]) == last and last.stat().st_size == report["written"] < report["total"]
    with pytest.raises(RuntimeError, match="failed finding central directory"):
        torch.load(last, map_location="cpu", weights_only=True)
