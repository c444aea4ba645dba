"""Checks of a composed run config that must pass before any work starts, for every stage of a pipeline.

A wrong value (``trainer.max_epochs=abc``, ``model.conorm_depths=[7]``, a negative learning rate, an unknown context
source) stops the command at start-up with one line naming the key, instead of after a first stage has trained.
The rules are those the Trainer and the modules apply themselves (their signatures and checking functions), so
there is one source for each.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.accelerators import CPUAccelerator
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ochmr_lit.config_signatures import (
    accepts,
    check_components,
    check_target_keys,
    check_target_types,
    describe,
    target_class,
)
from ochmr_lit.console import quiet_lightning
from ochmr_lit.data.datamodules.base import check_loader_settings
from ochmr_lit.data.datamodules.synthcrowd import check_generation_settings
from ochmr_lit.data.transforms import AugmentationConfig
from ochmr_lit.errors import ConfigError, MissingFileError, user_error_cause
from ochmr_lit.geometry import positive_pixels
from ochmr_lit.hardware import cpu_has_native_bf16
from ochmr_lit.lit.checkpoints import check_checkpoint_architecture, check_checkpoint_kind
from ochmr_lit.lit.losses import LossWeights
from ochmr_lit.lit.mesh_regressor import check_context_source, check_heatmap_supervision
from ochmr_lit.lit.optim import OptimConfig
from ochmr_lit.models.hmr import check_architecture
from ochmr_lit.models.hrnet import HRNET_STRIDE
from ochmr_lit.models.pretrained import check_pretrained_files
from ochmr_lit.setting_types import boolean_setting, is_number, is_whole

log = logging.getLogger(__name__)


def check_trainer(trainer: DictConfig | Mapping, key: str = "trainer") -> None:
    """Every key under ``trainer`` is a ``lightning.Trainer`` argument whose value fits its type."""
    values = OmegaConf.to_container(trainer, resolve=True) if isinstance(trainer, DictConfig) else dict(trainer)
    parameters = inspect.signature(L.Trainer.__init__).parameters
    for name, value in values.items():
        if name == "_target_":
            continue
        if name not in parameters:
            raise ConfigError(f"{key}.{name}: not an argument of lightning.Trainer")
        annotation = parameters[name].annotation
        if not accepts(value, annotation):
            raise ConfigError(f"{key}.{name}={value!r}: lightning.Trainer takes {describe(annotation)} here")


def check_accelerator(trainer: DictConfig | Mapping, key: str = "trainer") -> None:
    """A GPU trainer (``accelerator`` gpu or cuda) needs the GPUs it asks for (``devices``) on this machine: said in
    one line naming the key before anything starts, where Lightning would stop with a traceback."""
    if str(trainer.get("accelerator", "")).lower() not in ("gpu", "cuda"):
        return
    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if visible == 0:
        raise ConfigError(f"{key}.accelerator={trainer.get('accelerator')}, but no CUDA GPU is visible on this machine "
                          "(torch.cuda.is_available() is False): use trainer=cpu (or trainer=ddp_cpu), or run on a "
                          "machine with a GPU and a CUDA build of torch (python -m ochmr_lit.doctor says which)")
    devices = trainer.get("devices")
    wanted = len(devices) if isinstance(devices, (list, tuple)) or OmegaConf.is_list(devices) else devices
    if isinstance(wanted, int) and not isinstance(wanted, bool) and wanted > visible:
        raise ConfigError(f"{key}.devices={devices}, but this machine shows {visible} CUDA GPU(s): set "
                          f"{key}.devices={visible} (or fewer), or run on a machine with more")


#: Trainer arguments Lightning checks only in its loop, where 0 stops a run with a ZeroDivisionError (in a pipeline,
#: after the stages before it have trained).
POSITIVE_INTERVALS = ("accumulate_grad_batches", "check_val_every_n_epoch", "val_check_interval", "log_every_n_steps")
#: Trainer arguments the check below does not pass on: components the runner builds, and switches it sets itself.
_NOT_PROBED = frozenset({"_target_", "logger", "callbacks", "plugins", "enable_checkpointing", "enable_progress_bar",
                         "enable_model_summary"})


def first_named(names: Iterable[str], message: str) -> str | None:
    """Which of ``names`` (a constructor's arguments) an error ``message`` names first, as a whole word; None when
    it names none of them."""
    found = sorted((m.start(), n) for n in names if (m := re.search(rf"\b{re.escape(n)}\b", message)))
    return found[0][1] if found else None


def check_trainer_values(trainer: DictConfig | Mapping, key: str = "trainer") -> None:
    """A stage's trainer settings as ``lightning.Trainer`` checks them when it is built (``max_epochs=-2``,
    ``max_time='1:00'``, ...), by building one without logger, callbacks or plugins before any stage trains, so that
    a later stage's mistake does not wait for the earlier stages; the intervals of :data:`POSITIVE_INTERVALS` above 0.
    Warns in one line when a CPU run asks for bf16 (or fp16, which Lightning turns into bf16 on a CPU) on a CPU
    without native bf16, where every step runs tens of times slower than in fp32. Call after
    :func:`check_accelerator`, which names a missing GPU."""
    values = OmegaConf.to_container(trainer, resolve=True) if isinstance(trainer, DictConfig) else dict(trainer)
    for name in POSITIVE_INTERVALS:
        value = values.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value <= 0:
            raise ConfigError(f"{key}.{name}={value}: must be above 0 (Lightning divides by it in its training loop)")
    clip = values.get("gradient_clip_val")
    if isinstance(clip, (int, float)) and not isinstance(clip, bool) and clip < 0:  # would flip the gradients
        raise ConfigError(f"{key}.gradient_clip_val={clip}: the largest gradient norm (or value), a number >= 0, or "
                          "null for no clipping")
    probed = {k: v for k, v in values.items()
              if k not in _NOT_PROBED and not isinstance(v, (Mapping, list))}  # a strategy or profiler node, ...
    try:
        with quiet_lightning():  # the stage's own trainer says "GPU available: ..." and Lightning's warnings once
            built = L.Trainer(**probed, logger=False, callbacks=[], enable_checkpointing=False,
                              enable_progress_bar=False, enable_model_summary=False)
    except (MisconfigurationException, ValueError, TypeError) as error:
        message = " ".join(str(error).split())
        shown = [n for n in probed if isinstance(probed[n], str) and repr(probed[n]) in message]  # max_time: Timer
        name = first_named(probed, message) or (shown[0] if len(shown) == 1 else None)
        raise ConfigError(f"{key}.{name}={probed[name]!r}: {message}" if name else f"{key}: {message}") from None
    precision = str(built.precision)
    if isinstance(built.accelerator, CPUAccelerator) and precision.startswith("bf16") and not cpu_has_native_bf16():
        asked = values.get("precision")
        log.warning("%s.precision=%s: this CPU has no native bf16 (AVX-512 BF16 or AMX), so %s is emulated and every "
                    "step runs tens of times slower than in fp32; set %s.precision=32-true (what trainer=cpu picks "
                    "on this CPU)", key, asked, precision if str(asked) == precision else f"{precision} (Lightning's "
                    f"choice for {asked} on a CPU)", key)


def _prefixed(error: ValueError, key: str) -> ConfigError:
    message = str(error)
    return ConfigError(message if message.startswith(key) else f"{key}.{message}")


def check_regressor_model(model: DictConfig | Mapping, key: str = "model") -> None:
    """The mesh regressor's architecture, context source, optimiser and loss weights, as its module checks them."""
    values = OmegaConf.to_container(model, resolve=True) if isinstance(model, DictConfig) else dict(model)
    try:
        check_architecture(values.get("backbone", "resnet50"), values.get("conorm_depths", (2,)),
                           values.get("iterations", 3), values.get("dropout", 0.5), values.get("pooling_grid", 1),
                           values.get("heatmap_keypoints", 0))
    except (ValueError, TypeError) as error:
        check_target_types(values, key)  # a value of the wrong type (model.iterations=abc) is named with its type
        raise _prefixed(ValueError(str(error)), key) from None
    try:
        check_context_source(tuple(values.get("conorm_depths", (2,))), values.get("context_source", "gt"))
    except ValueError as error:
        raise ConfigError(str(error)) from None
    size = values.get("context_input_size")
    if size is not None and not is_whole(size, 1):
        raise ConfigError(f"{key}.context_input_size={size!r}: the crop side in px the context estimator was trained "
                          f"on, or null (read from {key}.context_checkpoint)")
    boolean_setting(values.get("flip_test", False), f"{key}.flip_test",
                    "validate and test each crop with its mirror, averaged")
    sigma = values.get("context_sigma", 2.0)
    if not is_number(sigma) or not sigma > 0:
        raise ConfigError(f"{key}.context_sigma={sigma!r}: the Gaussian sigma (map cells) predicted centres are "
                          "rendered with, as data.sigma for the annotated ones, a number > 0")
    limit = values.get("keypoints_2d_limit")
    if limit is not None and (not is_number(limit) or limit < 0):
        raise ConfigError(f"{key}.keypoints_2d_limit={limit!r}: how far outside the crop (normalised units, the crop "
                          "is [-1, 1]) a target keypoint may lie and still count in the 2D loss, a number >= 0, or "
                          "null for every keypoint (SPIN)")
    channels = values.get("hidden_channels", 128)
    if not is_whole(channels, 1):
        raise ConfigError(f"{key}.hidden_channels={channels!r}: the channels of the CoNorm blocks' context branch, a "
                          "whole number >= 1 (e.g. 64)")
    if values.get("focal_length") is not None:
        try:
            positive_pixels(values["focal_length"], f"{key}.focal_length")
        except (TypeError, ValueError) as error:
            raise ConfigError(f"{error} at {key}.crop_size, or null for SPIN's field of view") from None
    _check_optim(values.get("optim"), key)
    try:
        weights = LossWeights(**(values.get("loss_weights") or {}))
    except TypeError as error:
        raise ConfigError(f"{key}.loss_weights: {error}") from None
    except ValueError as error:
        raise _prefixed(error, key) from None
    try:
        check_heatmap_supervision(int(values.get("heatmap_keypoints", 0)), weights.keypoint_heatmaps)
    except ValueError as error:
        raise ConfigError(str(error).replace("model.", f"{key}.")) from None


