"""``evaluate``: score a trained checkpoint on a split (a regressor, with its context diagnostics, or a context
estimator's centres) and write the results files."""

from __future__ import annotations

import copy
import difflib
import logging
import os
from collections.abc import Collection
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from ochmr_lit.checkpoint_files import EVALUATE_NEEDS_CHECKPOINT
from ochmr_lit.config_checks import (
    check_accelerator,
    check_data,
    check_seed_and_tags,
    check_trainer,
    check_trainer_values,
)
from ochmr_lit.config_signatures import check_target_keys
from ochmr_lit.data.predicted_centres import centre_errors, load_predicted_centres
from ochmr_lit.errors import CheckpointError, ConfigError
from ochmr_lit.eval.context_modes import context_mode_list
from ochmr_lit.eval.protocols import PROTOCOLS
from ochmr_lit.eval.results_files import (
    atomic_write_text,
    context_diagnostics_document,
    print_table,
    write_columns_csv,
    write_results,
)
from ochmr_lit.lit.checkpoints import load_context_checkpoint, load_regressor_checkpoint
from ochmr_lit.runner.builder import instantiate_group, progress_bar_argument
from ochmr_lit.runner.predicted_centres import cache_predicted_centres
from ochmr_lit.runner.run_folders import resolve_ckpt_path
from ochmr_lit.runner.testing import finish_loggers, run_test
from ochmr_lit.setting_types import boolean_setting

#: A predicted target centre within this fraction of the crop side of the annotated one counts as found (the
#: context estimator's ``pck_threshold``).
CENTRE_FOUND = 0.05

log = logging.getLogger(__name__)

#: The splits `evaluate split=...` scores.
EVALUATION_SPLITS = ("train", "val", "test")

def _record_evaluation(module: L.LightningModule, cfg: DictConfig) -> None:
    """Add the evaluation's config to the run config the checkpoint stored (``evaluated_with``)."""
    stored = OmegaConf.create(module.run_config or {})
    module.run_config = OmegaConf.to_container(OmegaConf.merge(stored, {"evaluated_with": cfg}), resolve=True)

def _test_datamodule(data: DictConfig, split: str) -> L.LightningDataModule:
    """The data module of config ``data`` whose test loader reads ``split``."""
    datamodule = instantiate(data, _convert_="all")
    datamodule.test_split = split
    return datamodule

def _evaluation_data_and_trainer(cfg: DictConfig, split: str) -> tuple[L.LightningDataModule, L.Trainer]:
    """The data module testing ``split`` and the Trainer (with the config's loggers and callbacks) of ``evaluate``."""
    datamodule = _test_datamodule(cfg.data, split)
    trainer = instantiate(cfg.trainer, logger=instantiate_group(cfg.get("logger")) or False,
                          callbacks=instantiate_group(cfg.get("callbacks")), default_root_dir=cfg.run_dir,
                          _convert_="all", **progress_bar_argument(cfg.trainer))
    return datamodule, trainer

def _annotated_datamodule(cfg: DictConfig, split: str) -> L.LightningDataModule:
    """The data module testing ``split`` with centermaps rendered from the annotations (``context_mode=exact``)."""
    data = copy.deepcopy(cfg.data)
    with open_dict(data):
        data.predicted_centres = None
    return _test_datamodule(data, split)

def _write_centre_errors(cfg: DictConfig, datamodule: L.LightningDataModule, split: str) -> Path:
    """``results/context_centres.csv``: per person (``sample_index`` as in ``per_sample.csv``), how far the
    predicted target centre the regressor read lies from the annotated one (image px, fraction of the crop side).

    The annotations are read again: the test dataset's records hold the predicted centres in place of theirs."""
    records, _ = datamodule.load_records(split)
    cache = Path(cfg.data.predicted_centres) / f"{split}.npz"
    errors = centre_errors(records, load_predicted_centres(cache), datamodule.transform("val").scale_factor)
    path = write_columns_csv(Path(cfg.run_dir) / "results" / "context_centres.csv", errors)
    found = int(np.sum(errors["centre_error"] < CENTRE_FOUND))
    log.info("the predicted target centre lies within %.0f %% of the crop side of the annotated one for %d of %d "
             "people: %s", 100 * CENTRE_FOUND, found, len(records), path)
    return path

