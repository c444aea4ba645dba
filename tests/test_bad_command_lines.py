"""Mistakes on the command line and in settings get one line naming the key and the fix, before any work starts
(issue 10, "bad input"): unknown keys and experiments, arguments Hydra cannot read, folders that cannot be made,
settings each entry point checks."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import REPO_ROOT, TINY_OVERRIDES
from hydra import compose, initialize_config_module

from ochmr_lit.runner.command_line import command_line_error, compose_command_line, output_folder_error

# -- command line ----------------------------------------------------------------------------------------------
EXPERIMENTS = sorted(p.stem for p in (REPO_ROOT / "ochmr_lit" / "configs" / "experiment").glob("*.yaml"))


def test_unknown_experiment_at_the_command_line_is_one_line_listing_the_experiments():
    done = subprocess.run([sys.executable, "-m", "ochmr_lit.fit", "experiment=synthcrowd_spn"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        "error: unknown experiment 'synthcrowd_spn' (experiment=synthcrowd_spn); available experiments: "
        f"{', '.join(EXPERIMENTS)} (ochmr_lit/configs/experiment/)"]


@pytest.mark.parametrize(("overrides", "message"), [
    (["trainer.max_epoch=3"],
     "unknown Trainer argument 'trainer.max_epoch' in 'trainer.max_epoch=3': did you mean trainer.max_epochs, "
     "trainer.min_epochs, trainer.max_steps? every argument of lightning.Trainer can be set under trainer. (see its "
     "documentation)"),
    (["experiment=synthcrowd_spin", "data.on_bad_sampel=skip"],
     "unknown config key 'data.on_bad_sampel' in 'data.on_bad_sampel=skip': did you mean data.on_bad_sample? prefix "
     "the override with ++ to add a new key (++data.on_bad_sampel=skip)"),
    (["paths.scratch.dir=/x"], "unknown config key 'paths.scratch' in 'paths.scratch.dir=/x': 'paths' has "
                               "output_dir, body_model_dir, data_root, weights_dir; prefix the override with ++ to add "
                               "a new key "
                               "(++paths.scratch.dir=/x)"),
    (["trainer=tpu"], "unknown trainer config 'tpu' (trainer=tpu); available: cpu, ddp, ddp_cpu, gpu, slurm "
                      f"(ochmr_lit/configs/trainer/); experiments: {', '.join(EXPERIMENTS)}"),
    (["+nosuchkey=1"], "unknown config key 'nosuchkey' in '+nosuchkey=1': no part of a run reads a new top-level "
                       "key; the top level has experiment_name, run_dir, task, seed, ckpt_path, test_after_fit, "
                       "select_checkpoint, context_stage, tags, paths, data, model, trainer, logger, callbacks"),
    (["experiment=synthcrowd_spin", "++sed=3"], "unknown config key 'sed' in '++sed=3': did you mean seed? no part of "
                                                "a run reads a new top-level key"),
    (["experiment=synthcrowd_spin", "trainer.max_epochs=2"], None),
    (["experiment=synthcrowd_spin", "++trainer.max_epochs=2", "++seed=3"], None),
])
def test_unknown_key_or_option_is_one_line_naming_it(overrides, message):
    assert command_line_error("fit", overrides) == message
    if message is None:
        with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
            assert compose(config_name="fit", overrides=overrides).trainer.max_epochs == 2


def _folder_error(overrides: list[str]) -> str | None:
    cfg, message = compose_command_line("fit", overrides, hydra_config=True)
    assert message is None
    return output_folder_error(cfg, overrides)


def test_a_run_folder_that_cannot_be_created_is_named_and_nothing_is_left(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    runs = blocker / "runs"
    message = _folder_error(["experiment=synthcrowd_spin", f"paths.output_dir={runs}"])
    assert message.startswith(f"paths.output_dir={runs}: the run folder {runs}/synthcrowd_spin/")
    assert message.endswith(f"cannot be created ({runs}: Not a directory); give a folder that can be "
                            "written, e.g. paths.output_dir=outputs")
    writable = tmp_path / "out"
    assert _folder_error(["experiment=synthcrowd_spin", f"paths.output_dir={writable}"]) is None
    assert not writable.exists()  # the probe removes the folder it made


def test_the_command_line_is_composed_once_and_its_config_returned(tmp_path, monkeypatch):
    import hydra

    from ochmr_lit.fit import resume_folder_override
    from ochmr_lit.runner.command_line import check_command_line

    calls = []
    original = hydra.compose
    monkeypatch.setattr(hydra, "compose", lambda *a, **k: calls.append(k) or original(*a, **k))
    argv = ["experiment=synthcrowd_spin", f"paths.output_dir={tmp_path}", "trainer.max_epochs=3"]
    cfg = check_command_line("fit", argv)
    assert len(calls) == 1 and calls[0]["return_hydra_config"] is True
    assert cfg.trainer.max_epochs == 3 and str(cfg.hydra.run.dir).startswith(f"{tmp_path}/synthcrowd_spin/")
    run = tmp_path / "synthcrowd_spin" / "2026-01-01_00-00-00"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"")
    resumed = check_command_line("fit", [*argv, "ckpt_path=last"])
    assert resume_folder_override([*argv, "ckpt_path=last"], resumed) == [f"hydra.run.dir={run}"]
    assert len(calls) == 2  # the resume folder is found in the same composed config
    calls.clear()
    assert command_line_error("fit", ["+nosuchkey=1"]).startswith("unknown config key 'nosuchkey'")
    assert len(calls) == 1  # a single + names a new key: the config without it is the composed one less that key
    assert command_line_error("fit", ["++sed=3"]).startswith("unknown config key 'sed'")
    assert len(calls) == 3  # ++ may set an existing key: composed once more without it to tell


@pytest.mark.parametrize(("config", "argument", "message"), [
    ("fit", "synthcrowd_spin", "'synthcrowd_spin' is not key=value: every argument of this command is key=value "
                               "(config fit), e.g. experiment=synthcrowd_spin"),
    ("predict", "/data/run/last.ckpt", "'/data/run/last.ckpt' is not key=value: every argument of this command is "
                                       "key=value (config predict), e.g. ckpt_path=/data/run/last.ckpt"),
    ("evaluate", "seeds=[1,", "'seeds=[1,': the value cannot be read (no viable alternative at input '[1,'); a list "
                              "is written [a,b], and a value with spaces, brackets, quotes or $ is quoted, e.g. "
                              "'key=\"a value\"' (config evaluate)"),
    ("fit", "seed==3", "'seed==3': the value cannot be read (extraneous input '='); a list is written [a,b], and a "
                       "value with spaces, brackets, quotes or $ is quoted, e.g. 'key=\"a value\"' (config fit)"),
])
def test_an_argument_hydra_cannot_parse_is_one_line_naming_it(config, argument, message):
    assert command_line_error(config, [argument]) == message


@pytest.mark.parametrize(("config", "argv", "message"), [
    ("predict", ["ckpt_pth=a.ckpt"], "unknown config key 'ckpt_pth' in 'ckpt_pth=a.ckpt': did you mean ckpt_path? no "
                                     "part of a run reads a new top-level key"),
    ("compare", ["num_image=2"], "unknown config key 'num_image' in 'num_image=2': did you mean num_images? no part "
                                 "of a run reads a new top-level key"),
])
def test_predict_and_compare_command_lines_are_checked_too(config, argv, message):
    assert command_line_error(config, argv) == message


def test_predicts_out_folder_that_cannot_be_created_is_named_by_its_key(tmp_path):
    (tmp_path / "a_file").write_text("")
    out = tmp_path / "a_file" / "predictions"
    argv = ["ckpt_path=a.ckpt", "input=images", f"out={out}"]
    cfg, message = compose_command_line("predict", argv, hydra_config=True)
    assert message is None
    assert output_folder_error(cfg, argv) == (f"out={out}: the run folder {out} cannot be created ({out}: Not a "
                                              "directory); give a folder that can be written, e.g. out=outputs")


def test_evaluate_command_line_is_checked_too():
    assert command_line_error("evaluate", ["experiment=nope", "ckpt_path=x.ckpt"]).startswith(
        "unknown experiment 'nope' (experiment=nope); available experiments: conorm_depth1,")


# -- settings checked before any work: one line, exit 2, no run folder ----------------------------------------------
BAD_SETTINGS = [
    ("trainer.max_epochs=abc", "error: trainer.max_epochs='abc': lightning.Trainer takes Optional[int] here"),
    ("trainer.devices=1.5", "error: trainer.devices=1.5: lightning.Trainer takes Union[list[int], str, int] here"),
    ("model.conorm_depths=[7]", "error: model.conorm_depths must be distinct ResNet layer numbers in 1..4, got [7]"),
    ("model.optim.lr=-1", "error: model.optim.lr=-1: the learning rate must be positive"),
    ("data.splits.train=0", "error: data.splits.train=0: the number of SynthCrowd images generated for the train "
                            "split, a whole number >= 1 (e.g. data.splits.train=800)"),
    ("++context_stage.data.splits.val=1.5", "error: context_stage.data.splits.val=1.5: the number of SynthCrowd "
                                            "images generated for the val split, a whole number >= 1 (e.g. "
                                            "context_stage.data.splits.val=60)"),
    ("model.context_source=foo", "error: model.context_source='foo'; use one of ('gt', 'predicted', 'none')"),
    ("++context_stage.model.optim.lr=-2", "error: context_stage.model.optim.lr=-2: the learning rate must be positive"),
    # the regressor stage's trainer and weights: Lightning would say them only after the context stage trained
    ("trainer.max_epochs=-2", "error: trainer.max_epochs=-2: `max_epochs` must be a non-negative integer or -1. You "
                              "passed in -2."),
    ("trainer.accumulate_grad_batches=0", "error: trainer.accumulate_grad_batches=0: must be above 0 (Lightning "
                                          "divides by it in its training loop)"),
    ("model.pretrained=[{source:spin,path:/nonexistent/model_checkpoint.pt}]",
     "error: model.pretrained[0].path=/nonexistent/model_checkpoint.pt: no such file; put the spin weights there or "
     "correct model.pretrained[0].path"),
    ("trainer.max_epoch=3",
     "error: unknown Trainer argument 'trainer.max_epoch' in 'trainer.max_epoch=3': did you mean trainer.max_epochs, "
     "trainer.min_epochs, trainer.max_steps? every argument of lightning.Trainer can be set under trainer. (see its "
     "documentation)"),
]
#: Run through the entry point in a new process; the others take the same steps in this one (a new process spends
#: about 8 s importing Lightning).
BAD_SETTINGS_BY_PROCESS = ("model.optim.lr=-1", "trainer.max_epoch=3")


def test_a_user_error_removes_the_empty_folders_its_command_made_and_keeps_the_others(tmp_path, capsys):
    from ochmr_lit.errors import ConfigError, existing_folder, user_errors

    kept = tmp_path / "outputs"
    kept.mkdir()  # the user's, before the command
    run_dir = kept / "synthcrowd" / "eval" / "run"
    assert existing_folder(run_dir) == kept
    run_dir.mkdir(parents=True)
    (run_dir / ".hydra").mkdir()
    (kept / "synthcrowd" / "earlier.log").write_text("another run's")  # not empty: kept, and what is above it
    with pytest.raises(SystemExit) as exit_, user_errors(run_dir, existing_folder(tmp_path / "outputs" / "x")):
        raise ConfigError("a mistake")
    assert exit_.value.code == 2 and capsys.readouterr().err == "error: a mistake\n"
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == [
        "outputs", "outputs/synthcrowd", "outputs/synthcrowd/earlier.log"]
    (kept / "synthcrowd" / "earlier.log").unlink()
    run_dir.mkdir(parents=True)
    with pytest.raises(SystemExit), user_errors(run_dir, tmp_path):
        raise ConfigError("a mistake")
    assert list(tmp_path.iterdir()) == []  # everything below the folder that existed was the command's


def _fit_in_this_process(argv: list[str], run_dir: Path, capsys) -> tuple[int, list[str]]:
    """``python -m ochmr_lit.fit <argv>`` up to its exit, in this process: its command-line checks, the run folder
    Hydra's main creates, then the run inside :func:`user_errors`. Returns the exit status and stderr's lines."""
    from ochmr_lit.errors import user_errors
    from ochmr_lit.runner import run_fit
    from ochmr_lit.runner.command_line import check_command_line, existing_above_run_folder, pass_trainer_arguments

    argv = pass_trainer_arguments(argv)
    capsys.readouterr()
    try:
        existed = existing_above_run_folder(check_command_line("fit", argv))
        cfg, message = compose_command_line("fit", [*argv, f"run_dir={run_dir}"])
        assert message is None
        run_dir.mkdir(parents=True)
        (run_dir / ".hydra").mkdir()  # what Hydra writes before the run starts
        with user_errors(run_dir, existed):
            run_fit(cfg)
    except SystemExit as exit_:
        return int(exit_.code), capsys.readouterr().err.strip().splitlines()
    raise AssertionError(f"fit {argv} did not stop")


@pytest.mark.parametrize("override, message", BAD_SETTINGS)
def test_a_bad_setting_stops_the_pipeline_before_its_first_stage(override, message, tmp_path, capsys):
    if override in BAD_SETTINGS_BY_PROCESS:
        env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", WANDB_MODE="offline", PYTHONPATH=str(REPO_ROOT))
        env.pop("HYDRA_FULL_ERROR", None)
        done = subprocess.run([sys.executable, "-m", "ochmr_lit.fit", override, f"paths.output_dir={tmp_path}"],
                              env=env, capture_output=True, text=True, timeout=300)
        status, lines = done.returncode, done.stderr.strip().splitlines()
    else:
        status, lines = _fit_in_this_process([override, f"paths.output_dir={tmp_path}"],
                                             tmp_path / "synthcrowd" / "run", capsys)
    assert status == 2, lines[-20:]
    assert lines == [message]
    assert not (tmp_path / "synthcrowd").exists()  # no run folder left behind


@pytest.mark.parametrize("arguments, missing", [([], "ckpt_path"), (["ckpt_path=a.ckpt", "input=b", "boxes=c"], "out")])
def test_predict_names_a_missing_setting_and_leaves_no_folder(arguments, missing, tmp_path):
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", WANDB_MODE="offline", PYTHONPATH=str(REPO_ROOT))
    env.pop("HYDRA_FULL_ERROR", None)
    done = subprocess.run([sys.executable, "-m", "ochmr_lit.predict", *arguments], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().splitlines() == [
        f"error: predict needs {missing}=...: python -m ochmr_lit.predict ckpt_path=<ckpt> input=<image|folder> "
        "boxes=<coco.json|detections.json|detector> out=<dir>"]
    assert list(tmp_path.iterdir()) == []  # Hydra's stand-in run folder removed again


@pytest.mark.parametrize(("override", "message"), [
    ("num_images=0", "num_images=0: how many images of the split to draw, a whole number >= 1"),
    ("batch_size=x", "batch_size='x': people per forward pass, a whole number >= 1"),
    ("side_view=maybe", "side_view='maybe': use true (add the predicted and the ground-truth side views) or false"),
    ("split=tset", "split=tset: a SynthCrowd split, one of train, val, test"),
])
def test_compare_names_a_bad_setting_before_reading_the_checkpoint(override, message, tmp_path):
    from ochmr_lit.errors import ConfigError
    from ochmr_lit.vis.comparison_run import run_compare

    with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
        cfg = compose(config_name="compare", overrides=[f"ckpt_path={tmp_path / 'no.ckpt'}", override])
    with pytest.raises(ConfigError) as error:
        run_compare(cfg)
    assert str(error.value) == message


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible: trainer=gpu would train")
@pytest.mark.parametrize("command", ["fit", "evaluate"])
def test_a_gpu_trainer_without_a_gpu_stops_in_one_line(command, tmp_path, capsys):
    """evaluate through its entry point in a new process; fit takes the same steps in this one (its entry point runs
    in a new process in test_a_bad_setting_stops_the_pipeline_before_its_first_stage)."""
    if command == "fit":
        status, lines = _fit_in_this_process(["trainer=gpu", f"paths.output_dir={tmp_path / 'out'}"],
                                             tmp_path / "out" / "synthcrowd" / "run", capsys)
    else:
        env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", WANDB_MODE="offline", PYTHONPATH=str(REPO_ROOT))
        env.pop("HYDRA_FULL_ERROR", None)
        torch.save({"state_dict": {}}, tmp_path / "x.ckpt")
        done = subprocess.run([sys.executable, "-m", "ochmr_lit.evaluate", "trainer=gpu",
                               f"ckpt_path={tmp_path}/x.ckpt", f"paths.output_dir={tmp_path / 'out'}"], env=env,
                              capture_output=True, text=True, timeout=300)
        status, lines = done.returncode, done.stderr.strip().splitlines()
    assert status == 2, lines[-20:]
    assert lines == ["error: trainer.accelerator=gpu, but no CUDA GPU is visible on this machine (torch.cuda."
                     "is_available() is False): use trainer=cpu (or trainer=ddp_cpu), or run on a machine with a GPU "
                     "and a CUDA build of torch (python -m ochmr_lit.doctor says which)"]
    assert not list((tmp_path / "out").rglob("*"))  # no run folder left behind


@pytest.mark.parametrize(("experiment", "takes"), [
    ("synthcrowd", "evaluate, predict and compare take the checkpoints/*.ckpt of task=regressor or task=pipeline runs"),
    ("synthcrowd_context", "evaluate with a context experiment (experiment=synthcrowd_context) takes the "
     "checkpoints/*.ckpt of task=context runs or the context/checkpoints/*.ckpt of task=pipeline runs"),
])
def test_evaluate_names_a_missing_checkpoint_and_the_files_it_takes(experiment, takes, tmp_path):
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", WANDB_MODE="offline", PYTHONPATH=str(REPO_ROOT))
    env.pop("HYDRA_FULL_ERROR", None)
    missing = tmp_path / "runs" / "best.ckpt"
    done = subprocess.run([sys.executable, "-m", "ochmr_lit.evaluate", f"experiment={experiment}",
                           f"ckpt_path={missing}", f"paths.output_dir={tmp_path / 'out'}"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().splitlines() == [f"error: ckpt_path={missing}: no such file; {takes}"]
    assert not list((tmp_path / "out").rglob("*"))  # no run folder left behind


def test_more_gpus_than_the_machine_shows_are_named(monkeypatch):
    from ochmr_lit.config_checks import check_accelerator
    from ochmr_lit.errors import ConfigError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    check_accelerator({"accelerator": "gpu", "devices": 2})
    check_accelerator({"accelerator": "gpu", "devices": [0, 1]})
    check_accelerator({"accelerator": "gpu", "devices": "auto"})
    check_accelerator({"accelerator": "cpu", "devices": 8})
    with pytest.raises(ConfigError, match=re.escape("context_stage.trainer.devices=8, but this machine shows 2 CUDA "
                                                    "GPU(s): set context_stage.trainer.devices=2 (or fewer)")):
        check_accelerator({"accelerator": "gpu", "devices": 8}, "context_stage.trainer")


def test_predict_names_a_missing_input_box_weight_or_checkpoint_file_in_one_line(tmp_path):
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", WANDB_MODE="offline", PYTHONPATH=str(REPO_ROOT))
    env.pop("HYDRA_FULL_ERROR", None)
    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "1.jpg"), np.zeros((32, 32, 3), np.uint8))
    cases = [(f"input={tmp_path / 'nope'}", "boxes=b.json", f"error: input={tmp_path / 'nope'}: no such image file or "
              "folder"),
             (f"input={images}", f"boxes={tmp_path / 'b.json'}", f"error: boxes={tmp_path / 'b.json'}: no such file; "
              "give a COCO-format JSON"),
             (f"input={images}", "boxes=detector", "error: boxes=detector needs detector_weights=<file>"),
             (f"input={images}", "boxes=given.json", "error: ckpt_path=a.ckpt: no such file; evaluate, predict and "
              "compare take the checkpoints/*.ckpt of task=regressor or task=pipeline runs")]
    (tmp_path / "given.json").write_text("{}")
    for given_input, boxes, message in cases:
        done = subprocess.run([sys.executable, "-m", "ochmr_lit.predict", "ckpt_path=a.ckpt", given_input, boxes,
                               f"out={tmp_path / 'out'}"], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 2, done.stderr[-2000:]
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(message), done.stderr
        assert not (tmp_path / "out").exists()  # made by Hydra for this command, holding only its log: removed
    kept = tmp_path / "kept"  # a folder the user had: kept, with what it held
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    done = subprocess.run([sys.executable, "-m", "ochmr_lit.predict", "ckpt_path=a.ckpt", f"input={images}",
                           "boxes=b.json", f"out={kept}", "save_figures=maybe"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.stderr.strip().splitlines() == [
        "error: save_figures='maybe': use true (write the paper figure of every image) or false"]
    assert (kept / "notes.txt").read_text() == "mine"


@pytest.mark.slow
def test_every_trainer_argument_passes_through_and_logger_none_trains(tmp_path, tiny_synthcrowd):
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", WANDB_MODE="offline", PYTHONPATH=str(REPO_ROOT))
    tiny = TINY_OVERRIDES
    command = [sys.executable, "-m", "ochmr_lit.fit", "experiment=synthcrowd_spin", "trainer.fast_dev_run=true",
               "trainer.limit_val_batches=1", "logger=none", f"++data.root={tiny_synthcrowd}", *tiny,
               f"hydra.run.dir={tmp_path}/run"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "run" / "results" / "metrics.json").is_file()
