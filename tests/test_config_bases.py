"""Config groups with a base: shared settings live in one file, and each config states only what differs.

The data configs over ``data/base/loader``, a pipeline's context stage over the context model's config, and the
``debug`` presets over ``debug/base``."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from lightning.pytorch.profilers import SimpleProfiler
from omegaconf import DictConfig, OmegaConf

import ochmr_lit.configs
from ochmr_lit.config_checks import check_trainer
from ochmr_lit.errors import ConfigError
from ochmr_lit.lit.optim import OptimConfig
from ochmr_lit.runner.training import stage_config

CONFIGS = Path(ochmr_lit.configs.__file__).resolve().parent
#: The loader settings every data config inherits.
DATA_BASE = CONFIGS / "data" / "base" / "loader.yaml"
DATA_CONFIGS = sorted(p.stem for p in (CONFIGS / "data").glob("*.yaml"))
EXPERIMENTS = sorted(p.stem for p in (CONFIGS / "experiment").glob("*.yaml"))
#: The context estimator's group config: what a pipeline's context stage starts from.
CONTEXT_MODEL = CONFIGS / "model" / "context_hrnet.yaml"


def compose_fit(*overrides: str) -> DictConfig:
    """The ``fit`` config with ``overrides``."""
    with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
        return compose(config_name="fit", overrides=[*overrides, "run_dir=/tmp/unused"])


def restated(config: dict, base: dict, prefix: str = "") -> list[str]:
    """The keys of ``config`` that repeat ``base``'s value (nested blocks key by key)."""
    found = []
    for key, value in config.items():
        if key not in base:
            continue
        if isinstance(value, dict) and isinstance(base[key], dict):
            found += restated(value, base[key], f"{prefix}{key}.")
        elif value == base[key]:
            found.append(f"{prefix}{key}")
    return found


def test_data_configs_exist():
    assert len(DATA_CONFIGS) >= 16 and "synthcrowd" in DATA_CONFIGS and "mixed" in DATA_CONFIGS


@pytest.mark.parametrize("name", DATA_CONFIGS)
def test_data_config_states_only_what_differs_from_the_base(name):
    base = OmegaConf.to_container(OmegaConf.load(DATA_BASE))
    own = OmegaConf.to_container(OmegaConf.load(CONFIGS / "data" / f"{name}.yaml"))
    assert restated(own, base) == [], f"data/{name}.yaml restates the base's values; leave them to data/base/loader"


@pytest.mark.parametrize("name", DATA_CONFIGS)
def test_data_config_composes_over_the_base(name):
    data = compose_fit("~experiment", "experiment_name=x", f"data={name}").data
    base = OmegaConf.load(DATA_BASE)
    assert data._target_.startswith("ochmr_lit.data.")
    assert "base" not in data, "the base belongs at the data config's own level (base/loader@_here_)"
    missing = [key for key in base if key not in data]
    assert missing == [], f"data={name} lacks the base's {missing}"
    resolved = OmegaConf.to_container(data, resolve=True)
    assert resolved["seed"] == 0 and resolved["on_bad_sample"] == "raise"


def pipeline_experiments() -> list[str]:
    """The experiments whose file has a ``context_stage.model`` block (a pipeline's first stage)."""
    found = []
    for name in EXPERIMENTS:
        stage = OmegaConf.load(CONFIGS / "experiment" / f"{name}.yaml").get("context_stage")
        if stage is not None and stage.get("model") is not None:
            found.append(name)
    return found


def test_the_default_experiment_has_a_context_stage():
    assert "synthcrowd" in pipeline_experiments()


@pytest.mark.parametrize("name", pipeline_experiments())
def test_context_stage_states_only_what_differs_from_the_context_model(name):
    base = OmegaConf.to_container(OmegaConf.load(CONTEXT_MODEL))
    own = OmegaConf.to_container(OmegaConf.load(CONFIGS / "experiment" / f"{name}.yaml").context_stage.model)
    assert restated(own, base) == [], f"experiment/{name}.yaml restates model/context_hrnet.yaml in context_stage"


@pytest.mark.parametrize("name", pipeline_experiments())
def test_context_stage_model_is_the_context_model_with_the_experiments_values(name):
    cfg = compose_fit(f"experiment={name}")
    model = OmegaConf.to_container(stage_config(cfg).model, resolve=True)
    base = OmegaConf.to_container(OmegaConf.load(CONTEXT_MODEL))
    assert model.keys() == base.keys()
    assert model["_target_"] == "ochmr_lit.lit.ContextEstimatorModule"
    OptimConfig(**model["optim"])  # a valid optimiser setting