def _evaluate_context_estimator(cfg: DictConfig, ckpt: str, split: str) -> dict[str, Any]:
    """Score a context estimator's decoded centres on a split, for every person and per bucket.

    ``results/metrics.json`` and ``table.md`` hold ``pck_centre``, ``centre_on_other`` (the target's centre
    placed on another person's), ``peak_dist``, ``global_recall`` and ``global_precision`` (fractions of the map
    side and shares, :class:`ochmr_lit.metrics.CentreLocalisation`), each also per result bucket (``_heavy``,
    ``_distractor``, ...), and the people counted.
    """
    module = load_context_checkpoint(ckpt)
    _record_evaluation(module, cfg)
    datamodule, trainer = _evaluation_data_and_trainer(cfg, split)
    log.info("seed %d (torch, numpy, Python and the loader workers)", cfg.seed)
    trainer.test(module, datamodule=datamodule, verbose=False)
    protocol = {"name": "body centres (context estimator)", "pck_threshold": module.hparams.pck_threshold,
                "global_radius": module.hparams.global_radius, "split": split}
    if trainer.is_global_zero:
        write_results(Path(cfg.run_dir) / "results", module.test_results, None, protocol,
                      run_config=module.run_config)
        print_table(module.test_results, title=f"{cfg.experiment_name}: body centres ({split} split)")
    finish_loggers(trainer)
    return {"checkpoint": ckpt, "results": {"metrics": module.test_results, "protocol": protocol}}


def context_modes(cfg: DictConfig) -> list[str]:
    """The context modes an evaluation runs: ``context_modes`` (a list) when set, else ``context_mode``.

    Either may be one mode or a list of ``true`` / ``exact`` / ``shuffled`` / ``zeroed``; default ``[true]``.
    """
    if cfg.get("context_modes") is not None:
        value, key = cfg.context_modes, "context_modes"
    else:
        value, key = cfg.get("context_mode", "true"), "context_mode"
    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value)
    return context_mode_list(value, key)

def _test_context_modes(module, datamodule, trainer: L.Trainer, cfg: DictConfig, modes: list[str],
                        exact_datamodule: L.LightningDataModule | None = None) -> dict[str, Any]:
    """Test once per context mode: ``results/context_<mode>/`` each, ``results/context_diagnostics.md``.

    ``exact`` reads ``exact_datamodule`` (the same split with the annotations' centermaps; ``datamodule`` when
    None). ``results/`` itself holds the ``true`` evaluation (metrics {} when ``true`` is not among the modes) with
    ``context_diagnostics`` (mode -> metrics) in its ``metrics.json`` and ``table.md``.
    """
    root = Path(cfg.run_dir) / "results"
    outcomes, per_mode, tables = {}, {}, {}
    for mode in modes:
        module.context_mode = mode
        data = exact_datamodule if mode == "exact" and exact_datamodule is not None else datamodule
        outcomes[mode] = run_test(module, data, trainer, cfg, folder=root / f"context_{mode}")
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

def check_evaluation_crop(cfg: DictConfig, module: Any, ckpt: str) -> None:
    """Refuse crops of another side (``data.crop_size``) or maps of another size (``data.map_size``) than the
    checkpoint was trained on: the regressor would run, at another scale, and its errors would mean nothing."""
    trained_crop = int(module.hparams.crop_size)
    trained_map = ((module.run_config or {}).get("data") or {}).get("map_size")
    wanted = [f"data.crop_size={trained_crop}"] + ([f"data.map_size={int(trained_map)}"] if trained_map else [])
    for key, trained in (("crop_size", trained_crop), ("map_size", trained_map)):
        given, key = cfg.data.get(key), f"data.{key}"
        if given is not None and trained is not None and int(given) != int(trained):
            raise ConfigError(f"{key}={given}, but {ckpt} was trained with {key}={int(trained)}: evaluate it with "
                              f"{' '.join(wanted)} (the settings it was trained with are in its run_config)")

def warn_unused_model_settings(cfg: DictConfig, module: Any, replaced: Collection[str] = ()) -> list[str]:
    """Log the ``model.*`` settings of the config that differ from the checkpoint's: ``evaluate`` rebuilds the model
    from the checkpoint's own hyper-parameters, so they are not used (``model.flip_test=true`` changes nothing;
    ``flip_test=true`` does). ``replaced``: hyper-parameters evaluate's own settings replaced (``protocol``,
    ``flip_test``). Returns the settings, as ``model.<key>=<value> (checkpoint: <value>)``."""
    given = OmegaConf.to_container(cfg.model, resolve=True)
    trained = dict(module.hparams)
    unused = []
    for key, value in given.items():
        if key == "_target_" or key not in trained or key in replaced or value is None:
            continue  # null: derived when the model was built (focal length, mean parameters), not a choice
        kept = trained[key]
        if isinstance(kept, tuple):
            kept = list(kept)
        if value != kept:
            unused.append(f"model.{key}={value} (checkpoint: {kept})")
    if unused:
        log.warning("evaluate rebuilds the model from the checkpoint's own settings, so these model settings of the "
                    "config are not used: %s (evaluate's own settings, e.g. flip_test=true or protocol=<name>, are "
                    "in configs/evaluate.yaml)", "; ".join(unused))
    return unused