def check_callback_values(callbacks: DictConfig | None, key: str = "callbacks") -> None:
    """Each callback built once as its stage will build it, so that a value its class refuses
    (``callbacks.model_checkpoint.save_top_k=-5``) is named before the first stage trains rather than when the stage
    that uses it starts. The callbacks' constructors only store their settings; call after
    :func:`~ochmr_lit.config_signatures.check_components`, which checks their keys and types. A callback whose values
    resolve only inside a Hydra run (the run folder, when a config is composed outside one) is left to its stage."""
    for name, entry in (callbacks or {}).items():
        if entry is None:
            continue
        try:
            with quiet_lightning():
                instantiate(entry)
        except Exception as error:  # Hydra wraps what the constructor raised
            cause = user_error_cause(error) or error.__cause__ or error
            if isinstance(cause, OmegaConfBaseException):  # a value resolved only at run time (Hydra's run folder)
                continue
            if not isinstance(cause, (MisconfigurationException, ValueError, TypeError)):
                raise  # not a refused value: a bug keeps its traceback
            message = " ".join(str(cause).split())
            if message.startswith(f"{key}."):
                raise ConfigError(message) from None
            arg = first_named([str(a) for a in entry if not str(a).startswith("_")], message)
            where = f"{key}.{name}.{arg}={entry[arg]}" if arg else f"{key}.{name}"
            raise ConfigError(f"{where}: {message}") from None


