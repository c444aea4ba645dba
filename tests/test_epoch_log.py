"""One log line per epoch, and the progress bar off where nobody can watch it redraw."""

import io
import logging
from types import SimpleNamespace

import lightning as L
import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from torch.utils.data import DataLoader, TensorDataset

from ochmr_lit.lit.epoch_log import EpochLog, format_metrics, progress_bar_setting


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_bar_follows_the_config_on_a_terminal_and_is_off_elsewhere():
    assert progress_bar_setting(True, Tty()) is True
    assert progress_bar_setting(None, Tty()) is None
    assert progress_bar_setting(True, io.StringIO()) is False  # a file: no redraws piling up
    assert progress_bar_setting(False, Tty()) is False


def test_metrics_are_shown_in_order_and_non_finite_ones_left_out():
    metrics = {"val/pa_mpjpe": torch.tensor(85.43), "val/mpjpe": 169.81, "train/loss_total": float("nan"),
               "other": 1.0}
    assert format_metrics(metrics) == "val/mpjpe 169.8, val/pa_mpjpe 85.43"


class Tiny(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        loss = self.layer(batch[0]).pow(2).mean()
        self.log("train/loss_total", loss, on_step=False, on_epoch=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_each_epoch_logs_its_steps_and_loss(tmp_path, caplog):
    loader = DataLoader(TensorDataset(torch.randn(12, 2)), batch_size=4)
    trainer = L.Trainer(max_epochs=2, callbacks=[EpochLog()], logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    with caplog.at_level(logging.INFO, logger="ochmr_lit.lit.epoch_log"):
        trainer.fit(Tiny(), loader)
    lines = [r.getMessage() for r in caplog.records if r.name == "ochmr_lit.lit.epoch_log"]
    assert len(lines) == 2
    assert lines[0].startswith("epoch 1/2: 3 steps in ") and "(step 3); train/loss_total " in lines[0]
    assert lines[1].startswith("epoch 2/2: 3 steps in ") and "(step 6)" in lines[1]


def test_step_lines_every_n_steps_without_a_progress_bar(tmp_path, caplog):
    loader = DataLoader(TensorDataset(torch.randn(24, 2)), batch_size=4)  # 6 steps an epoch
    trainer = L.Trainer(max_epochs=1, callbacks=[EpochLog(every_n_steps=2)], logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    with caplog.at_level(logging.INFO, logger="ochmr_lit.lit.epoch_log"):
        trainer.fit(Tiny(), loader)
    lines = [r.getMessage() for r in caplog.records if r.name == "ochmr_lit.lit.epoch_log"]
    steps = [line for line in lines if ", step " in line]
    assert [line.split(" of the epoch")[0] for line in steps] == [
        "epoch 1, step 2/6", "epoch 1, step 4/6", "epoch 1, step 6/6"]
    # timed from the end of the first batch: no rate before five more batches have run
    assert "steps/s" not in steps[0] and "steps/s" not in steps[1]
    assert "steps/s, about" in steps[2] and "s left in the epoch" in steps[2]
    assert lines[-1].startswith("epoch 1/1: 6 steps in ")


def test_an_epoch_resumed_midway_counts_from_where_it_resumed(caplog):
    # a run stopped at step 202 of 85-step epochs resumes in epoch 3 at its batch 33 (0-based 32)
    trainer = SimpleNamespace(global_step=0, current_epoch=2, max_epochs=40, num_training_batches=85,
                              is_global_zero=True, progress_bar_callback=None, callback_metrics={})
    callback = EpochLog(every_n_steps=50)
    with caplog.at_level(logging.INFO, logger="ochmr_lit.lit.epoch_log"):
        callback.on_train_epoch_start(trainer, None)  # the step counter is restored after this hook
        trainer.global_step = 202
        for batch_idx in range(32, 85):
            callback.on_train_batch_start(trainer, None, None, batch_idx)
            trainer.global_step += 1
            callback.on_train_batch_end(trainer, None, None, None, batch_idx)
        callback.on_train_epoch_end(trainer, None)
    lines = [r.getMessage() for r in caplog.records if r.name == "ochmr_lit.lit.epoch_log"]
    assert lines[0].startswith("epoch 3, step 50/85 of the epoch, ")  # its place in the epoch, not 18 or 250
    assert " s left in the epoch" in lines[0] and "about -" not in lines[0]
    assert lines[1].startswith("epoch 3/40: 53 steps in ") and "(step 255, resumed at batch 33)" in lines[1]


def test_a_slow_first_batch_after_a_resume_does_not_set_the_pace(monkeypatch, caplog):
    # resumed at batch 400 of 851 (0-based 399): its first batch takes 12 s of start-up, the others 0.5 s each
    now = [1000.0]
    monkeypatch.setattr("ochmr_lit.lit.epoch_log.time.perf_counter", lambda: now[0])
    trainer = SimpleNamespace(global_step=8058, current_epoch=9, max_epochs=12, num_training_batches=851,
                              is_global_zero=True, progress_bar_callback=None, callback_metrics={})
    callback = EpochLog(every_n_steps=50)
    with caplog.at_level(logging.INFO, logger="ochmr_lit.lit.epoch_log"):
        callback.on_train_epoch_start(trainer, None)
        for batch_idx in range(399, 500):
            callback.on_train_batch_start(trainer, None, None, batch_idx)
            now[0] += 12.0 if batch_idx == 399 else 0.5
            trainer.global_step += 1
            callback.on_train_batch_end(trainer, None, None, None, batch_idx)
    lines = [r.getMessage() for r in caplog.records if r.name == "ochmr_lit.lit.epoch_log"]
    # one batch after the resume: no pace to tell yet (it was "0.08 steps/s, about 5686 s left")
    assert lines[0] == "epoch 10, step 400/851 of the epoch"
    assert lines[1] == "epoch 10, step 450/851 of the epoch, 2.00 steps/s, about 200 s left in the epoch"
    assert lines[2] == "epoch 10, step 500/851 of the epoch, 2.00 steps/s, about 176 s left in the epoch"


class TinyWithValidation(Tiny):
    def validation_step(self, batch, batch_idx):
        self.log("val/mpjpe", 100.0 + self.global_step, on_step=False, on_epoch=True)


def test_a_validation_inside_an_epoch_gets_its_own_line(tmp_path, caplog):
    loader = DataLoader(TensorDataset(torch.randn(16, 2)), batch_size=4)  # 4 steps an epoch
    trainer = L.Trainer(max_epochs=1, val_check_interval=2, callbacks=[EpochLog(every_n_steps=0)], logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=1, default_root_dir=tmp_path)
    with caplog.at_level(logging.INFO, logger="ochmr_lit.lit.epoch_log"):
        trainer.fit(TinyWithValidation(), loader, DataLoader(TensorDataset(torch.randn(4, 2)), batch_size=4))
    lines = [r.getMessage() for r in caplog.records if r.name == "ochmr_lit.lit.epoch_log"]
    # The sanity check logs nothing; the validation after batch 2 gets its line; the one ending the epoch is in
    # the epoch's line.
    assert lines[0] == "validation at step 2 (epoch 1, batch 2/4); val/mpjpe 102"
    assert len(lines) == 2 and lines[1].startswith("epoch 1/1: 4 steps in ") and "val/mpjpe 104" in lines[1]


class TinyWithTest(Tiny):
    def test_step(self, batch, batch_idx):
        self.log("test/loss", self.layer(batch[0]).pow(2).mean(), on_step=False, on_epoch=True)


def test_a_test_without_a_progress_bar_logs_its_progress_in_batches(tmp_path, caplog):
    loader = DataLoader(TensorDataset(torch.randn(40, 2)), batch_size=2)  # 20 batches: a line every 2
    trainer = L.Trainer(callbacks=[EpochLog()], logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path)
    with caplog.at_level(logging.INFO, logger="ochmr_lit.lit.epoch_log"):
        trainer.test(TinyWithTest(), loader, verbose=False)
    lines = [r.getMessage() for r in caplog.records if r.name == "ochmr_lit.lit.epoch_log"]
    assert [line.split(" (")[0] for line in lines] == [f"testing: {n}/20 batches" for n in range(2, 21, 2)]
    assert "about" in lines[0] and " left" in lines[0] and "done in" in lines[-1]


def test_a_test_with_a_progress_bar_leaves_the_progress_to_it(tmp_path, caplog):
    loader = DataLoader(TensorDataset(torch.randn(8, 2)), batch_size=2)
    trainer = L.Trainer(callbacks=[EpochLog()], logger=False, enable_checkpointing=False, enable_progress_bar=True,
                        enable_model_summary=False, default_root_dir=tmp_path)
    with caplog.at_level(logging.INFO, logger="ochmr_lit.lit.epoch_log"):
        trainer.test(TinyWithTest(), loader, verbose=False)
    assert not [r for r in caplog.records if r.name == "ochmr_lit.lit.epoch_log"]


def test_the_evaluate_entry_point_has_the_progress_lines():
    with initialize_config_module("ochmr_lit.configs", version_base=None):
        cfg = compose("evaluate", overrides=["ckpt_path=x.ckpt"])
    assert "EpochLog" in [type(instantiate(c)).__name__ for c in cfg.callbacks.values() if c is not None]
