"""Importing official weights (SPIN, torchvision ImageNet ResNets, HRNet COCO) with a report of every key.

Every import reads the file with ``torch.load(..., weights_only=True)``, strips DataParallel's ``module.``
prefix, matches keys and shapes against the target module and returns a :class:`LoadReport`. Keys fall into
exactly one of: loaded; *new* (parts of the target the file format cannot hold, e.g. CoNorm blocks when
loading SPIN, left at their initialisation); *not used* (parts of the file the target has no place for by
design, e.g. HRNet's 17-joint ``final_layer``); and the three faults -- *missing* (the target expected it
from this file), *unexpected* (the file has it, the target does not) and *shape-mismatched*. Non-strict
imports load the matching keys and report the rest; strict imports raise on any fault and load nothing.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ochmr_lit.errors import MissingFileError
from ochmr_lit.models.context import ContextEstimator
from ochmr_lit.models.hmr import MeshRegressor
from ochmr_lit.models.hrnet import HRNet

log = logging.getLogger(__name__)

IEF_HEAD_KEYS = ("fc1.", "fc2.", "decpose.", "decshape.", "deccam.", "init_pose", "init_shape", "init_cam")
# BatchNorm's batch counter only matters with momentum=None; files saved by old PyTorch lack it.
COUNTER_SUFFIX = "num_batches_tracked"
_SHOWN = 8


@dataclass
class LoadReport:
    """What a weight import did, key by key.

    Attributes:
        source: the file read.
        target: the class of the module written into.
        loaded: model keys set from the file.
        missing: model keys the file should have held but did not (fault).
        unexpected: file keys with no counterpart in the model (fault).
        shape_mismatched: (key, shape in file, shape in model) for keys present in both (fault).
        new: model keys this file format cannot hold, left at their initialisation.
        not_used: file keys deliberately not used by this target.
    """

    source: str
    target: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    shape_mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    not_used: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is missing, unexpected or shape-mismatched."""
        return not (self.missing or self.unexpected or self.shape_mismatched)

    def faults(self) -> str:
        """Every missing, unexpected and shape-mismatched key, one per line."""
        lines = [f"  missing from file: {k}" for k in self.missing]
        lines += [f"  unexpected in file: {k}" for k in self.unexpected]
        lines += [
            f"  shape mismatch: {k} file {list(a)} vs model {list(b)}" for k, a, b in self.shape_mismatched
        ]
        return "\n".join(lines)

    def fault_summary(self) -> str:
        """One line: how many keys are missing, unexpected or of another shape, with the first few of each."""

        def first(keys: Sequence[str]) -> str:
            return ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")

        mismatched = [f"{k} file {list(a)} vs model {list(b)}" for k, a, b in self.shape_mismatched]
        parts = [f"{len(keys)} {what} ({first(keys)})" for what, keys in
                 (("missing", self.missing), ("unexpected", self.unexpected), ("of another shape", mismatched)) if keys]
        return ", ".join(parts) if parts else "no faults"

    def __str__(self) -> str:
        def show(keys: Sequence[str]) -> str:
            if not keys:
                return ""
            more = f", ... (+{len(keys) - _SHOWN})" if len(keys) > _SHOWN else ""
            return " [" + ", ".join(keys[:_SHOWN]) + more + "]"

        mismatched = [f"{k} {list(a)}->{list(b)}" for k, a, b in self.shape_mismatched]
        return (
            f"{self.source} -> {self.target}: {len(self.loaded)} loaded; "
            f"{len(self.new)} new{show(self.new)}; {len(self.not_used)} not used{show(self.not_used)}; "
            f"{len(self.missing)} missing{show(self.missing)}; "
            f"{len(self.unexpected)} unexpected{show(self.unexpected)}; "
            f"{len(mismatched)} shape-mismatched{show(mismatched)}"
        )


class StrictImportError(ValueError):
    """A strict import found faults and loaded nothing; ``report`` says which keys."""

    def __init__(self, message: str, report: LoadReport) -> None:
        super().__init__(message)
        self.report = report


def read_checkpoint(path: str | Path) -> object:
    """``torch.load(path, map_location="cpu", weights_only=True)`` with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"weight file {path} not found; check the path in the config")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
        raise ValueError(
            f"{path} could not be read with torch.load(weights_only=True): {err}. Only tensors and plain "
            "containers are accepted; re-save the state dict with torch.save(model.state_dict(), path)"
        ) from err


def _state_dict_from(obj: object, path: str | Path, key: str | None, what: str) -> dict[str, torch.Tensor]:
    """The tensor mapping inside a loaded checkpoint, at ``obj[key]`` (or ``obj`` itself if key is None)."""
    if key is not None:
        if not isinstance(obj, Mapping) or key not in obj:
            found = sorted(map(str, obj))[:10] if isinstance(obj, Mapping) else type(obj).__name__
            raise ValueError(f"{path}: expected {what} with the weights under '{key}'; found {found}")
        obj = obj[key]
    if not isinstance(obj, Mapping) or not obj:
        raise ValueError(f"{path}: expected {what}, a non-empty mapping of tensor names to tensors")
    bad = [str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(f"{path}: expected {what}; these entries are not tensors: {bad[:10]}")
    return {str(k): v for k, v in obj.items()}


def strip_module_prefix(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove DataParallel / DistributedDataParallel's leading ``module.`` from every key that has it."""
    return {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in state_dict.items()}