def check_num_vis(model: Mapping, key: str = "model") -> None:
    """``num_vis`` of either module: how many validation samples it draws into the loggers, a whole number >= 0."""
    num_vis = model.get("num_vis", 0)
    if not is_whole(num_vis, 0):
        raise ConfigError(f"{key}.num_vis={num_vis!r}: validation samples drawn into the loggers each epoch, a whole "
                          "number >= 0 (0 = none)")


def _check_optim(optim: Mapping | None, key: str) -> None:
    try:
        OptimConfig(**(optim or {})).check_settings_used()
    except TypeError as error:
        raise ConfigError(f"{key}.optim: {error}") from None
    except ValueError as error:
        raise ConfigError(str(error).replace("optim.", f"{key}.optim.", 1)) from None


def check_augmentation(augment: DictConfig | Mapping | None, key: str = "data.augment") -> None:
    """The training augmentation's keys and values, as :class:`AugmentationConfig` checks them (None = none)."""
    if augment is None:
        return
    if not isinstance(augment, Mapping):
        raise ConfigError(f"{key}={augment!r}: the training augmentation's settings (flip_prob, rotation_prob, scale, "
                          f"...; ochmr_lit.data.transforms.AugmentationConfig), e.g. {key}.flip_prob=0.5, or "
                          f"{key}=null for none")
    values = OmegaConf.to_container(augment, resolve=True) if isinstance(augment, DictConfig) else dict(augment)
    try:
        AugmentationConfig(**values)
    except TypeError as error:
        raise ConfigError(f"{key}: {error}; the keys are those of ochmr_lit.data.transforms.AugmentationConfig") \
            from None
    except ValueError as error:
        raise ConfigError(str(error).replace("data.augment", key, 1)) from None