def check_protocol(cfg: DictConfig) -> None:
    """``protocol``: null (the checkpoint's own) or a protocol of :data:`ochmr_lit.eval.protocols.PROTOCOLS`, named
    before the checkpoint is read."""
    name = cfg.get("protocol")
    if name is not None and name not in PROTOCOLS:
        close = difflib.get_close_matches(str(name), PROTOCOLS, n=1)
        raise ConfigError(f"protocol={name!r}: unknown evaluation protocol; "
                          f"{f'did you mean protocol={close[0]}? ' if close else ''}the protocols are "
                          f"{', '.join(sorted(PROTOCOLS))} (or protocol=null: the one the checkpoint was trained for)")


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
    overrides the protocol recorded in the checkpoint, ``flip_test`` (true/false) the checkpoint's flip test
    (:mod:`ochmr_lit.models.flip_test`). ``context_mode`` (or ``context_modes``) other than
    ``true`` runs the context diagnostics (:func:`_test_context_modes`).
    """
    os.environ.setdefault("WANDB_MODE", "offline")
    ckpt = resolve_ckpt_path(cfg)
    if ckpt is None:
        raise ConfigError(EVALUATE_NEEDS_CHECKPOINT)
    split = evaluation_split(cfg)
    check_protocol(cfg)
    check_seed_and_tags(cfg)
    boolean_setting(cfg.get("allow_other_architecture", False), "allow_other_architecture",
                    "evaluate a checkpoint of another architecture than the experiment's")
    check_trainer(cfg.trainer)
    check_accelerator(cfg.trainer)
    check_trainer_values(cfg.trainer)
    check_data(cfg.data)
    check_target_keys(OmegaConf.to_container(cfg.model, resolve=False), "model")
    L.seed_everything(cfg.seed, workers=True, verbose=False)  # said once the evaluation is built: not before an error
    if cfg.get("task") == "context":
        return _evaluate_context_estimator(cfg, ckpt, split)
    overrides = {"protocol": cfg.protocol} if cfg.get("protocol") else {}
    flip_test = boolean_setting(cfg.get("flip_test"), "flip_test", "average each prediction with the mirrored "
                                "crop's", null_means="the checkpoint's own setting")
    if flip_test is not None:
        overrides["flip_test"] = flip_test
    modes = context_modes(cfg)
    module = load_regressor_checkpoint(ckpt, overrides)
    warn_unused_model_settings(cfg, module, set(overrides))
    check_same_architecture(cfg, module, ckpt)
    check_evaluation_crop(cfg, module, ckpt)
    for mode in modes:  # every mode must apply to this model before anything runs
        module.context_mode = mode
    module.context_mode = "true"
    _record_evaluation(module, cfg)
    predicted_maps = module.hparams.context_source == "predicted" or bool(cfg.data.get("predicted_centres"))
    exact_datamodule = _annotated_datamodule(cfg, split) if "exact" in modes and predicted_maps else None
    if module.hparams.context_source == "predicted" and not cfg.data.get("predicted_centres"):
        cfg = copy.deepcopy(cfg)
        with open_dict(cfg):
            cfg.data.predicted_centres = cache_predicted_centres(
                cfg.data, module.context_net, (split,), Path(cfg.run_dir) / "predicted_centres",
                int(module.hparams.context_input_size), str(cfg.trainer.get("precision", "")).startswith("bf16"),
                str(module.hparams.context_checkpoint))
    datamodule, trainer = _evaluation_data_and_trainer(cfg, split)
    log.info("seed %d (torch, numpy, Python and the loader workers)", cfg.seed)
    results = (run_test(module, datamodule, trainer, cfg) if modes == ["true"]
               else _test_context_modes(module, datamodule, trainer, cfg, modes, exact_datamodule))
    if cfg.data.get("predicted_centres") and trainer.is_global_zero:
        _write_centre_errors(cfg, datamodule, split)
    finish_loggers(trainer)
    return {"checkpoint": ckpt, "results": results}
