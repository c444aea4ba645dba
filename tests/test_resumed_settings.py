"""A resumed training run must continue on the same data in the same order: a command that leaves out or changes a
seed or data setting the run started with is refused in one line, while loading-only settings may change."""

from __future__ import annotations

import copy

import pytest

from ochmr_lit.errors import ConfigError
from ochmr_lit.runner.resumed_settings import changed_settings, check_resumed_settings

STARTED = {"seed": 1, "run_dir": "runs/a", "trainer": {"max_epochs": 12},
           "data": {"_target_": "ochmr_lit.data.SynthCrowdDataModule", "batch_size": 32, "num_workers": 2,
                    "root": None, "splits": {"train": 8000, "val": 60}, "augment": {"scale": 0.25}}}


def _with(**changes: object) -> dict:
    config = copy.deepcopy(STARTED)
    for dotted, value in changes.items():
        node = config
        *parents, last = dotted.split("__")
        for name in parents:
            node = node[name]
        node[last] = value
    return config


def test_only_seed_and_data_settings_that_change_the_samples_count():
    assert changed_settings(STARTED, STARTED) == []
    loading_only = _with(data__num_workers=0, data__root="/moved/synthcrowd", trainer__max_epochs=20, run_dir="x")
    assert changed_settings(STARTED, loading_only) == []
    assert changed_settings(STARTED, _with(seed=0, data__splits={"train": 800, "val": 60},
                                           data__augment={"scale": 0.0})) == [
        ("data.augment.scale", 0.25, 0.0), ("data.splits.train", 8000, 800), ("seed", 1, 0)]
    newer = _with(data__sigma=2.0)  # a setting the framework gained after the run started: not compared
    assert changed_settings(STARTED, newer) == []


def test_a_checkpoint_resumed_with_other_settings_is_refused_naming_them():
    ckpt = "runs/a/checkpoints/last.ckpt"
    check_resumed_settings(ckpt, STARTED, _with(data__num_workers=0))
    with pytest.raises(ConfigError) as error:
        check_resumed_settings(ckpt, STARTED, _with(data__splits={"train": 800, "val": 60}, data__batch_size=16))
    assert str(error.value) == (
        f"ckpt_path={ckpt} resumes a run started with other settings: data.batch_size=32 then, 16 now; "
        "data.splits.train=8000 then, 800 now. A resume continues the run exactly as it started: give the run's own "
        "settings again (a fit run's .hydra/overrides.yaml lists those given), or start a new run from its weights "
        f"with model.pretrained=[{{source:ochmr,path:{ckpt}}}]")
    check_resumed_settings(ckpt, None, _with(seed=5))  # written before checkpoints kept their run configuration
