"""What the entry points do with a composed config: build, train, evaluate, write results.

``fit.py`` and ``evaluate.py`` only compose the config and call :func:`run_fit` / :func:`run_evaluate`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf, open_dict

from ochmr_lit.results import print_table, write_results

log = logging.getLogger(__name__)

TASK_MODULES = {"regressor": "MeshRegressorModule", "context": "ContextEstimatorModule"}

#: Exit status of a run stopped by SIGTERM after saving last.ckpt (128 + SIGTERM, as a shell reports it).
PREEMPTED_EXIT_CODE = 143


def find_last_checkpoint(output_dir: str | Path, experiment_name: str) -> Path:
    """The newest ``last.ckpt`` of an experiment's runs (what ``ckpt_path=last`` resumes from)."""
    candidates = sorted(Path(output_dir, experiment_name).glob("*/checkpoints/last.ckpt"),
                        key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise FileNotFoundError(f"ckpt_path=last: no {output_dir}/{experiment_name}/*/checkpoints/last.ckpt; "
                                "start without ckpt_path or give a checkpoint file")
    return candidates[-1]


def _resolve_ckpt_path(cfg: DictConfig) -> str | None:
    if cfg.get("ckpt_path") in (None, ""):
        return None
    if cfg.ckpt_path == "last":
        return str(find_last_checkpoint(cfg.paths.output_dir, cfg.experiment_name))
    if not Path(cfg.ckpt_path).is_file():
        raise FileNotFoundError(f"ckpt_path={cfg.ckpt_path}: no such file")
    return str(cfg.ckpt_path)


def _instantiate_group(group: DictConfig | None) -> list[Any]:
    if not group:
        return []
    return [instantiate(item, _convert_="all") for item in group.values() if item is not None]


def build(cfg: DictConfig) -> tuple[L.LightningModule, L.LightningDataModule, L.Trainer]:
    """Module, data module and trainer of a resolved config, with the config stored in the module."""
    expected = TASK_MODULES.get(cfg.task)
    if expected and not str(cfg.model.get("_target_", "")).endswith(expected):
        raise ValueError(f"task={cfg.task} trains a {expected}, but model._target_={cfg.model.get('_target_')}; "
                         "pick a matching model group (model=ochmr|spin: regressor, model=context_hrnet: context)")
    datamodule = instantiate(cfg.data, _convert_="all")
    module = instantiate(cfg.model, _convert_="all")
    module.run_config = OmegaConf.to_container(cfg, resolve=True)
    trainer = instantiate(cfg.trainer, logger=_instantiate_group(cfg.get("logger")) or False,
                          callbacks=_instantiate_group(cfg.get("callbacks")), default_root_dir=cfg.run_dir,
                          _convert_="all")
    for logger in trainer.loggers:
        logger.log_hyperparams(module.run_config)
    return module, datamodule, trainer


def _stage_config(cfg: DictConfig) -> DictConfig:
    """The context-estimator stage of ``task=pipeline``: ``context_stage`` merged over the run config."""
    stage = cfg.context_stage
    if stage is None:
        raise ValueError("task=pipeline needs a context_stage block (see experiments/synthcrowd.yaml)")
    stage_cfg = OmegaConf.merge(cfg, {"task": "context", "context_stage": None, "test_after_fit": False,
                                      "run_dir": str(Path(cfg.run_dir) / "context"), "ckpt_path": None})
    with open_dict(stage_cfg):
        stage_cfg.model = stage.model
        for key in ("data", "trainer"):
            if stage.get(key) is not None:
                stage_cfg[key] = OmegaConf.merge(stage_cfg[key], stage[key])
        stage_cfg.experiment_name = stage.get("experiment_name", f"{cfg.experiment_name}_context")
        if "wandb" in (stage_cfg.get("logger") or {}):
            stage_cfg.logger.wandb.name = stage_cfg.experiment_name
    return stage_cfg


def _fit_one(cfg: DictConfig) -> dict[str, Any]:
    L.seed_everything(cfg.seed, workers=True)
    module, datamodule, trainer = build(cfg)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=_resolve_ckpt_path(cfg))
    except SIGTERMException:
        saved = [c.saved_path for c in trainer.callbacks if getattr(c, "saved_path", None)]
        where = f"saved {saved[0]}" if saved else "no PreemptionCheckpoint callback: only earlier checkpoints exist"
        log.warning("stopped by SIGTERM at step %d (%s); continue with ckpt_path=last", trainer.global_step, where)
        raise SystemExit(PREEMPTED_EXIT_CODE) from None
    checkpoint = _final_checkpoint(trainer)
    if checkpoint is None:  # no checkpoint callback (or fast_dev_run): still keep the trained weights
        checkpoint = str(Path(cfg.run_dir) / "checkpoints" / "final.ckpt")
        trainer.save_checkpoint(checkpoint)
    outcome: dict[str, Any] = {"checkpoint": checkpoint}
    if cfg.get("test_after_fit") and cfg.task == "regressor":
        outcome["results"] = _test(module, datamodule, trainer, cfg)
    _finish_loggers(trainer)
    return outcome


