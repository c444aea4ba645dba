"""Module, data module and Trainer of a composed config (loggers, callbacks, W&B tags, mean parameters)."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor
from omegaconf import DictConfig, OmegaConf, open_dict

from ochmr_lit.config_checks import select_checkpoint
from ochmr_lit.errors import ConfigError
from ochmr_lit.lit.epoch_log import progress_bar_setting
from ochmr_lit.lit.summary import summary_trainer_arguments

log = logging.getLogger(__name__)


TASK_MODULES = {"regressor": "MeshRegressorModule", "context": "ContextEstimatorModule"}

def instantiate_group(group: DictConfig | None) -> list[Any]:
    if not group:
        return []
    return [instantiate(item, _convert_="all") for item in group.values() if item is not None]

def _tag_wandb_run(cfg: DictConfig, datamodule: Any, module: Any) -> None:
    """W&B runs: grouped by experiment (config), tagged with the dataset and the protocol for dashboards."""
    if not (cfg.get("logger") and "wandb" in cfg.logger):
        return
    tags = list(cfg.logger.wandb.get("tags") or [])
    tags.append(f"data:{getattr(datamodule, 'name', type(datamodule).__name__)}")
    protocol = getattr(module, "hparams", {}).get("protocol")
    if protocol:
        tags.append(f"protocol:{protocol}")
    with open_dict(cfg):
        cfg.logger.wandb.tags = list(dict.fromkeys(tags))
        if not cfg.logger.wandb.get("id"):  # one W&B run per run folder (stage): a resume continues it
            cfg.logger.wandb.id = wandb_run_id(cfg.run_dir)
            cfg.logger.wandb.resume = "allow"

def wandb_run_id(run_dir: str | Path) -> str:
    """A W&B run id naming a run folder (a pipeline stage's own): its last three path parts, W&B's characters only."""
    parts = Path(run_dir).resolve().parts[-3:]
    return re.sub(r"[^A-Za-z0-9_-]", "-", "-".join(parts))[-120:]

def progress_bar_argument(trainer_cfg: DictConfig) -> dict[str, bool]:
    """``{"enable_progress_bar": False}`` when the config asks for the bar but standard error is not a terminal
    (a log file, a batch job): the epoch_log callback's lines stand in for it there. Otherwise ``{}``."""
    requested = trainer_cfg.get("enable_progress_bar")
    if requested and not progress_bar_setting(requested):
        log.info("standard error is not a terminal: no progress bar; the epoch_log callback logs progress lines")
        return {"enable_progress_bar": False}
    return {}

def build(cfg: DictConfig) -> tuple[L.LightningModule, L.LightningDataModule, L.Trainer]:
    """Module, data module and trainer of a resolved config, with the config stored in the module."""
    expected = TASK_MODULES.get(cfg.task)
    if expected and not str(cfg.model.get("_target_", "")).endswith(expected):
        raise ConfigError(f"task={cfg.task} trains a {expected}, but model._target_={cfg.model.get('_target_')}; "
                          "pick a matching model group (model=ochmr|spin: regressor, model=context_hrnet: context)")
    datamodule = instantiate(cfg.data, _convert_="all")
    _resolve_mean_params(cfg, datamodule)
    module = instantiate(cfg.model, _convert_="all")
    _monitor_selection_metric(cfg, module)
    module.run_config = OmegaConf.to_container(cfg, resolve=True)
    _tag_wandb_run(cfg, datamodule, module)
    loggers = instantiate_group(cfg.get("logger"))
    callbacks = instantiate_group(cfg.get("callbacks"))
    if not loggers:  # logger=none: nothing to monitor the learning rate into (Lightning refuses the callback)
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    arguments = summary_trainer_arguments(callbacks, cfg.trainer)
    arguments.update(progress_bar_argument(cfg.trainer))
    trainer = instantiate(cfg.trainer, logger=loggers or False, default_root_dir=cfg.run_dir, _convert_="all",
                          **arguments)
    for logger in trainer.loggers:
        logger.log_hyperparams(module.run_config)
    return module, datamodule, trainer

def _monitor_selection_metric(cfg: DictConfig, module: L.LightningModule) -> None:
    """``select_checkpoint=best``: the epoch checkpoint (``callbacks.model_checkpoint``) keeps the best epoch by
    the module's ``SELECTION_METRIC``, unless the config names a monitor of its own."""
    if select_checkpoint(cfg) != "best":
        return
    epoch_checkpoint = cfg.callbacks.model_checkpoint
    if epoch_checkpoint.get("monitor"):
        return
    metric, mode = type(module).SELECTION_METRIC
    with open_dict(cfg):
        epoch_checkpoint.monitor = metric
        epoch_checkpoint.mode = mode

def _resolve_mean_params(cfg: DictConfig, datamodule: Any) -> None:
    """``model.mean_params: null`` with the synthetic body model on SynthCrowd: the training split's own mean.

    Real SMPL (``body_model_dir`` set) keeps SPIN's ``smpl_mean_params.npz`` from its folder. The file used is
    written into the config, so it is logged with the run and stored in every checkpoint.
    """
    model = cfg.model
    if "mean_params" not in model or model.mean_params is not None or model.get("body_model_dir"):
        return
    path_of = getattr(datamodule, "mean_params_path", None)
    if path_of is None or getattr(datamodule, "body_model_dir", None):
        return
    with open_dict(cfg):
        cfg.model.mean_params = str(path_of("train"))
    log.info("regressor starts from the training split's mean parameters: %s", cfg.model.mean_params)
