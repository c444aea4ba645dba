"""What the entry points do with a composed config: build, train, evaluate, write results.

``fit.py`` and ``evaluate.py`` only compose the config and call :func:`run_fit` / :func:`run_evaluate`.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf, open_dict

from ochmr_lit.config_checks import check_run_config, select_checkpoint
from ochmr_lit.data.predicted_centres import predict_centres, save_predicted_centres
from ochmr_lit.errors import CheckpointError, ConfigError, MissingFileError
from ochmr_lit.eval.context_modes import context_mode_list
from ochmr_lit.eval.results_files import atomic_write_text, context_diagnostics_document, print_table, write_results
from ochmr_lit.lit.checkpoints import check_training_checkpoint, load_context_checkpoint, load_regressor_checkpoint
from ochmr_lit.lit.epoch_log import progress_bar_setting
from ochmr_lit.lit.frozen_context import load_frozen_context_estimator
from ochmr_lit.lit.summary import summary_trainer_arguments
from ochmr_lit.progress import ProgressLog

log = logging.getLogger(__name__)

#: The splits `evaluate split=...` scores.
EVALUATION_SPLITS = ("train", "val", "test")
TASK_MODULES = {"regressor": "MeshRegressorModule", "context": "ContextEstimatorModule"}

#: Exit status of a run stopped by SIGTERM after saving last.ckpt (128 + SIGTERM, as a shell reports it).
PREEMPTED_EXIT_CODE = 143


#: Written into a pipeline stage's folder when the stage has finished: ``{"checkpoint": <path in the folder>}``.
STAGE_FINISHED = "finished.json"
#: Where each stage of a run folder keeps its newest checkpoint.
_STAGE_LAST = ("checkpoints/last.ckpt", "context/checkpoints/last.ckpt")


def find_last_checkpoint(output_dir: str | Path, experiment_name: str) -> Path:
    """The newest ``last.ckpt`` of an experiment's runs (what ``evaluate ckpt_path=last`` reads)."""
    candidates = sorted(Path(output_dir, experiment_name).glob("*/checkpoints/last.ckpt"),
                        key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise MissingFileError(f"ckpt_path=last: no {output_dir}/{experiment_name}/*/checkpoints/last.ckpt; "
                                "start without ckpt_path or give a checkpoint file")
    return candidates[-1]


def _has_stage_checkpoint(run_dir: Path) -> bool:
    return any((run_dir / last).is_file() for last in _STAGE_LAST)


def find_resume_folder(output_dir: str | Path, experiment_name: str) -> Path:
    """The run folder ``fit ckpt_path=last`` continues: the experiment's newest with a ``last.ckpt`` of any stage."""
    root = Path(output_dir, experiment_name)
    found = [(path.stat().st_mtime, folder) for folder in root.glob("*") if folder.is_dir()
             for path in (folder / last for last in _STAGE_LAST) if path.is_file()]
    if not found:
        raise MissingFileError(f"ckpt_path=last: no run of {experiment_name} to resume under {root} (no "
                                "checkpoints/last.ckpt in any run folder); start without ckpt_path or give a "
                                "checkpoint file")
    return max(found)[1]


def _resume_in_place(cfg: DictConfig) -> DictConfig:
    """``ckpt_path=last`` continues the run in the folder it resumes: checkpoints, logs and results in one place."""
    if cfg.get("ckpt_path") != "last" or _has_stage_checkpoint(Path(cfg.run_dir)):
        return cfg
    folder = find_resume_folder(cfg.paths.output_dir, cfg.experiment_name)
    cfg = copy.deepcopy(cfg)
    with open_dict(cfg):
        cfg.run_dir = str(folder)
    log.info("ckpt_path=last: continuing the run in %s", folder)
    return cfg


def _resolve_ckpt_path(cfg: DictConfig) -> str | None:
    if cfg.get("ckpt_path") in (None, ""):
        return None
    if cfg.ckpt_path == "last":
        return str(find_last_checkpoint(cfg.paths.output_dir, cfg.experiment_name))
    if not Path(cfg.ckpt_path).is_file():
        raise MissingFileError(f"ckpt_path={cfg.ckpt_path}: no such file")
    return str(cfg.ckpt_path)


def _stage_ckpt_path(cfg: DictConfig) -> str | None:
    """The checkpoint a training stage starts from: with ``last``, its own folder's (None: the stage starts)."""
    if cfg.get("ckpt_path") == "last":
        last = Path(cfg.run_dir) / "checkpoints" / "last.ckpt"
        return str(last) if last.is_file() else None
    return _resolve_ckpt_path(cfg)


def _instantiate_group(group: DictConfig | None) -> list[Any]:
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


def build(cfg: DictConfig) -> tuple[L.LightningModule, L.LightningDataModule, L.Trainer]:
    """Module, data module and trainer of a resolved config, with the config stored in the module."""
    expected = TASK_MODULES.get(cfg.task)
    if expected and not str(cfg.model.get("_target_", "")).endswith(expected):
        raise ValueError(f"task={cfg.task} trains a {expected}, but model._target_={cfg.model.get('_target_')}; "
                         "pick a matching model group (model=ochmr|spin: regressor, model=context_hrnet: context)")
    datamodule = instantiate(cfg.data, _convert_="all")
    _resolve_mean_params(cfg, datamodule)
    module = instantiate(cfg.model, _convert_="all")
    _monitor_selection_metric(cfg, module)
    module.run_config = OmegaConf.to_container(cfg, resolve=True)
    _tag_wandb_run(cfg, datamodule, module)
    loggers = _instantiate_group(cfg.get("logger"))
    callbacks = _instantiate_group(cfg.get("callbacks"))
    if not loggers:  # logger=none: nothing to monitor the learning rate into (Lightning refuses the callback)
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    arguments = summary_trainer_arguments(callbacks, cfg.trainer)
    requested = cfg.trainer.get("enable_progress_bar")
    if requested and not progress_bar_setting(requested):
        log.info("standard error is not a terminal: no progress bar, one line per epoch (the epoch_log callback)")
        arguments["enable_progress_bar"] = False
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


def _stage_config(cfg: DictConfig) -> DictConfig:
    """The context-estimator stage of ``task=pipeline``: ``context_stage`` merged over the run config.

    ``context_stage.model`` is the stage's whole model: the experiment composes it from the context estimator's
    group config (``/model@context_stage.model: context_hrnet`` in its defaults) with its own values merged
    over it. ``context_stage.data`` and ``context_stage.trainer`` are merged over the run's.
    """
    stage = cfg.context_stage
    if stage is None:
        raise ValueError("task=pipeline needs a context_stage block (see experiments/synthcrowd.yaml)")
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


def cache_predicted_centres(data_cfg: DictConfig, net: torch.nn.Module, splits: tuple[str, ...], out_dir: Path,
                            input_size: int, bf16: bool, checkpoint: str) -> str:
    """Run a frozen context estimator once over each split's unaugmented crops; write ``<split>.npz``.

    Returns the folder for ``data.predicted_centres``. Existing files are kept (a resumed stage reuses them);
    every DDP rank computes the same deterministic values and replaces the file atomically.
    """
    data = OmegaConf.to_container(data_cfg, resolve=True)
    data["predicted_centres"] = None  # the crops of the annotated records, whatever the config says
    datamodule = instantiate(data, _convert_="all")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    net = net.to(device, memory_format=torch.channels_last)  # 1.3x faster inference on CPU (HRNet-W16, 64 px)
    for split in splits:
        target = out_dir / f"{split}.npz"
        if target.is_file():
            continue
        started = time.perf_counter()
        loader = datamodule.unaugmented_loader(split)
        progress = ProgressLog(log, f"predicting body centres of the {split} crops", len(loader.sampler), "crops")
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            table = predict_centres(net, loader, input_size, progress=progress)
        save_predicted_centres(target, table, checkpoint=checkpoint)
        log.info("predicted body centres of %d %s crops in %.1f s -> %s", len(table), split,
                 time.perf_counter() - started, target)
    return str(out_dir)


def _with_predicted_centres(cfg: DictConfig, splits: tuple[str, ...]) -> DictConfig:
    """A regressor on predicted context reads its centres from a cache made once (never per epoch)."""
    if cfg.model.get("context_source") != "predicted" or cfg.data.get("predicted_centres"):
        return cfg
    checkpoint = str(cfg.model.context_checkpoint)
    folder = cache_predicted_centres(cfg.data, load_frozen_context_estimator(checkpoint), splits,
                                     Path(cfg.run_dir) / "predicted_centres", int(cfg.model.context_input_size),
                                     str(cfg.trainer.get("precision", "")).startswith("bf16"), checkpoint)
    cfg = copy.deepcopy(cfg)
    with open_dict(cfg):
        cfg.data.predicted_centres = folder
    return cfg


def _fit_one(cfg: DictConfig) -> dict[str, Any]:
    L.seed_everything(cfg.seed, workers=True)
    if cfg.task == "regressor":
        cfg = _with_predicted_centres(cfg, ("train", "val", "test") if cfg.get("test_after_fit") else ("train", "val"))
    module, datamodule, trainer = build(cfg)
    ckpt_path = _stage_ckpt_path(cfg)
    if ckpt_path is not None and cfg.get("ckpt_path") != "last":
        check_training_checkpoint(ckpt_path, module)  # a file the user named: the right kind and architecture?
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    except SIGTERMException:
        saved = [c.saved_path for c in trainer.callbacks if getattr(c, "saved_path", None)]
        where = f"saved {saved[0]}" if saved else "no PreemptionCheckpoint callback: only earlier checkpoints exist"
        log.warning("stopped by SIGTERM at step %d (%s); continue with ckpt_path=last", trainer.global_step, where)
        raise SystemExit(PREEMPTED_EXIT_CODE) from None
    best = _best_checkpoint(trainer) if select_checkpoint(cfg) == "best" else None
    checkpoint = best["path"] if best else _final_checkpoint(trainer)
    if checkpoint is None:  # no checkpoint callback (or fast_dev_run): still keep the trained weights
        checkpoint = str(Path(cfg.run_dir) / "checkpoints" / "final.ckpt")
        trainer.save_checkpoint(checkpoint)
    outcome: dict[str, Any] = {"checkpoint": checkpoint}
    if best:
        outcome["selected"] = best
    if cfg.get("test_after_fit") and cfg.task == "regressor":
        outcome["results"] = _test(module, datamodule, trainer, cfg, selected=best)
    _finish_loggers(trainer)
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


def _finish_loggers(trainer: L.Trainer) -> None:
    for logger in trainer.loggers:
        if type(logger).__name__ == "WandbLogger" and trainer.is_global_zero:
            logger.experiment.finish()


def _test(module, datamodule, trainer: L.Trainer, cfg: DictConfig, folder: Path | None = None,
          selected: dict[str, Any] | None = None) -> dict[str, Any]:
    """Test the module; write its results (and the reference predictions') to ``folder`` (default ``results/``).

    ``selected`` (:func:`_best_checkpoint`): test the weights of its checkpoint instead, and record it in the
    results' ``run_config`` as ``selected_checkpoint``.
    Returns ``metrics`` (the model's), ``references`` (reference name -> metrics) and ``protocol``.
    """
    trainer.test(module, datamodule=datamodule, verbose=False, ckpt_path=selected["path"] if selected else None)
    if selected:  # loading the checkpoint restored the run config stored in it
        module.run_config = {**(module.run_config or {}), "selected_checkpoint": selected}
    results = {"metrics": module.test_results, "references": module.test_references,
               "protocol": module.evaluation_protocol().to_dict()}
    if trainer.is_global_zero:
        write_results(folder or Path(cfg.run_dir) / "results", module.test_results, module.test_per_sample,
                      results["protocol"], run_config=module.run_config, per_joint=module.test_per_joint,
                      references=module.test_references)
        mode = "" if module.context_mode == "true" else f", context {module.context_mode}"
        print_table(module.test_results, references=module.test_references,
                    title=f"{cfg.experiment_name}: {results['protocol']['name']} "
                          f"({getattr(datamodule, 'test_split', 'test')} split{mode})")
    return results


def _record_evaluation(module: L.LightningModule, cfg: DictConfig) -> None:
    """Add the evaluation's config to the run config the checkpoint stored (``evaluated_with``)."""
    stored = OmegaConf.create(module.run_config or {})
    module.run_config = OmegaConf.to_container(OmegaConf.merge(stored, {"evaluated_with": cfg}), resolve=True)


def _evaluation_data_and_trainer(cfg: DictConfig, split: str) -> tuple[L.LightningDataModule, L.Trainer]:
    """The data module testing ``split`` and the Trainer (with the config's loggers and callbacks) of ``evaluate``."""
    datamodule = instantiate(cfg.data, _convert_="all")
    datamodule.test_split = split
    trainer = instantiate(cfg.trainer, logger=_instantiate_group(cfg.get("logger")) or False,
                          callbacks=_instantiate_group(cfg.get("callbacks")), default_root_dir=cfg.run_dir,
                          _convert_="all")
    return datamodule, trainer


def _evaluate_context_estimator(cfg: DictConfig, ckpt: str, split: str) -> dict[str, Any]:
    """Score a context estimator's decoded centres on a split, for every person and per bucket.

    ``results/metrics.json`` and ``table.md`` hold ``pck_centre``, ``peak_dist``, ``global_recall`` and
    ``global_precision`` (fractions of the map side and shares, :class:`ochmr_lit.metrics.CentreLocalisation`), each
    also per result bucket (``_heavy``, ``_distractor``, ...), and the people counted.
    """
    module = load_context_checkpoint(ckpt)
    _record_evaluation(module, cfg)
    datamodule, trainer = _evaluation_data_and_trainer(cfg, split)
    trainer.test(module, datamodule=datamodule, verbose=False)
    protocol = {"name": "body centres (context estimator)", "pck_threshold": module.hparams.pck_threshold,
                "global_radius": module.hparams.global_radius, "split": split}
    if trainer.is_global_zero:
        write_results(Path(cfg.run_dir) / "results", module.test_results, None, protocol,
                      run_config=module.run_config)
        print_table(module.test_results, title=f"{cfg.experiment_name}: body centres ({split} split)")
    _finish_loggers(trainer)
    return {"checkpoint": ckpt, "results": {"metrics": module.test_results, "protocol": protocol}}


def context_modes(cfg: DictConfig) -> list[str]:
    """The context modes an evaluation runs: ``context_modes`` (a list) when set, else ``context_mode``.

    Either may be one mode or a list of ``true`` / ``shuffled`` / ``zeroed``; default ``[true]``.
    """
    if cfg.get("context_modes") is not None:
        value, key = cfg.context_modes, "context_modes"
    else:
        value, key = cfg.get("context_mode", "true"), "context_mode"
    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value)
    return context_mode_list(value, key)