def _final_checkpoint(trainer: L.Trainer) -> str | None:
    callback = trainer.checkpoint_callback
    if callback is None:
        return None
    path = callback.last_model_path or callback.best_model_path
    return path or None


def _finish_loggers(trainer: L.Trainer) -> None:
    for logger in trainer.loggers:
        if type(logger).__name__ == "WandbLogger" and trainer.is_global_zero:
            logger.experiment.finish()


def _test(module, datamodule, trainer: L.Trainer, cfg: DictConfig) -> dict[str, Any]:
    trainer.test(module, datamodule=datamodule, verbose=False)
    results = {"metrics": module.test_results, "protocol": module.evaluation_protocol().to_dict()}
    if trainer.is_global_zero:
        write_results(Path(cfg.run_dir) / "results", module.test_results, module.test_per_sample,
                      results["protocol"], run_config=module.run_config, per_joint=module.test_per_joint)
        print_table(module.test_results, title=f"{cfg.experiment_name}: {results['protocol']['name']} (test split)")
    return results


def run_fit(cfg: DictConfig) -> dict[str, Any]:
    """Train as the config says; returns the final checkpoint path(s) and test metrics."""
    os.environ.setdefault("WANDB_MODE", "offline")
    if cfg.task == "pipeline":
        context = _fit_one(_stage_config(cfg))
        regressor_cfg = OmegaConf.merge(cfg, {"task": "regressor"})
        with open_dict(regressor_cfg):
            regressor_cfg.model.context_source = "predicted"
            regressor_cfg.model.context_checkpoint = context["checkpoint"]
        outcome = _fit_one(regressor_cfg)
        outcome["context_checkpoint"] = context["checkpoint"]
        return outcome
    if cfg.task not in TASK_MODULES:
        raise ValueError(f"task={cfg.task!r}; use regressor, context or pipeline")
    return _fit_one(cfg)


def run_evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate a regressor checkpoint on a split and write the results files.

    The model is rebuilt from the checkpoint's own hyper-parameters (architecture, context source and
    context-estimator checkpoint); data, trainer and loggers come from the composed config; ``protocol``
    overrides the protocol recorded in the checkpoint.
    """
    os.environ.setdefault("WANDB_MODE", "offline")
    ckpt = _resolve_ckpt_path(cfg)
    if ckpt is None:
        raise ValueError("evaluate needs ckpt_path=<checkpoint file> (or ckpt_path=last)")
    from ochmr_lit.lit import MeshRegressorModule

    L.seed_everything(cfg.seed, workers=True)
    overrides = {"protocol": cfg.protocol} if cfg.get("protocol") else {}
    try:
        module = MeshRegressorModule.load_from_checkpoint(ckpt, map_location="cpu", weights_only=True, **overrides)
    except (KeyError, TypeError, RuntimeError) as error:
        raise ValueError(f"{ckpt} is not a mesh-regressor checkpoint of this framework ({error}); "
                         "evaluate takes checkpoints written by task=regressor or task=pipeline runs") from error
    stored = OmegaConf.create(module.run_config or {})
    module.run_config = OmegaConf.to_container(OmegaConf.merge(stored, {"evaluated_with": cfg}), resolve=True)
    datamodule = instantiate(cfg.data, _convert_="all")
    trainer = instantiate(cfg.trainer, logger=_instantiate_group(cfg.get("logger")) or False,
                          callbacks=_instantiate_group(cfg.get("callbacks")), default_root_dir=cfg.run_dir,
                          _convert_="all")
    results = _test(module, datamodule, trainer, cfg)
    _finish_loggers(trainer)
    return {"checkpoint": ckpt, "results": results}
