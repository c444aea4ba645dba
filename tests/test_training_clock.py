"""A run's training time adds up over its interrupted and resumed processes, through its checkpoints."""

import itertools

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

from ochmr_lit.lit.training_clock import TrainingClock


class Tiny(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_seconds_of_each_process_add_up():
    now = [100.0]
    first = TrainingClock(clock=lambda: now[0])
    first.on_train_start(None, None)
    now[0] = 130.0
    assert first.seconds == 30.0 and first.state_dict() == {"seconds": 30.0}  # a checkpoint mid-training
    now[0] = 160.0
    first.on_train_end(None, None)
    now[0] = 1000.0  # time after training ends does not count
    assert first.seconds == 60.0

    resumed = TrainingClock(clock=lambda: now[0])
    resumed.load_state_dict(first.state_dict())
    assert resumed.seconds == 60.0
    resumed.on_train_start(None, None)
    now[0] = 1025.0
    assert resumed.seconds == 85.0


def _trainer(tmp_path, epochs, clock):
    return L.Trainer(max_epochs=epochs, callbacks=[clock, ModelCheckpoint(dirpath=tmp_path, save_last=True)],
                     logger=False, enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)


def test_a_resumed_run_continues_from_the_time_its_checkpoint_holds(tmp_path):
    loader = DataLoader(TensorDataset(torch.randn(12, 2)), batch_size=4)
    ticks = itertools.count(0.0, 0.5)  # every reading half a second after the last
    first = TrainingClock(clock=lambda: next(ticks))
    _trainer(tmp_path, 1, first).fit(Tiny(), loader)
    stored = torch.load(tmp_path / "last.ckpt", weights_only=True)["callbacks"]
    saved = next(state["seconds"] for key, state in stored.items() if key.startswith("TrainingClock"))
    assert 0.0 < saved <= first.seconds

    frozen = TrainingClock(clock=lambda: 7.0)  # this process takes no time: the total is the checkpoint's
    _trainer(tmp_path, 2, frozen).fit(Tiny(), loader, ckpt_path=tmp_path / "last.ckpt")
    assert frozen.seconds == pytest.approx(saved)