def _test_context_modes(module, datamodule, trainer: L.Trainer, cfg: DictConfig, modes: list[str]
                        ) -> dict[str, Any]:
    """Test once per context mode: ``results/context_<mode>/`` each, ``results/context_diagnostics.md``.

    ``results/`` itself holds the ``true`` evaluation (metrics {} when ``true`` is not among the modes) with
    ``context_diagnostics`` (mode -> metrics) in its ``metrics.json`` and ``table.md``.
    """
    root = Path(cfg.run_dir) / "results"
    outcomes, per_mode, tables = {}, {}, {}
    for mode in modes:
        module.context_mode = mode
        outcomes[mode] = _test(module, datamodule, trainer, cfg, folder=root / f"context_{mode}")
        per_mode[mode] = outcomes[mode]["metrics"]
        tables[mode] = (module.test_per_sample, module.test_per_joint)
    module.context_mode = "true"
    first = outcomes[modes[0]]
    results = {**(outcomes.get("true") or {**first, "metrics": {}}), "context_diagnostics": per_mode}
    if trainer.is_global_zero:
        per_sample, per_joint = tables.get("true", (None, None))
        write_results(root, results["metrics"], per_sample, results["protocol"], run_config=module.run_config,
                      per_joint=per_joint, references=results["references"], context_diagnostics=per_mode)
        document = context_diagnostics_document(per_mode, results["protocol"]["name"])
        atomic_write_text(root / "context_diagnostics.md", document)
        print(f"\n{document}")
    return results


