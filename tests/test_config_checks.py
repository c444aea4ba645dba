"""Settings checked before any work starts: the data module's keys and numbers, the context estimator's crop, the
seed and the estimator a regressor trained alone reads; each mistake named in one line with its fix."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from types import SimpleNamespace

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from ochmr_lit.config_checks import check_data, check_run_config
from ochmr_lit.config_signatures import accepts
from ochmr_lit.data.datamodules.base import check_loader_settings
from ochmr_lit.errors import ConfigError, MissingFileError
from ochmr_lit.runner import run_evaluate
from ochmr_lit.runner.evaluation import warn_unused_model_settings
from ochmr_lit.runner.training import stage_config


def _stages(*overrides: str):
    with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
        cfg = compose(config_name="fit", overrides=["experiment=synthcrowd", "run_dir=/tmp/unused", *overrides])
    pipeline = cfg.task == "pipeline"
    return cfg, [("", cfg), ("context_stage.", stage_config(cfg))] if pipeline else [("", cfg)]


def _error(*overrides: str) -> str:
    cfg, stages = _stages(*overrides)
    with pytest.raises((ConfigError, MissingFileError)) as error:
        check_run_config(cfg, stages)
    return str(error.value)


def test_the_default_experiment_passes():
    check_run_config(*_stages())
    check_run_config(*_stages("tags=[ablation,crop128]"))


def test_a_key_left_by_another_data_config_is_named_with_how_to_remove_it():
    message = _error("data=coco")
    assert message.startswith("data.splits: CocoKeypointDataModule has no such setting (it takes ann_files, augment, ")
    assert message.endswith("is removed with ~data.splits")
    check_run_config(*_stages("data=coco", "~data.splits"))


@pytest.mark.parametrize(("override", "message"), [
    ("data.batch_size=0", "data.batch_size=0: people per training batch, a whole number >= 1"),
    ("data.num_workers=-1", "data.num_workers=-1: data-loader worker processes (0 = in the main process), a whole "
                            "number >= 0"),
    ("data.eval_batch_size=2.5", "data.eval_batch_size=2.5: people per evaluation batch (null = batch_size), a whole "
                                 "number >= 1"),
    ("data.sigma=0", "data.sigma=0: the centermap Gaussian's sigma in cells, a number > 0"),
    ("seed=abc", "seed='abc': the run's seed, a whole number >= 0 (e.g. seed=1)"),
    ("tags=ablation", "tags='ablation': a list of the run's W&B tags, e.g. tags=[ablation] or tags=[ablation,crop128]"),
    # the context stage takes the run's crops: a user who set data.crop_size is told why context_stage is named
    ("data.crop_size=100", "context_stage.data.crop_size=100 (data.crop_size=100, which the context stage takes unless "
                           "context_stage.data.crop_size is set): the context estimator (HRNet) takes crop sides that "
                           "are multiples of 32, e.g. context_stage.data.crop_size=96 context_stage.data.map_size=24"),
    ("data.map_size=7", "context_stage.data.map_size=7 (data.map_size=7, which the context stage takes unless "
                        "context_stage.data.map_size is set): the context estimator predicts maps of a quarter of the "
                        "crop side: set context_stage.data.map_size=16 for context_stage.data.crop_size=64"),
    ("++context_stage.data.crop_size=100", "context_stage.data.crop_size=100: the context estimator (HRNet) takes "
                                           "crop sides that are multiples of 32"),
    ("model.hidden_channels=0", "model.hidden_channels=0: the channels of the CoNorm blocks' context branch, a whole "
                                "number >= 1 (e.g. 64)"),
    ("model.crop_size=96", "model.crop_size=96, but data.crop_size=64: the regressor takes the crops the data module "
                           "cuts; set data.crop_size=96 instead (model.crop_size follows it)"),
    ("model.focal_length=-1", "model.focal_length=-1.0: must be a positive number of pixels at model.crop_size, or "
                              "null for SPIN's field of view"),
    ("model.optim.weight_decay=-1", "model.optim.weight_decay=-1: must be >= 0 (0 = none)"),
    ("model.optim.warmup_steps=-3", "model.optim.warmup_steps=-3: optimiser steps of linear warm-up, a whole number "
                                    ">= 0 (0 = none)"),
    ("model.loss_weights.keypoints_3d=-1", "model.loss_weights.keypoints_3d=-1: a loss weight is a number >= 0 (0 = "
                                           "off); a negative one would train the model to make that error larger"),
    ("data.generation_seed=-1", "data.generation_seed=-1: the seed SynthCrowd's scenes are drawn with, a whole number "
                                ">= 0"),
    ("data.max_bad_fraction=2", "data.max_bad_fraction=2; use a fraction between 0 and 1"),
    ("test_after_fit=maybe", "test_after_fit='maybe': use true (test the kept checkpoint after training) or false"),
    ("model.optim.lr=abc", "model.optim.lr='abc': must be a number"),
    ("model.optim.name=sgdd", "model.optim.name='sgdd' is not known; use one of sgd, adam, adamw"),
    ("++context_stage.model.optim.schedule=cosinee", "context_stage.model.optim.schedule='cosinee' is not known; use "
                                                    "constant, cosine, step"),
    ("model.num_vis=-1", "model.num_vis=-1: validation samples drawn into the loggers each epoch, a whole number >= 0"),
    ("++context_stage.model.num_vis=-1", "context_stage.model.num_vis=-1: validation samples drawn"),
    ("model.keypoints_2d_limit=-1", "model.keypoints_2d_limit=-1: how far outside the crop"),
    ("model.heatmap_keypoints=16", "model.heatmap_keypoints must be 0 (no heatmap head) or 17 (the COCO-17 keypoints "
                                   "the data supervises it with), got 16"),
    ("model.context_sigma=0", "model.context_sigma=0: the Gaussian sigma (map cells) predicted centres are rendered "
                              "with"),
    ("callbacks.model_checkpoint.save_top_k=-5", "callbacks.model_checkpoint.save_top_k=-5: Invalid value for "
                                                 "save_top_k=-5. Must be >= -1"),
    ("+callbacks.ema={_target_:ochmr_lit.lit.ema.EMAWeights,decay:2}", "callbacks.ema.decay=2; use a value in (0, 1)"),
    ("data.image_size=[10,10]", "data.image_size=[10, 10]: the generated images' [H, W] in px, each at least 16"),
    ("data.generation_workers=-1", "data.generation_workers=-1: processes that generate the images (0 = this one)"),
    ("task=regressor", "model.context_source=predicted needs model.context_checkpoint=<a context-estimator "
                       "checkpoint>"),
    ("task=regressor model.context_checkpoint=/nonexistent/context.ckpt",
     "model.context_checkpoint=/nonexistent/context.ckpt: no such file"),
])
def test_a_bad_setting_is_named_before_work_starts(override, message):
    assert _error(*override.split()).startswith(message)


@pytest.mark.parametrize(("override", "message"), [
    ("+model.lr=0.1", "model.lr: MeshRegressorModule has no such setting (it takes backbone, body_model_dir, "),
    ("+context_stage.model.widht=48", "context_stage.model.widht: ContextEstimatorModule has no such setting (it "
                                      "takes channels_last, compile, compile_mode, global_radius, "),
    ("+callbacks.lr_monitor.logging_intervl=epoch", "callbacks.lr_monitor.logging_intervl: LearningRateMonitor has "
                                                    "no such setting (it takes log_momentum, log_weight_decay, "
                                                    "logging_interval); remove it with "
                                                    "~callbacks.lr_monitor.logging_intervl"),
    ("+logger.csv.save_dri=/x", "logger.csv.save_dri: ContinuingCSVLogger has no such setting"),
    ("+callbacks.foo=1", "callbacks.foo=1: each entry under callbacks is null (off) or a config with _target_"),
    ("model._target_=ochmr_lit.lit.NoSuchModule", "model._target_=ochmr_lit.lit.NoSuchModule: no such class"),
])
def test_a_key_no_class_takes_is_named_before_work_starts(override, message):
    # Hydra would pass it to the constructor: a TypeError when the stage starts, after a context stage has trained
    assert _error(override).startswith(message)


@pytest.mark.parametrize(("override", "message"), [
    ("model.iterations=abc", "model.iterations='abc': MeshRegressorModule takes int here"),
    ("model.conorm_depths=abc", "model.conorm_depths='abc': MeshRegressorModule takes tuple[int, ...] here"),
    ("model.dropout=[0.5]", "model.dropout=[0.5]: MeshRegressorModule takes float here"),
    ("context_stage.model.width=w32", "context_stage.model.width='w32': ContextEstimatorModule takes int here"),
    ("data.augment=5", "data.augment=5: the training augmentation's settings (flip_prob, rotation_prob, scale, ...; "
                       "ochmr_lit.data.transforms.AugmentationConfig), e.g. data.augment.flip_prob=0.5, or "
                       "data.augment=null for none"),
    ("callbacks.model_checkpoint.save_last=maybe", "callbacks.model_checkpoint.save_last='maybe': ModelCheckpoint "
                                                   "takes Union[bool, Literal['link'], None] here"),
    # WandbLogger's signature has an annotation its module imports only for type checkers: the others still count
    ("logger=wandb logger.wandb.offline=maybe", "logger.wandb.offline='maybe': WandbLogger takes bool here"),
])
def test_a_value_of_the_wrong_type_is_named_with_the_type_its_class_takes(override, message):
    assert _error(*override.split()) == message


def test_an_experiments_setting_that_another_data_config_takes_in_another_form_is_named_with_its_removal():
    # SynthCrowd's splits are image counts; 3DPW's are lists of the dataset's own splits
    message = _error("data=3dpw")
    assert message == ("data.splits={'train': 800, 'val': 60, 'test': 80}: ThreeDPWDataModule takes "
                       "dict[str, Sequence[str]] | None here; a key another data config or the experiment set, e.g. "
                       "SynthCrowd's splits after data=<another dataset>, is removed with ~data.splits")


@pytest.mark.parametrize(("value", "annotation", "accepted"), [
    ([1, 2], tuple[int, ...], True), ([1, "a"], tuple[int, ...], False), ([1, 2], tuple[int, int], True),
    ([1], tuple[int, int], False), ("ab", Sequence[str], False), (["a"], Sequence[str], True),
    ({"train": ["train"]}, dict[str, Sequence[str]], True), ({"train": 8}, dict[str, Sequence[str]], False),
    ({"a": 1}, Mapping[str, int], True), (3, dict, False),
])
def test_config_values_are_matched_against_annotations(value, annotation, accepted):
    assert accepts(value, annotation) is accepted


def test_an_experiments_setting_of_a_callback_that_is_switched_off_is_named_with_its_removal():
    # synthcrowd_overfit sets callbacks.model_checkpoint.every_n_epochs; callbacks=none has no model_checkpoint
    message = _error("experiment=synthcrowd_overfit", "callbacks=none")
    assert message.startswith("callbacks.model_checkpoint={'every_n_epochs': 100}: each entry under callbacks is null")
    assert message.endswith("are removed with ~callbacks.model_checkpoint")
    check_run_config(*_stages("experiment=synthcrowd_overfit", "callbacks=none", "~callbacks.model_checkpoint"))


@pytest.mark.parametrize("logger", ["default", "csv", "tensorboard", "wandb", "none"])
def test_every_logger_and_callbacks_option_passes(logger):
    for callbacks in ("default", "evaluate", "none"):
        check_run_config(*_stages(f"logger={logger}", f"callbacks={callbacks}"))


def test_a_regressor_alone_may_take_any_crop_and_the_annotations_maps():
    check_run_config(*_stages("task=regressor", "model.context_source=gt", "data.crop_size=100",
                              "data.map_size=25"))


def test_the_data_module_applies_the_same_rule_when_built_directly():
    from ochmr_lit.data.datamodules.synthcrowd import SynthCrowdDataModule

    with pytest.raises(ConfigError, match=re.escape("data.prefetch_factor=0: batches each worker loads ahead")):
        SynthCrowdDataModule(root="/unused", prefetch_factor=0)
    check_loader_settings({"crop_size": 64, "eval_batch_size": None})
    check_data({"_target_": "ochmr_lit.data.SynthCrowdDataModule", "crop_size": 64, "splits": {"train": 8}})


def test_evaluate_checks_the_data_settings_before_reading_the_checkpoint(tmp_path):
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"")  # never read: the data settings are refused first
    with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
        cfg = compose(config_name="evaluate", overrides=["experiment=synthcrowd", "data=coco", f"ckpt_path={ckpt}",
                                                          f"run_dir={tmp_path / 'eval'}"])
    with pytest.raises(ConfigError, match=r"^data\.splits: CocoKeypointDataModule has no such setting"):
        run_evaluate(cfg)


@pytest.mark.parametrize(("override", "message"), [
    ("protocol=3dwp", "protocol='3dwp': unknown evaluation protocol; did you mean protocol=3dpw? the protocols are "
                      "3doh, 3dpw, "),
    ("+model.lr=0.1", "model.lr: MeshRegressorModule has no such setting"),
])
def test_evaluate_names_a_bad_setting_before_reading_the_checkpoint(tmp_path, override, message):
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"")  # never read
    with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
        cfg = compose(config_name="evaluate", overrides=["experiment=synthcrowd", override, f"ckpt_path={ckpt}",
                                                          f"run_dir={tmp_path / 'eval'}"])
    with pytest.raises(ConfigError) as error:
        run_evaluate(cfg)
    assert str(error.value).startswith(message)


def test_evaluate_names_the_model_settings_it_does_not_use(caplog):
    # the model is rebuilt from the checkpoint: a model.* setting that differs from it is said to be unused
    with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
        cfg = compose(config_name="evaluate", overrides=["experiment=synthcrowd", "model.iterations=2",
                                                          "model.flip_test=true", "ckpt_path=x", "run_dir=/tmp/unused"])
    trained = {k: v for k, v in OmegaConf.to_container(cfg.model, resolve=True).items() if k != "_target_"}
    trained.update(iterations=3, flip_test=False, conorm_depths=tuple(trained["conorm_depths"]))
    with caplog.at_level("WARNING", logger="ochmr_lit.runner.evaluation"):
        unused = warn_unused_model_settings(cfg, SimpleNamespace(hparams=trained))
    assert unused == ["model.iterations=2 (checkpoint: 3)", "model.flip_test=True (checkpoint: False)"]
    assert "these model settings of the config are not used: model.iterations=2 (checkpoint: 3);" in caplog.text
    # a hyper-parameter evaluate's own setting replaced (flip_test=...) is not reported
    assert warn_unused_model_settings(cfg, SimpleNamespace(hparams=trained), {"flip_test"}) == [
        "model.iterations=2 (checkpoint: 3)"]


def test_a_ramp_longer_than_the_training_is_named_in_a_warning(caplog):
    with caplog.at_level("WARNING", logger="ochmr_lit.config_checks"):
        check_run_config(*_stages("experiment=synthcrowd_long", "trainer.max_epochs=5"))
    assert ("data.augment.geometric_ramp_epochs=12 is not shorter than trainer.max_epochs=5: the last epoch trains "
            "with 33 % of the geometric augmentation (set the ramp to about half the epochs, e.g. "
            "data.augment.geometric_ramp_epochs=2)") in caplog.text
    caplog.clear()
    # full strength comes in epoch 12 (0-based): 12 epochs end at 11/12 of it
    with caplog.at_level("WARNING", logger="ochmr_lit.config_checks"):
        check_run_config(*_stages("experiment=synthcrowd_long", "trainer.max_epochs=12"))
    assert "trainer.max_epochs=12: the last epoch trains with 92 % of the geometric augmentation" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="ochmr_lit.config_checks"):
        check_run_config(*_stages("experiment=synthcrowd_long", "trainer.max_epochs=13"))
    assert "geometric_ramp_epochs" not in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="ochmr_lit.config_checks"):
        check_run_config(*_stages("experiment=synthcrowd_long"))
    assert "geometric_ramp_epochs" not in caplog.text


# -- trainer values as Lightning checks them, before any stage -------------------------------------------------
CPU_TRAINER = {"accelerator": "cpu", "devices": 1, "precision": "32-true", "max_epochs": 3, "strategy": "auto"}


@pytest.mark.parametrize("setting, message", [
    ({"max_epochs": -2}, "trainer.max_epochs=-2: `max_epochs` must be a non-negative integer or -1. You passed in -2."),
    ({"max_steps": -5}, "trainer.max_steps=-5: `max_steps` must be a non-negative integer or -1 (infinite steps). "
                        "You passed in -5."),
    ({"max_time": "1:00"}, "trainer.max_time='1:00': `Timer(duration='1:00')` is not a valid duration. Expected a "
                           "string in the format DD:HH:MM:SS."),
    ({"num_nodes": 0}, "trainer.num_nodes=0: `num_nodes` must be a positive integer, but got 0."),
    ({"gradient_clip_val": -1.0}, "trainer.gradient_clip_val=-1.0: the largest gradient norm (or value), a number "
                                  ">= 0, or null for no clipping"),
    ({"check_val_every_n_epoch": 0}, "trainer.check_val_every_n_epoch=0: must be above 0 (Lightning divides by it "
                                     "in its training loop)"),
    ({"val_check_interval": 0.0}, "trainer.val_check_interval=0.0: must be above 0 (Lightning divides by it in its "
                                  "training loop)"),
    ({"log_every_n_steps": 0}, "trainer.log_every_n_steps=0: must be above 0 (Lightning divides by it in its "
                               "training loop)"),
])
def test_a_trainer_value_lightning_refuses_is_named_before_any_stage(setting, message):
    from ochmr_lit.config_checks import check_trainer_values

    with pytest.raises(ConfigError) as error:
        check_trainer_values({**CPU_TRAINER, **setting})
    assert str(error.value) == message
    check_trainer_values(CPU_TRAINER)  # and the same trainer without it passes
    check_trainer_values({**CPU_TRAINER, "strategy": "ddp", "devices": 2, "check_val_every_n_epoch": None})


@pytest.mark.parametrize("precision, native, said", [
    ("bf16-mixed", False, "so bf16-mixed is emulated"),
    ("16-mixed", False, "so bf16-mixed (Lightning's choice for 16-mixed on a CPU) is emulated"),
    ("bf16-mixed", True, None),
    ("32-true", False, None),
])
def test_bf16_on_a_cpu_that_emulates_it_is_said_in_one_line(precision, native, said, monkeypatch, caplog):
    from ochmr_lit import config_checks

    monkeypatch.setattr(config_checks, "cpu_has_native_bf16", lambda: native)
    with caplog.at_level("WARNING", logger="ochmr_lit.config_checks"):
        config_checks.check_trainer_values({**CPU_TRAINER, "precision": precision}, "context_stage.trainer")
    lines = [r.getMessage() for r in caplog.records if r.name == "ochmr_lit.config_checks"]
    if said is None:
        assert lines == []
    else:
        assert lines == [f"context_stage.trainer.precision={precision}: this CPU has no native bf16 (AVX-512 BF16 or "
                         f"AMX), {said} and every step runs tens of times slower than in fp32; set "
                         "context_stage.trainer.precision=32-true (what trainer=cpu picks on this CPU)"]