def test_synthcrowd_context_stage_keeps_its_settings():
    """The settings the context stage of the default pipeline had when the experiment stated its whole model."""
    cfg = compose_fit("experiment=synthcrowd")
    stage = stage_config(cfg)
    model = OmegaConf.to_container(stage.model, resolve=True)
    assert {k: model[k] for k in ("width", "pck_threshold", "channels_last", "num_vis", "compile", "compile_mode",
                                  "pretrained")} == {"width": 16, "pck_threshold": 0.05, "channels_last": True,
                                                     "num_vis": 4, "compile": False, "compile_mode": None,
                                                     "pretrained": None}
    optim = OptimConfig(**model["optim"])
    assert (optim.name, optim.lr, optim.schedule, optim.warmup_steps, tuple(optim.milestones), optim.weight_decay,
            optim.head_lr_scale) == ("adam", 1e-3, "constant", 0, (), 0.0, 1.0)
    assert (stage.task, stage.experiment_name, stage.trainer.max_epochs) == ("context", "synthcrowd_context", 2)
    assert stage.data == cfg.data and cfg.model._target_.endswith("MeshRegressorModule")


def test_context_stage_overrides_reach_the_composed_model():
    stage = stage_config(compose_fit("experiment=synthcrowd", "context_stage.model.width=32"))
    assert stage.model.width == 32 and stage.model.pck_threshold == 0.05


def test_context_stage_without_a_model_config_is_refused():
    cfg = compose_fit("experiment=synthcrowd")
    cfg.context_stage.model = {"width": 16}
    with pytest.raises(ConfigError, match="context_stage.model has no _target_"):
        stage_config(cfg)


DEBUG_PRESETS = ("fast", "overfit", "profile")


def test_no_debug_preset_by_default():
    cfg = compose_fit("experiment=synthcrowd")
    assert "limit_train_batches" not in cfg.trainer and "wandb" in cfg.logger
    assert cfg.data.splits.train == 800 and cfg.data.get("eval_split") is None


@pytest.mark.parametrize("preset", DEBUG_PRESETS)
def test_debug_preset_shares_the_base(preset):
    cfg = compose_fit("experiment=synthcrowd", f"debug={preset}")
    check_trainer(cfg.trainer)
    assert list(cfg.logger) == ["csv"], "a debug run writes CSV logs only"
    assert (cfg.data.num_workers, cfg.trainer.log_every_n_steps) == (0, 1)
    assert cfg.task == "pipeline" and cfg.experiment_name == "synthcrowd"  # the experiment itself is kept
    check_trainer(stage_config(cfg).trainer, "context_stage.trainer")


def test_debug_fast_runs_a_few_batches_of_one_epoch_on_small_splits():
    cfg = compose_fit("experiment=synthcrowd", "debug=fast")
    trainer = cfg.trainer
    assert trainer.max_epochs == 1
    assert 0 < trainer.limit_train_batches <= 10 and 0 < trainer.limit_val_batches <= 5
    assert 0 < trainer.limit_test_batches <= 5
    assert sum(cfg.data.splits.values()) <= 20 and cfg.data.generation_seed != 0  # its own cache folder
    assert stage_config(cfg).trainer.limit_train_batches == trainer.limit_train_batches


def test_debug_fast_leaves_splits_alone_where_the_data_config_has_none():
    cfg = compose_fit("experiment=context_hrnet_w32_coco", "debug=fast")
    assert "splits" not in cfg.data and cfg.trainer.limit_train_batches == 5


def test_debug_overfit_trains_and_evaluates_on_a_few_unaugmented_samples():
    cfg = compose_fit("experiment=synthcrowd", "debug=overfit")
    assert cfg.data.augment is None
    assert cfg.data.splits.train <= 10 and cfg.data.eval_split == "train"
    assert cfg.trainer.max_epochs >= 50 and "limit_train_batches" not in cfg.trainer
    module = instantiate(cfg.data, _convert_="all")  # SynthCrowd accepts the split to evaluate on
    assert module.eval_split == "train" and module.augment is None


def test_debug_profile_profiles_a_few_batches():
    cfg = compose_fit("experiment=synthcrowd", "debug=profile")
    assert cfg.trainer.max_epochs == 1 and 0 < cfg.trainer.limit_train_batches <= 50
    profiler = instantiate(OmegaConf.to_container(cfg.trainer.profiler, resolve=True))
    assert isinstance(profiler, SimpleProfiler) and profiler.dirpath == "/tmp/unused"
    assert cfg.data.splits.train == 800  # the experiment's own data


def test_command_line_logger_wins_over_the_debug_preset():
    assert list(compose_fit("debug=fast", "logger=tensorboard").logger) == ["tensorboard"]


def test_debug_tiny_reads_the_tests_tiny_synthcrowd_as_generated():
    """debug=tiny must describe the tiny_synthcrowd fixture exactly: another seed, size or split count would make
    SynthCrowd regenerate the shared fixture folder under the tests that read it."""
    cfg = compose_fit("experiment=synthcrowd", "debug=tiny")
    assert cfg.data.generation_seed == 0 and list(cfg.data.image_size) == [128, 128]
    assert dict(cfg.data.splits) == {"train": 4, "val": 2, "test": 2}
    assert cfg.data.crop_size == 64 and cfg.model.backbone == "resnet18" and list(cfg.logger) == ["csv"]