def run_fit(cfg: DictConfig) -> dict[str, Any]:
    """Train as the config says; returns the final checkpoint path(s) and test metrics."""
    os.environ.setdefault("WANDB_MODE", "offline")
    if cfg.task not in (*TASK_MODULES, "pipeline"):
        raise ConfigError(f"task={cfg.task!r}; use regressor, context or pipeline")
    # every stage's settings are checked before the first one starts
    check_run_config(cfg, [("", cfg), ("context_stage.", _stage_config(cfg))] if cfg.task == "pipeline"
                     else [("", cfg)])
    if cfg.task == "pipeline":
        cfg = _resume_in_place(cfg)
        context = _context_stage(_stage_config(cfg))
        regressor_cfg = OmegaConf.merge(cfg, {"task": "regressor"})
        with open_dict(regressor_cfg):
            regressor_cfg.model.context_source = "predicted"
            regressor_cfg.model.context_checkpoint = context["checkpoint"]
        outcome = _fit_one(regressor_cfg)
        outcome["context_checkpoint"] = context["checkpoint"]
        return outcome
    if cfg.task not in TASK_MODULES:
        raise ValueError(f"task={cfg.task!r}; use regressor, context or pipeline")
    return _fit_one(_resume_in_place(cfg))


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


def _architecture(backbone: Any, conorm_depths: Any) -> str:
    depths = sorted(int(d) for d in (conorm_depths or []))
    kind = f"OCHMR (CoNorm after layer {', '.join(map(str, depths))})" if depths else "SPIN (no CoNorm)"
    return f"{kind} {backbone}"