def check_data(data: DictConfig | Mapping, key: str = "data") -> None:
    """Every key under ``data`` is a setting of its data module (``data._target_``), the loader's numbers are
    valid (:func:`ochmr_lit.data.datamodules.base.check_loader_settings`) and, for SynthCrowd, the images to
    generate per split are whole numbers >= 1 (:func:`ochmr_lit.data.datamodules.synthcrowd.check_splits`), before
    any data is generated or read."""
    values = OmegaConf.to_container(data, resolve=True) if isinstance(data, DictConfig) else dict(data)
    target = values.get("_target_")
    if not target:
        return
    check_target_keys(values, key, removal="a key another data config set, e.g. SynthCrowd's splits after "
                                           "data=<another dataset>, is removed with")
    check_loader_settings(values, key)
    if str(target).endswith("SynthCrowdDataModule"):
        check_generation_settings(values, key)
    check_target_types(values, key, removal="a key another data config or the experiment set, e.g. SynthCrowd's "
                                            "splits after data=<another dataset>, is removed with")


def check_context_crop(data: DictConfig | Mapping, key: str = "data",
                       taken_from: Mapping[str, str] | None = None) -> None:
    """A context estimator's crops: HRNet takes sides that are multiples of 32 and predicts maps of a quarter of
    that side, so ``data.map_size`` must be ``data.crop_size / 4``. ``taken_from``: the key a value was inherited
    from (a pipeline's context stage takes the run's ``data.crop_size`` unless it sets its own), said in the message
    so that a user who set only that key sees why the context stage is named."""
    crop, maps = data.get("crop_size"), data.get("map_size")

    def origin(name: str) -> str:
        source = (taken_from or {}).get(name)
        return f" ({source}, which the context stage takes unless {key}.{name} is set)" if source else ""

    if isinstance(crop, int) and crop % HRNET_STRIDE:
        nearest = max(HRNET_STRIDE, round(crop / HRNET_STRIDE) * HRNET_STRIDE)
        raise ConfigError(f"{key}.crop_size={crop}{origin('crop_size')}: the context estimator (HRNet) takes crop "
                          f"sides that are multiples of {HRNET_STRIDE}, e.g. {key}.crop_size={nearest} "
                          f"{key}.map_size={nearest // 4}")
    if isinstance(crop, int) and isinstance(maps, int) and maps * 4 != crop:
        raise ConfigError(f"{key}.map_size={maps}{origin('map_size')}: the context estimator predicts maps of a "
                          f"quarter of the crop side: set {key}.map_size={crop // 4} for {key}.crop_size={crop}")


