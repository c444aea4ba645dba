"""The frozen context estimator a mesh regressor reads its centermaps from (``context_source=predicted``)."""

from __future__ import annotations

from pathlib import Path

import torch

from ochmr_lit.errors import CheckpointError, ConfigError, MissingFileError
from ochmr_lit.models import ContextEstimator


def freeze(net: ContextEstimator) -> ContextEstimator:
    """``net`` in eval mode with every parameter frozen (returned for chaining)."""
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def _read_checkpoint(checkpoint: str) -> dict:
    """The dictionary a context-estimator run saved (``weights_only=True``)."""
    if not Path(checkpoint).is_file():
        raise MissingFileError(f"model.context_checkpoint={checkpoint}: no such file; give the checkpoint of a "
                               "context-estimator run (experiment=synthcrowd_context, its checkpoints/last.ckpt)")
    return torch.load(checkpoint, map_location="cpu", weights_only=True)


def _frozen_estimator(state: dict, checkpoint: str, width: int) -> ContextEstimator:
    if "state_dict" not in state:
        raise CheckpointError(f"{checkpoint}: not a Lightning checkpoint of the context estimator (no 'state_dict'); "
                              "set model.context_checkpoint to a file written by a context-estimator run")
    weights = {k[len("model."):]: v for k, v in state["state_dict"].items() if k.startswith("model.")}
    width = int(state.get("hyper_parameters", {}).get("width", width))
    net = ContextEstimator(width=width)
    missing, unexpected = net.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{checkpoint}: context estimator weights do not match HRNet-W{width} "
                              f"(missing {missing[:5]}, unexpected {unexpected[:5]}); is it a context-estimator "
                              "checkpoint?")
    return freeze(net)


def _training_crop(state: dict) -> int | None:
    crop = ((state.get("run_config") or {}).get("data") or {}).get("crop_size") if isinstance(state, dict) else None
    return int(crop) if crop is not None else None


def _input_size(configured: int | None, trained: int | None, checkpoint: str) -> int:
    if configured is None:
        if trained is None:
            raise ConfigError(f"model.context_input_size=null reads the crop side the context estimator was trained on "
                              f"from its checkpoint, but {checkpoint} does not record it: set "
                              "model.context_input_size=<that side in px>")
        return trained
    if trained is not None and int(configured) != trained:
        raise ConfigError(f"model.context_input_size={configured}, but the context estimator {checkpoint} was trained "
                          f"on {trained} px crops: set model.context_input_size={trained} (or null, which reads it "
                          "from the checkpoint)")
    return int(configured)


def load_frozen_context_estimator(checkpoint: str, width: int = 32) -> ContextEstimator:
    """A ContextEstimator in eval mode with frozen weights, from a ContextEstimatorModule checkpoint.

    The checkpoint is read with ``weights_only=True``; its ``state_dict`` must hold ``model.*`` keys.
    """
    return _frozen_estimator(_read_checkpoint(checkpoint), checkpoint, width)


def load_frozen_context(checkpoint: str, configured_input_size: int | None,
                        width: int = 32) -> tuple[ContextEstimator, int]:
    """The frozen estimator and the crop side (px) to run it at, from one read of its checkpoint.

    The side is the crop side the estimator was trained on (``data.crop_size`` of the run config stored in the
    checkpoint), checked against ``configured_input_size`` (``model.context_input_size``) when that is set: a fully
    convolutional estimator runs at any size, but at another scale it marks the wrong centres. ``None`` with a
    checkpoint that does not record its crop (written by other code) is an error naming the key to set.

    Raises:
        MissingFileError / CheckpointError naming the file; ConfigError naming ``model.context_input_size`` and the
        value to set.
    """
    state = _read_checkpoint(checkpoint)
    return (_frozen_estimator(state, checkpoint, width),
            _input_size(configured_input_size, _training_crop(state), checkpoint))
