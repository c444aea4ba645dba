"""Optimiser settings that the chosen optimiser or schedule ignores stop a run at start-up, naming the key."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import DictConfig

import ochmr_lit.configs
from ochmr_lit.config_checks import check_regressor_model, check_run_config
from ochmr_lit.errors import ConfigError
from ochmr_lit.lit.optim import OptimConfig
from ochmr_lit.runner import run_fit
from ochmr_lit.runner.training import stage_config

EXPERIMENTS = sorted(p.stem for p in (Path(ochmr_lit.configs.__file__).parent / "experiment").glob("*.yaml"))


def compose_fit(*overrides: str) -> DictConfig:
    """The ``fit`` config with ``overrides``."""
    with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
        return compose(config_name="fit", overrides=[*overrides, "run_dir=/tmp/unused"])


@pytest.mark.parametrize(("settings", "message"), [
    ({"name": "adam", "momentum": 0.5},
     "optim.momentum=0.5: adam has no momentum (only sgd reads it); remove it or use optim.name=sgd"),
    ({"name": "adamw", "momentum": 0.0},
     "optim.momentum=0.0: adamw has no momentum (only sgd reads it); remove it or use optim.name=sgd"),
    ({"schedule": "step", "milestones": [3], "warmup_steps": 10},
     "optim.warmup_steps=10: schedule=step has no warm-up (constant and cosine have); remove it or use another "
     "optim.schedule"),
    ({"schedule": "constant", "milestones": [170, 200]},
     "optim.milestones=[170, 200]: schedule=constant does not read it (only step does); remove it or use "
     "optim.schedule=step"),
    ({"schedule": "cosine", "gamma": 0.5},
     "optim.gamma=0.5: schedule=cosine does not read it (only step does); remove it or use optim.schedule=step"),
])
def test_an_ignored_setting_is_refused_with_its_key_and_the_fix(settings, message):
    with pytest.raises(ValueError) as error:
        OptimConfig(**settings).check_settings_used()
    assert str(error.value) == message


@pytest.mark.parametrize("settings", [
    {},
    {"name": "adam", "momentum": 0.9},  # the default: the model configs state it whatever the optimiser
    {"name": "sgd", "momentum": 0.5, "schedule": "cosine", "warmup_steps": 50},
    {"name": "adam", "schedule": "step", "milestones": (170, 200), "gamma": 0.5},
    {"name": "adam", "schedule": "constant", "milestones": [], "gamma": 0.1},
    {"name": "adam", "schedule": "constant", "warmup_steps": 20},
])
def test_settings_that_are_read_or_left_at_their_default_pass(settings):
    OptimConfig(**settings).check_settings_used()


def test_construction_does_not_check_so_stored_settings_still_load():
    OptimConfig(name="adam", momentum=0.5, schedule="constant", milestones=(170, 200))


def test_the_model_check_names_the_key_under_model():
    with pytest.raises(ConfigError, match=r"^model\.optim\.momentum=0\.5: adam has no momentum"):
        check_regressor_model({"optim": {"name": "adam", "momentum": 0.5}})


def test_a_pipeline_stops_before_its_first_stage_on_an_ignored_setting():
    cfg = compose_fit("experiment=synthcrowd", "++context_stage.model.optim.warmup_steps=5",
                      "context_stage.model.optim.schedule=step")
    with pytest.raises(ConfigError, match=r"^context_stage\.model\.optim\.warmup_steps=5: schedule=step has no"):
        run_fit(cfg)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_sets_only_settings_that_are_read(name, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # the paper presets' starting weights, looked for by name
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    for file in ("hub/checkpoints/resnet50-0676ba61.pth", "pose_hrnet_w32_256x192.pth"):
        (tmp_path / file).write_bytes(b"")
    cfg = compose_fit(f"experiment={name}", f"paths.weights_dir={tmp_path}")
    stages = [("", cfg)] + ([("context_stage.", stage_config(cfg))] if cfg.task == "pipeline" else [])
    check_run_config(cfg, stages)