def check_regressor_crop(model: DictConfig | Mapping, data: DictConfig | Mapping | None, prefix: str = "") -> None:
    """The regressor's crop side (its crop camera and the normalisation of its 2D losses) is the side the data module
    cuts: ``model.crop_size`` follows ``data.crop_size`` by default, and a different value would project and score
    every keypoint at the wrong scale without any error."""
    crop, cut = model.get("crop_size"), None if data is None else data.get("crop_size")
    if isinstance(crop, int) and isinstance(cut, int) and crop != cut:
        raise ConfigError(f"{prefix}model.crop_size={crop}, but {prefix}data.crop_size={cut}: the regressor takes the "
                          f"crops the data module cuts; set {prefix}data.crop_size={crop} instead (model.crop_size "
                          "follows it)")


def check_given_context_estimator(model: DictConfig | Mapping, key: str = "model") -> None:
    """A regressor trained alone (``task=regressor``) on predicted context needs the estimator's checkpoint file."""
    if model.get("context_source") != "predicted" or model.get("context_width") is not None:
        return
    checkpoint = model.get("context_checkpoint")
    if not checkpoint:
        raise ConfigError(f"{key}.context_source=predicted needs {key}.context_checkpoint=<a context-estimator "
                          "checkpoint> (python -m ochmr_lit.fit experiment=synthcrowd_context trains one), or "
                          "task=pipeline to train it first, or model.context_source=gt for the annotations' maps")
    if not Path(str(checkpoint)).is_file():
        raise MissingFileError(f"{key}.context_checkpoint={checkpoint}: no such file; give the checkpoint of a "
                               "context-estimator run (experiment=synthcrowd_context, its checkpoints/*.ckpt)")


