"""``fit ckpt_path=<file>``: a checkpoint of another kind or architecture stops at start-up in one line."""

import pytest
import torch
from hydra import compose, initialize_config_module

from ochmr_lit.errors import CheckpointError
from ochmr_lit.lit import ContextEstimatorModule, MeshRegressorModule
from ochmr_lit.lit.checkpoints import check_checkpoint_kind, check_training_checkpoint
from ochmr_lit.runner import run_fit


def _save(module, path, task):
    """A checkpoint in Lightning's layout (state_dict, hyper_parameters) plus the run's config, as fit writes."""
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams),
                "run_config": {"task": task}}, path)
    return path


def _regressor(**overrides):
    return MeshRegressorModule(**{"backbone": "resnet18", "conorm_depths": [2], "hidden_channels": 16, "crop_size": 64,
                                  "context_source": "gt", "channels_last": False, **overrides})


def test_a_context_estimator_checkpoint_stops_a_pipeline_before_its_first_stage(tmp_path):
    ckpt = _save(ContextEstimatorModule(width=16), tmp_path / "context.ckpt", "context")
    with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
        cfg = compose(config_name="fit", overrides=["experiment=synthcrowd", f"ckpt_path={ckpt}",
                                                    f"run_dir={tmp_path / 'run'}"])
    with pytest.raises(CheckpointError, match=r"context\.ckpt was written by another module \(task=context, "
                                              r"hyper-parameters global_radius, pck_threshold, width\) and cannot "
                                              r"continue a MeshRegressorModule"):
        run_fit(cfg)
    assert not (tmp_path / "run").exists()  # nothing trained, nothing written


def test_a_regressor_checkpoint_of_another_architecture_stops_a_pipeline_before_its_first_stage(tmp_path):
    # a SPIN regressor given to the OCHMR pipeline: named at start-up, not after the context stage trained
    ckpt = _save(_regressor(conorm_depths=[], context_source="none"), tmp_path / "spin.ckpt", "regressor")
    with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
        cfg = compose(config_name="fit", overrides=["experiment=synthcrowd", f"ckpt_path={ckpt}",
                                                    f"run_dir={tmp_path / 'run'}"])
    built = cfg.model
    with pytest.raises(CheckpointError) as error:
        run_fit(cfg)
    assert str(error.value) == (
        f"ckpt_path={ckpt} holds another architecture (model.conorm_depths=[], model.hidden_channels=16, "
        f"model.heatmap_keypoints=0) than this run builds (model.conorm_depths={list(built.conorm_depths)}, "
        f"model.hidden_channels={built.hidden_channels}, model.heatmap_keypoints={built.heatmap_keypoints}): "
        "continue it with the experiment and overrides it was trained with (its run_config), or start without "
        "ckpt_path (model.pretrained takes starting weights)")
    assert not (tmp_path / "run").exists()


def test_the_same_architecture_passes_and_another_is_named(tmp_path):
    module = _regressor()
    same = _save(_regressor(), tmp_path / "same.ckpt", "regressor")
    check_training_checkpoint(same, module)  # same kind, same keys and shapes
    other = _save(_regressor(backbone="resnet34"), tmp_path / "r34.ckpt", "regressor")
    with pytest.raises(CheckpointError, match=r"r34\.ckpt holds another architecture \(backbone=resnet34, "
                                              r"conorm_depths=\[2\].*\) than the MeshRegressorModule this run "
                                              r"builds: \d+ unexpected"):
        check_training_checkpoint(other, module)
    head = _save(_regressor(heatmap_keypoints=17, loss_weights={"keypoint_heatmaps": 0.5}), tmp_path / "hm.ckpt",
                 "regressor")
    with pytest.raises(CheckpointError, match=r"heatmap_keypoints=17.*unexpected \(model\.heatmap_head\."):
        check_training_checkpoint(head, module)


def test_weights_of_other_codebases_and_unreadable_files_are_named(tmp_path):
    spin = tmp_path / "model_checkpoint.pt"
    torch.save({"model": _regressor().model.state_dict()}, spin)
    with pytest.raises(CheckpointError, match=r"model_checkpoint\.pt is not a training checkpoint of this "
                                              r"framework.*go in model\.pretrained"):
        check_checkpoint_kind(spin, MeshRegressorModule)
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"garbage\.ckpt cannot be read as a checkpoint"):
        check_checkpoint_kind(garbage, MeshRegressorModule)
