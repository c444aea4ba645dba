"""data.on_bad_sample: ``raise`` stops at the first bad sample; ``skip`` leaves it out of its batch, counts it
per epoch by reason (over DataLoader workers and DDP ranks), reports it and stops the run past max_bad_fraction."""

from __future__ import annotations

import csv
import logging
import re
from collections import Counter
from pathlib import Path

import lightning as L
import pytest
import torch
from conftest import EndProcessGroup
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from lightning.pytorch.loggers import CSVLogger

from ochmr_lit.data.bad_samples import (
    BadSampleMonitor,
    TooManyBadSamplesError,
    skip_empty_batch,
    skipped_step_loss,
)
from ochmr_lit.data.datamodules.base import SkipEmptyBatchesLoader, TopDownDataModule
from ochmr_lit.data.dataset import (
    BadSample,
    SeededSampler,
    batch_num_samples,
    collate_skipping_bad,
    is_empty_batch,
)
from ochmr_lit.data.readers.coco_format import load_coco_keypoint_records
from ochmr_lit.data.transforms import BadSampleError

DATA_CONFIGS = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "ochmr_lit" / "configs" / "data")
                      .glob("*.yaml"))


class ListDataModule(TopDownDataModule):
    """The top-down data module over a fixed list of records (the same people in every split)."""

    def __init__(self, records, **kwargs):
        super().__init__(**{"crop_size": 64, "map_size": 16, "num_workers": 0, "augment": None, **kwargs})
        self.records = records

    def load_records(self, split):
        return list(self.records), Counter()