def warn_unfinished_ramp(augment: DictConfig | Mapping | None, trainer: DictConfig | Mapping, prefix: str = "") -> None:
    """Log a warning when the training ends before the geometric augmentation's ramp does: the ramp reaches full
    strength in epoch ``geometric_ramp_epochs`` (0-based), so ``trainer.max_epochs`` must be larger than it to train
    an epoch at full strength (allowed, but more likely a ``trainer.max_epochs`` lowered without the ramp)."""
    ramp = (augment or {}).get("geometric_ramp_epochs") or 0
    epochs = trainer.get("max_epochs")
    if isinstance(ramp, int) and isinstance(epochs, int) and 0 < epochs <= ramp:
        log.warning("%sdata.augment.geometric_ramp_epochs=%d is not shorter than %strainer.max_epochs=%d: the last "
                    "epoch trains with %.0f %% of the geometric augmentation (set the ramp to about half the epochs, "
                    "e.g. %sdata.augment.geometric_ramp_epochs=%d)", prefix, ramp, prefix, epochs,
                    100 * (epochs - 1) / ramp, prefix, max(1, epochs // 2))


#: The values of ``select_checkpoint``.
SELECTIONS = ("last", "best")


def select_checkpoint(cfg: DictConfig | Mapping) -> str:
    """``select_checkpoint``: ``last`` (the final step's weights) or ``best`` (the best validation epoch's)."""
    value = cfg.get("select_checkpoint", "last")
    if value not in SELECTIONS:
        raise ConfigError(f"select_checkpoint={value!r}: use last (the final step's weights) or best (the epoch with "
                          "the best validation score)")
    if value == "best" and not (cfg.get("callbacks") or {}).get("model_checkpoint"):
        raise ConfigError("select_checkpoint=best needs callbacks.model_checkpoint (the epoch checkpoint keeps the "
                          "best validation epoch): use callbacks=default, or select_checkpoint=last")
    return str(value)


def check_seed_and_tags(cfg: DictConfig) -> None:
    """The run's ``seed`` (a whole number >= 0) and ``tags`` (a list: a string would become one W&B tag per
    character), as ``fit`` and ``evaluate`` take them."""
    seed = cfg.get("seed")
    if not is_whole(seed, 0):
        raise ConfigError(f"seed={seed!r}: the run's seed, a whole number >= 0 (e.g. seed=1)")
    tags = cfg.get("tags")
    if tags is not None and not OmegaConf.is_list(tags):
        raise ConfigError(f"tags={tags!r}: a list of the run's W&B tags, e.g. tags=[{tags}] or tags=[ablation,crop128]")


def check_run_config(cfg: DictConfig, stages: list[tuple[str, DictConfig]],
                     context_estimator_pending: bool = False) -> None:
    """Check every stage's trainer and model before the first one starts (``stages``: (prefix, stage config)),
    and that a checkpoint file given as ``ckpt_path`` was written by the module the first stage trains (in a
    pipeline, the regressor: the stage a given file continues). ``context_estimator_pending``: the caller trains
    the context estimator before this run (a reproduction table), so ``model.context_checkpoint`` is not read."""
    select_checkpoint(cfg)
    check_seed_and_tags(cfg)
    boolean_setting(cfg.get("test_after_fit", False), "test_after_fit", "test the kept checkpoint after training")
    ckpt = cfg.get("ckpt_path")
    module_class = target_class(cfg.model, "model") if ckpt not in (None, "", "last") else None
    if module_class is not None:
        state = check_checkpoint_kind(str(ckpt), module_class)
        check_checkpoint_architecture(str(ckpt), state["hyper_parameters"],
                                      OmegaConf.to_container(cfg.model, resolve=True))
    for prefix, stage in stages:
        check_trainer(stage.trainer, f"{prefix}trainer")
        target = str(stage.model.get("_target_", ""))
        if stage.get("data") is not None:
            check_augmentation(stage.data.get("augment"), f"{prefix}data.augment")
            check_data(stage.data, f"{prefix}data")
            warn_unfinished_ramp(stage.data.get("augment"), stage.trainer, prefix)
            if target.endswith("ContextEstimatorModule"):
                own = ((cfg.get("context_stage") or {}).get("data") or {}) if prefix else None
                inherited = {} if own is None else {name: f"data.{name}={cfg.data.get(name)}"
                                                    for name in ("crop_size", "map_size") if name not in own}
                check_context_crop(stage.data, f"{prefix}data", inherited)
        check_target_keys(OmegaConf.to_container(stage.model, resolve=False), f"{prefix}model")
        check_components(stage.get("callbacks"), f"{prefix}callbacks")
        check_callback_values(stage.get("callbacks"), f"{prefix}callbacks")
        check_components(stage.get("logger"), f"{prefix}logger")
        model = OmegaConf.to_container(stage.model, resolve=True)
        regressor = target.endswith("MeshRegressorModule")
        if regressor:
            check_regressor_model(stage.model, f"{prefix}model")
            check_regressor_crop(stage.model, stage.get("data"), prefix)
            if cfg.get("task") == "regressor" and not context_estimator_pending:  # a pipeline's trains it first
                check_given_context_estimator(stage.model, f"{prefix}model")
        else:
            _check_optim(model.get("optim"), f"{prefix}model")
        check_num_vis(model, f"{prefix}model")
        check_target_types(model, f"{prefix}model")
        check_pretrained_files(model.get("pretrained"), not regressor,
                               model.get("backbone", "resnet50") if regressor else None, f"{prefix}model.pretrained")