def load_weights(
    module: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    *,
    source: str,
    prefix: str = "",
    new: Sequence[str] = (),
    not_used: Sequence[str] = (),
    strict: bool = False,
) -> LoadReport:
    """Load ``state_dict`` into ``module`` key by key and report on every key.

    Args:
        module: the target.
        state_dict: file keys to tensors (``module.`` prefixes are stripped here).
        source: the file name, for the report and errors.
        prefix: prepended to each file key to get the model key (e.g. ``"backbone."``).
        new: model-key prefixes the file format cannot hold (reported as new, never as missing).
        not_used: file-key prefixes deliberately ignored (reported as not used, never as unexpected).
        strict: raise ``ValueError`` naming the file and the offending keys if anything is missing,
            unexpected or shape-mismatched; then nothing is loaded.

    Returns:
        The :class:`LoadReport`.
    """
    report = LoadReport(source=source, target=type(module).__name__)
    own = module.state_dict()
    provided: set[str] = set()
    to_load: dict[str, torch.Tensor] = {}
    for key, value in strip_module_prefix(state_dict).items():
        if key.startswith(tuple(not_used)):
            report.not_used.append(key)
            continue
        model_key = prefix + key
        if model_key not in own:
            report.unexpected.append(key)
            continue
        provided.add(model_key)
        if tuple(value.shape) != tuple(own[model_key].shape):
            report.shape_mismatched.append((model_key, tuple(value.shape), tuple(own[model_key].shape)))
            continue
        to_load[model_key] = value
        report.loaded.append(model_key)
    for model_key in own:
        if model_key in provided:
            continue
        if model_key.startswith(tuple(new)) or model_key.endswith(COUNTER_SUFFIX):
            report.new.append(model_key)
        else:
            report.missing.append(model_key)
    if strict and not report.ok:
        raise StrictImportError(
            f"strict import of {source} into {report.target} failed, nothing was loaded: {report.fault_summary()}; "
            "use the file made for this model configuration (backbone, width) or import with strict=False to load "
            "the matching keys",
            report,
        )
    result = module.load_state_dict(to_load, strict=False)
    if result.unexpected_keys:  # cannot happen: every key in to_load was checked against the model
        raise RuntimeError(f"{source}: internal key mismatch {result.unexpected_keys}")
    log.info("%s", report)
    return report


def load_spin_checkpoint(model: MeshRegressor, path: str | Path, strict: bool = False) -> LoadReport:
    """Import SPIN's ``model_checkpoint.pt`` (a dict with the HMR state dict under ``model``).

    SPIN's keys (conv1, bn1, layer1..4, fc1, fc2, decpose, decshape, deccam, init_pose/shape/cam) map
    one-to-one onto :class:`MeshRegressor`; its CoNorm blocks are reported as new. SPIN's model is a
    ResNet-50: other backbones are reported as shape-mismatched.
    """
    state = _state_dict_from(read_checkpoint(path), path, "model", "SPIN's checkpoint format")
    return load_weights(model, state, source=str(path), new=("conorm.",), strict=strict)


def load_torchvision_resnet(model: MeshRegressor, path: str | Path, strict: bool = False) -> LoadReport:
    """Import a torchvision ImageNet ResNet state dict (e.g. ``resnet50-0676ba61.pth``) into the backbone.

    The classifier ``fc`` is reported as not used; the IEF head, the mean-parameter buffers and the
    CoNorm blocks are reported as new. The file's depth must match ``model.backbone_name``.
    """
    state = _state_dict_from(read_checkpoint(path), path, None, "a torchvision ResNet state dict")
    return load_weights(
        model, state, source=str(path), new=("conorm.", *IEF_HEAD_KEYS), not_used=("fc.",), strict=strict
    )


def load_hrnet_coco(model: ContextEstimator | HRNet, path: str | Path, strict: bool = False) -> LoadReport:
    """Import the official HRNet COCO pose checkpoint (e.g. ``pose_hrnet_w32_256x192.pth``).

    The file is a plain state dict (as released), or a training checkpoint with it under ``state_dict``.
    Into a :class:`ContextEstimator` the weights go to ``backbone``; the 17-joint ``final_layer`` is
    reported as not used and the centermap ``head`` as new. Into an :class:`HRNet` with a final layer,
    every key loads.
    """
    obj = read_checkpoint(path)
    key = "state_dict" if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping) else None
    state = _state_dict_from(obj, path, key, "an HRNet state dict")
    if isinstance(model, ContextEstimator):
        return load_weights(
            model,
            state,
            source=str(path),
            prefix="backbone.",
            new=("head.",),
            not_used=("final_layer.",),
            strict=strict,
        )
    not_used = ("final_layer.",) if model.final_layer is None else ()
    return load_weights(model, state, source=str(path), not_used=not_used, strict=strict)