def check_same_architecture(cfg: DictConfig, module: Any, ckpt: str) -> None:
    """Refuse to file a checkpoint's results under another experiment whose model differs from it.

    Applies when the checkpoint names the experiment that trained it; ``allow_other_architecture=true`` evaluates it
    anyway (``python -m ochmr_lit.evaluate`` then files the results under the checkpoint's own experiment).
    """
    trained_in = (module.run_config or {}).get("experiment_name")
    if not trained_in or trained_in == cfg.get("experiment_name") or cfg.get("allow_other_architecture"):
        return
    trained = _architecture(module.hparams.backbone, module.hparams.conorm_depths)
    asked = _architecture(cfg.model.get("backbone"), cfg.model.get("conorm_depths"))
    if trained != asked:
        raise CheckpointError(
            f"{ckpt} is a {trained} checkpoint of experiment {trained_in}, but experiment={cfg.experiment_name} is "
            f"a {asked}: evaluate it with experiment={trained_in}, or add allow_other_architecture=true to evaluate "
            f"it anyway (its results are then filed under {trained_in})")


def evaluation_split(cfg: DictConfig) -> str:
    """The split ``evaluate`` scores (``split``: train, val or test; train as evaluation crops, unaugmented)."""
    split = cfg.get("split", "test")
    if split not in EVALUATION_SPLITS:
        raise ConfigError(f"split={split!r}: evaluate scores one of {', '.join(EVALUATION_SPLITS)} "
                          "(e.g. split=val)")
    return str(split)


