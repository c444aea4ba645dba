"""``fit``: train the stages a config names (a context estimator, a regressor, or both as a pipeline), keep the
checkpoint it selects, and test it."""

from __future__ import annotations

import copy
import difflib
import json
import logging
import os
import re
import warnings
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.utilities.exceptions import MisconfigurationException, SIGTERMException
from omegaconf import DictConfig, OmegaConf, open_dict

from ochmr_lit.config_checks import check_accelerator, check_run_config, check_trainer_values, select_checkpoint
from ochmr_lit.errors import ConfigError
from ochmr_lit.eval.results_files import atomic_write_text
from ochmr_lit.lit.checkpoints import check_checkpoint_kind, check_training_checkpoint
from ochmr_lit.lit.frozen_context import load_frozen_context
from ochmr_lit.lit.training_clock import TrainingClock
from ochmr_lit.runner.builder import TASK_MODULES, build
from ochmr_lit.runner.predicted_centres import cache_predicted_centres
from ochmr_lit.runner.resumed_settings import check_resumed_settings
from ochmr_lit.runner.run_folders import STAGE_FINISHED, resume_in_place, stage_ckpt_path
from ochmr_lit.runner.testing import finish_loggers, run_test

log = logging.getLogger(__name__)


#: Lightning's notice when fit starts with files in the checkpoint folder (it does not know about resuming).
RESUMED_FOLDER_NOTICE = r"Checkpoint directory .* exists and is not empty"
#: Exit status of a run stopped by SIGTERM after saving last.ckpt (128 + SIGTERM, as a shell reports it).
PREEMPTED_EXIT_CODE = 143

def stage_config(cfg: DictConfig) -> DictConfig:
    """The context-estimator stage of ``task=pipeline``: ``context_stage`` merged over the run config.

    ``context_stage.model`` is the stage's whole model: the experiment composes it from the context estimator's
    group config (``/model@context_stage.model: context_hrnet`` in its defaults) with its own values merged
    over it. ``context_stage.data`` and ``context_stage.trainer`` are merged over the run's.
    """
    stage = cfg.context_stage
    if stage is None:
        raise ConfigError("task=pipeline needs a context_stage block (see experiments/synthcrowd.yaml)")
    if not (stage.get("model") or {}).get("_target_"):
        raise ConfigError("context_stage.model has no _target_: compose it from a model config by adding "
                          "'- /model@context_stage.model: context_hrnet' to the experiment's defaults")
    resume = "last" if cfg.get("ckpt_path") == "last" else None  # a given file is the regressor's
    stage_cfg = OmegaConf.merge(cfg, {"task": "context", "context_stage": None, "test_after_fit": False,
                                      "run_dir": str(Path(cfg.run_dir) / "context"), "ckpt_path": resume})
    with open_dict(stage_cfg):
        stage_cfg.model = stage.model
        for key in ("data", "trainer"):
            if stage.get(key) is not None:
                stage_cfg[key] = OmegaConf.merge(stage_cfg[key], stage[key])
        stage_cfg.experiment_name = stage.get("experiment_name", f"{cfg.experiment_name}_context")
        if "wandb" in (stage_cfg.get("logger") or {}):
            stage_cfg.logger.wandb.name = stage_cfg.experiment_name
            stage_cfg.logger.wandb.group = cfg.experiment_name  # both stages of a pipeline in one W&B group
    return stage_cfg

def _with_predicted_centres(cfg: DictConfig, splits: tuple[str, ...]) -> DictConfig:
    """A regressor on predicted context reads its centres from a cache made once (never per epoch)."""
    if cfg.model.get("context_source") != "predicted" or cfg.data.get("predicted_centres"):
        return cfg
    checkpoint = str(cfg.model.context_checkpoint)
    estimator, input_size = load_frozen_context(checkpoint, cfg.model.get("context_input_size"))
    folder = cache_predicted_centres(cfg.data, estimator, splits,
                                     Path(cfg.run_dir) / "predicted_centres", input_size,
                                     str(cfg.trainer.get("precision", "")).startswith("bf16"), checkpoint)
    cfg = copy.deepcopy(cfg)
    with open_dict(cfg):
        cfg.data.predicted_centres = folder
    return cfg