class TinyModule(L.LightningModule):
    """One weight; skips empty batches as the framework's modules do; counts what it trains and evaluates on."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.trained = self.evaluated = 0

    def training_step(self, batch, batch_idx):
        if skip_empty_batch(self, batch):
            return skipped_step_loss(self)
        self.trained += batch_num_samples(batch)
        loss = ((batch["image"].mean() - self.w) ** 2).sum()
        self.log("train/loss", loss, batch_size=batch_num_samples(batch))
        return loss

    def on_before_optimizer_step(self, optimizer):
        stepped = float(any(p.grad is not None for p in self.parameters()))  # False: the step changes nothing
        self.log("steps_with_gradients", stepped, reduce_fx="sum", on_step=False, on_epoch=True)

    def validation_step(self, batch, batch_idx):
        assert not is_empty_batch(batch)
        self.evaluated += batch_num_samples(batch)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


@pytest.fixture
def records(fixtures_dir, tmp_path):
    """The 14 people of the COCO fixture; 785's person has a missing image, 40083's three a truncated one."""
    records, _ = load_coco_keypoint_records(fixtures_dir / "coco" / "test_coco.json", fixtures_dir / "coco", "coco")
    data = (fixtures_dir / "coco" / "000000040083.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    for record in records:
        if record.image_id == 785:
            record.image_path = tmp_path / "gone.jpg"
        elif record.image_id == 40083:
            record.image_path = tmp_path / "cut.jpg"
    return records


def _trainer(tmp_path, callbacks=(), max_epochs=1, **kwargs) -> L.Trainer:
    return L.Trainer(accelerator="cpu", devices=1, max_epochs=max_epochs,
                     logger=CSVLogger(tmp_path, name="csv", version=0), callbacks=list(callbacks),
                     enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                     num_sanity_val_steps=0, use_distributed_sampler=False, log_every_n_steps=1, **kwargs)


def _logged(trainer: L.Trainer) -> dict[str, float]:
    rows = list(csv.DictReader(Path(trainer.logger.log_dir, "metrics.csv").open()))
    return {k: float(v) for row in rows for k, v in row.items() if v not in ("", None) and k.startswith("data/")}


def test_raise_policy_stops_at_the_first_bad_sample_with_its_message(records, tmp_path):
    loader = ListDataModule(records, batch_size=4).val_dataloader()
    with pytest.raises(BadSampleError, match=re.escape(f"image file not found: {tmp_path / 'gone.jpg'}")):
        next(iter(loader))


def test_skip_policy_leaves_bad_samples_out_of_batches_built_in_worker_processes(records, tmp_path):
    module = ListDataModule(records, batch_size=7, num_workers=1, persistent_workers=False, on_bad_sample="skip")
    batches = list(module.train_dataloader())
    assert len(batches) == 2  # 14 keys, 7 per batch: bad samples leave holes, not fewer batches
    bad = Counter()
    for batch in batches:
        bad.update(batch["bad_samples"])
    assert bad == {"missing_image": 1, "truncated_image": 3}
    kept = sorted(int(i) for batch in batches for i in batch["index"])
    assert kept == [i for i, r in enumerate(records) if r.image_id not in (785, 40083)]
    assert all(batch["image"].shape[1:] == (3, 64, 64) for batch in batches)
    first = {reason: m for batch in batches for reason, m in batch["bad_examples"].items()}
    assert first["missing_image"] == f"image file not found: {tmp_path / 'gone.jpg'} (check the dataset root in " \
                                     "the data config)"


def test_a_batch_whose_samples_all_failed_is_empty_and_training_steps_skip_it():
    batch = collate_skipping_bad([BadSample("missing_image", "coco/1/2", "image file not found: a.jpg"),
                                  BadSample("bad_box", "coco/1/3", "coco/1/3: box [0, 0, 0, 0] ...")])
    assert batch == {"bad_samples": {"missing_image": 1, "bad_box": 1},
                     "bad_examples": {"missing_image": "image file not found: a.jpg",
                                      "bad_box": "coco/1/3: box [0, 0, 0, 0] ..."}}
    assert is_empty_batch(batch) and batch_num_samples(batch) == 0
    from ochmr_lit.lit import ContextEstimatorModule, MeshRegressorModule

    regressor = MeshRegressorModule(backbone="resnet18", conorm_depths=[], context_source="none")
    assert regressor.training_step(batch, 0) is None
    assert ContextEstimatorModule().training_step(batch, 0) is None


def test_evaluation_loader_never_yields_an_empty_batch_and_keeps_every_count(records, tmp_path):
    # sorted by image: 785 (1 person, missing), 40083 (3, truncated), then 10 good people; batches of 2
    module = ListDataModule(records, eval_batch_size=2, on_bad_sample="skip")
    loader = module.val_dataloader()
    assert isinstance(loader, SkipEmptyBatchesLoader)
    batches = list(loader)
    assert [batch_num_samples(b) for b in batches] == [2, 2, 2, 2, 2]  # [785, 40083 x 3], then the 10 good
    assert batches[0]["bad_samples"] == {"missing_image": 1, "truncated_image": 3}  # moved from the empty batches
    assert all(b["bad_samples"] == {} for b in batches[1:])
    broken = [r for r in records if r.image_id in (785, 40083)]
    with pytest.raises(RuntimeError) as error:
        list(ListDataModule(broken, eval_batch_size=2, on_bad_sample="skip").val_dataloader())
    assert str(error.value) == (
        f"no sample of this evaluation split could be loaded (1 missing_image, 3 truncated_image; first: image file "
        f"not found: {tmp_path / 'gone.jpg'} (check the dataset root in the data config)); data.on_bad_sample=skip "
        "cannot leave out a whole split: fix the data")


def test_monitor_logs_counts_by_reason_and_reports_each_epoch(records, tmp_path, caplog):
    module = ListDataModule(records, batch_size=2, eval_batch_size=4, on_bad_sample="skip", max_bad_fraction=0.5)
    trainer = _trainer(tmp_path, max_epochs=2)  # no monitor configured: the data module adds it
    model = TinyModule()
    with caplog.at_level(logging.INFO, logger="ochmr_lit.data.bad_samples"):
        trainer.fit(model, datamodule=module)
    assert sum(isinstance(c, BadSampleMonitor) for c in trainer.callbacks) == 1
    assert model.trained == 2 * 10 and model.evaluated == 2 * 10
    logged = _logged(trainer)
    assert logged["data/bad_samples/missing_image"] == 1 and logged["data/bad_samples/truncated_image"] == 3
    assert logged["data/bad_fraction"] == pytest.approx(4 / 14)
    assert logged["data/val/bad_samples/truncated_image"] == 3
    lines = [r.getMessage() for r in caplog.records if r.name == "ochmr_lit.data.bad_samples"]
    report = ("epoch {}: 4 of 14 samples left out (28.57%): 1 missing_image, 3 truncated_image; first: image file "
              f"not found: {tmp_path / 'gone.jpg'} (check the dataset root in the data config)")
    assert lines == [f"val {report.format(0)}", f"train {report.format(0)}", f"val {report.format(1)}",
                     f"train {report.format(1)}"]


def test_run_stops_past_max_bad_fraction_with_counts_fraction_and_setting(records, tmp_path):
    module = ListDataModule(records, batch_size=2, on_bad_sample="skip", max_bad_fraction=0.25)
    trainer = _trainer(tmp_path, callbacks=[BadSampleMonitor()], limit_val_batches=0)
    with pytest.raises(TooManyBadSamplesError) as error:
        trainer.fit(TinyModule(), datamodule=module)
    assert str(error.value) == (
        "train epoch 0: 4 of 14 samples left out (28.57%): 1 missing_image, 3 truncated_image; first: image file not "
        f"found: {tmp_path / 'gone.jpg'} (check the dataset root in the data config), above "
        "data.max_bad_fraction=0.25: fix or remove those samples (the first message names the file), or raise "
        "data.max_bad_fraction if losing them is acceptable")


def test_raise_policy_adds_no_keys_and_no_monitor(fixtures_dir, tmp_path):
    records, _ = load_coco_keypoint_records(fixtures_dir / "coco" / "test_coco.json", fixtures_dir / "coco", "coco")
    module = ListDataModule(records[:4], batch_size=2)
    trainer = _trainer(tmp_path, limit_val_batches=0)
    trainer.fit(TinyModule(), datamodule=module)
    assert not any(isinstance(c, BadSampleMonitor) for c in trainer.callbacks)
    batch = next(iter(module.train_dataloader()))
    assert "bad_samples" not in batch and not _logged(trainer)
    assert Path(trainer.logger.log_dir, "metrics.csv").is_file()  # the run logged, just nothing under data/


def test_counts_are_summed_over_ddp_ranks_and_empty_batches_skipped_together(records, tmp_path):
    """Two CPU processes, batches of one: a rank whose sample failed skips the step, and so does the other."""
    module = ListDataModule(records, batch_size=1, eval_batch_size=1, on_bad_sample="skip", max_bad_fraction=0.5)
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp_spawn", max_epochs=1,
                        logger=CSVLogger(tmp_path, name="csv", version=0), enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        use_distributed_sampler=False, callbacks=[EndProcessGroup()])
    trainer.fit(TinyModule(), datamodule=module)
    logged = _logged(trainer)
    rows = list(csv.DictReader(Path(trainer.logger.log_dir, "metrics.csv").open()))
    stepped = [float(r["steps_with_gradients"]) for r in rows if r.get("steps_with_gradients")]
    good = [[records[i].image_id not in (785, 40083) for _, i in SeededSampler(14, True, rank=r, world_size=2)]
            for r in (0, 1)]
    # a step updates the weights only when both ranks' samples loaded; the others are skipped on both ranks
    assert stepped == [sum(a and b for a, b in zip(*good, strict=True))]
    assert 0 < stepped[0] < 7
    # each rank saw 7 of the 14 people: the logged counts are the sums over both
    assert logged["data/bad_samples/missing_image"] == 1 and logged["data/bad_samples/truncated_image"] == 3
    assert logged["data/bad_fraction"] == pytest.approx(4 / 14)
    assert logged["data/val/bad_samples/missing_image"] == 1 and logged["data/val/bad_samples/truncated_image"] == 3


@pytest.mark.parametrize("name", DATA_CONFIGS)
def test_every_data_config_sets_the_policy_and_its_module_accepts_it(name, tmp_path):
    with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
        cfg = compose(config_name="fit", overrides=["~experiment", f"data={name}", f"paths.data_root={tmp_path}"])
        skip = compose(config_name="fit", overrides=["~experiment", f"data={name}", f"paths.data_root={tmp_path}",
                                                      "data.on_bad_sample=skip", "data.max_bad_fraction=0.2"])
    assert (cfg.data.on_bad_sample, cfg.data.max_bad_fraction) == ("raise", 0.01)
    module = instantiate(skip.data, _convert_="all")
    assert (module.on_bad_sample, module.max_bad_fraction) == ("skip", 0.2)


@pytest.mark.parametrize(("setting", "message"), [
    ({"on_bad_sample": "ignore"}, "data.on_bad_sample='ignore'; use one of ['raise', 'skip']"),
    ({"max_bad_fraction": 5}, "data.max_bad_fraction=5; use a fraction between 0 and 1 (0.01 = 1 % of an epoch's "
                              "samples)"),
])
def test_bad_policy_settings_name_the_key(setting, message):
    with pytest.raises(ValueError) as error:
        ListDataModule([], **setting)
    assert str(error.value) == message