def run_evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate a regressor checkpoint on a split and write the results files (a context estimator's under
    ``task=context``, e.g. ``experiment=synthcrowd_context``: :func:`_evaluate_context_estimator`).

    The model is rebuilt from the checkpoint's own hyper-parameters (architecture, context source and
    context-estimator checkpoint); data, trainer and loggers come from the composed config; ``protocol``
    overrides the protocol recorded in the checkpoint. ``context_mode`` (or ``context_modes``) other than
    ``true`` runs the context diagnostics (:func:`_test_context_modes`).
    """
    os.environ.setdefault("WANDB_MODE", "offline")
    ckpt = _resolve_ckpt_path(cfg)
    if ckpt is None:
        raise ConfigError("evaluate needs ckpt_path=<checkpoint file> (or ckpt_path=last)")
    split = evaluation_split(cfg)
    L.seed_everything(cfg.seed, workers=True)
    if cfg.get("task") == "context":
        return _evaluate_context_estimator(cfg, ckpt, split)
    overrides = {"protocol": cfg.protocol} if cfg.get("protocol") else {}
    modes = context_modes(cfg)
    module = load_regressor_checkpoint(ckpt, overrides)
    check_same_architecture(cfg, module, ckpt)
    for mode in modes:  # every mode must apply to this model before anything runs
        module.context_mode = mode
    module.context_mode = "true"
    _record_evaluation(module, cfg)
    if module.hparams.context_source == "predicted" and not cfg.data.get("predicted_centres"):
        cfg = copy.deepcopy(cfg)
        with open_dict(cfg):
            cfg.data.predicted_centres = cache_predicted_centres(
                cfg.data, module.context_net, (split,), Path(cfg.run_dir) / "predicted_centres",
                int(module.hparams.context_input_size), str(cfg.trainer.get("precision", "")).startswith("bf16"),
                str(module.hparams.context_checkpoint))
    datamodule, trainer = _evaluation_data_and_trainer(cfg, split)
    results = (_test(module, datamodule, trainer, cfg) if modes == ["true"]
               else _test_context_modes(module, datamodule, trainer, cfg, modes))
    _finish_loggers(trainer)
    return {"checkpoint": ckpt, "results": results}