def unknown_monitor_error(cfg: DictConfig, error: Exception) -> ConfigError | None:
    """A one-line error for a callback's ``monitor`` that names no metric the run logs, from Lightning's report of it
    (after the first validation: which keys a module logs is known only then), naming the callback's key and the
    closest logged metrics; None for any other error."""
    message = str(error)
    found = re.search(r"monitor='([^']+)'\)` could not find the monitored key in the returned metrics: \[([^]]*)\]",
                      message)
    if found is None:
        return None
    monitor, logged = found.group(1), re.findall(r"'([^']+)'", found.group(2))
    keys = [f"callbacks.{name}.monitor" for name, node in (cfg.get("callbacks") or {}).items()
            if isinstance(node, DictConfig) and node.get("monitor") == monitor] or ["monitor"]
    close = difflib.get_close_matches(monitor, logged, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    validation = [m for m in logged if m.startswith("val/") and m.count("/") == 1]  # not val/constant/..., ...
    listed = ", ".join(validation[:10]) + (f" and {len(validation) - 10} more" if len(validation) > 10 else "")
    return ConfigError(f"{keys[0]}={monitor}: the run logs no such metric; {hint}its validation metrics are "
                       f"{listed or 'none (no validation ran)'}")


def _fit_one(cfg: DictConfig) -> dict[str, Any]:
    L.seed_everything(cfg.seed, workers=True, verbose=False)  # said once the stage is built: not before an error
    if cfg.task == "regressor":
        cfg = _with_predicted_centres(cfg, ("train", "val", "test") if cfg.get("test_after_fit") else ("train", "val"))
    module, datamodule, trainer = build(cfg)
    log.info("seed %d (torch, numpy, Python and the loader workers)", cfg.seed)
    ckpt_path = stage_ckpt_path(cfg)
    if ckpt_path is not None:  # read once: a file the user named must also hold this run's architecture
        state = (check_checkpoint_kind(ckpt_path, type(module)) if cfg.get("ckpt_path") == "last"
                 else check_training_checkpoint(ckpt_path, module))
        check_resumed_settings(ckpt_path, state.get("run_config"), module.run_config)  # same data, same order
    try:
        with warnings.catch_warnings():
            if ckpt_path is not None:  # a resume: the checkpoints already in the folder are the run's own
                warnings.filterwarnings("ignore", message=RESUMED_FOLDER_NOTICE)
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    except MisconfigurationException as error:
        unknown_monitor = unknown_monitor_error(cfg, error)
        if unknown_monitor is None:
            raise
        raise unknown_monitor from error
    except SIGTERMException:
        saved = [c.saved_path for c in trainer.callbacks if getattr(c, "saved_path", None)]
        where = f"saved {saved[0]}" if saved else "no PreemptionCheckpoint callback: only earlier checkpoints exist"
        log.warning("stopped by SIGTERM at step %d (%s); continue with ckpt_path=last", trainer.global_step, where)
        raise SystemExit(PREEMPTED_EXIT_CODE) from None
    best = _best_checkpoint(trainer) if select_checkpoint(cfg) == "best" else None
    checkpoint = best["path"] if best else _final_checkpoint(trainer)
    if checkpoint is None:  # no checkpoint callback (or fast_dev_run): still keep the trained weights
        checkpoint = str(Path(cfg.run_dir) / "checkpoints" / "final.ckpt")
        trainer.save_checkpoint(checkpoint, weights_only=False)
    outcome: dict[str, Any] = {"checkpoint": checkpoint}
    clock = next((c for c in trainer.callbacks if isinstance(c, TrainingClock)), None)
    if clock is not None:
        outcome["training_seconds"] = round(clock.seconds, 1)
    if best:
        outcome["selected"] = best
    if cfg.get("test_after_fit") and cfg.task == "regressor":
        outcome["results"] = run_test(module, datamodule, trainer, cfg, selected=best)
    finish_loggers(trainer)
    return outcome

def _final_checkpoint(trainer: L.Trainer) -> str | None:
    callback = trainer.checkpoint_callback
    if callback is None:
        return None
    path = callback.last_model_path or callback.best_model_path
    return path or None

def _best_checkpoint(trainer: L.Trainer) -> dict[str, Any] | None:
    """The monitored checkpoint callback's best epoch: ``{path, monitor, mode, score}``; None (with a warning,
    the final weights are used) when no epoch was scored, e.g. a run without validation."""
    for callback in trainer.checkpoint_callbacks:
        if getattr(callback, "monitor", None) and callback.best_model_path:
            score = callback.best_model_score
            return {"path": callback.best_model_path, "monitor": callback.monitor, "mode": callback.mode,
                    "score": None if score is None else float(score)}
    log.warning("select_checkpoint=best: no validation epoch was scored, so the final weights are used")
    return None

def check_fit_config(cfg: DictConfig, context_estimator_pending: bool = False) -> None:
    """Check the settings of every stage ``fit`` would train, and that this machine has the GPUs they ask for,
    before the first one starts (:func:`ochmr_lit.config_checks.check_run_config`)."""
    stages = [("", cfg), ("context_stage.", stage_config(cfg))] if cfg.task == "pipeline" else [("", cfg)]
    check_run_config(cfg, stages, context_estimator_pending)
    for prefix, stage in stages:
        check_accelerator(stage.trainer, f"{prefix}trainer")
        check_trainer_values(stage.trainer, f"{prefix}trainer")

def run_fit(cfg: DictConfig) -> dict[str, Any]:
    """Train as the config says; returns the final checkpoint path(s) and test metrics."""
    os.environ.setdefault("WANDB_MODE", "offline")
    if cfg.task not in (*TASK_MODULES, "pipeline"):
        raise ConfigError(f"task={cfg.task!r}; use regressor, context or pipeline")
    check_fit_config(cfg)
    if cfg.task == "pipeline":
        cfg = resume_in_place(cfg)
        context = _context_stage(stage_config(cfg))
        regressor_cfg = OmegaConf.merge(cfg, {"task": "regressor"})
        with open_dict(regressor_cfg):
            regressor_cfg.model.context_source = "predicted"
            regressor_cfg.model.context_checkpoint = context["checkpoint"]
        outcome = _fit_one(regressor_cfg)
        outcome["context_checkpoint"] = context["checkpoint"]
        return outcome
    if cfg.task not in TASK_MODULES:
        raise ConfigError(f"task={cfg.task!r}; use regressor, context or pipeline")
    return _fit_one(resume_in_place(cfg))

def _context_stage(stage_cfg: DictConfig) -> dict[str, Any]:
    """The pipeline's context stage: reused when it finished before (its marker), else trained or resumed."""
    folder = Path(stage_cfg.run_dir)
    marker = folder / STAGE_FINISHED
    if stage_cfg.get("ckpt_path") == "last" and marker.is_file():
        checkpoint = folder / json.loads(marker.read_text())["checkpoint"]
        if checkpoint.is_file():
            log.info("context stage finished before: reusing %s", checkpoint)
            return {"checkpoint": str(checkpoint)}
    outcome = _fit_one(stage_cfg)
    relative = os.path.relpath(outcome["checkpoint"], folder)
    atomic_write_text(marker, json.dumps({"checkpoint": relative}))
    return outcome
