"""Starting weights named in a config: ``model.pretrained``, a list of sources applied in order.

Each entry is a mapping ``{source, path, strict, download}``:

- ``source``: ``torchvision`` (an ImageNet ResNet state dict), ``spin`` (SPIN's ``model_checkpoint.pt``),
  ``hrnet_coco`` (the official ``pose_hrnet_w32_256x192.pth``) or ``ochmr`` (a checkpoint of this framework);
- ``path``: the local file. For ``torchvision`` it may be left out: the file is then looked up in torch's hub
  cache under torchvision's official name (``resnet50-0676ba61.pth``), where torchvision itself keeps it;
- ``strict`` (default true): any missing, unexpected or differently shaped key stops the run with one line and
  loads nothing; false loads the matching keys and reports the rest;
- ``download`` (default false): for ``torchvision`` only, fetch the file through torchvision's weight enum when it
  is not in the hub cache. Nothing is downloaded unless asked for.

Keys that a format cannot hold (the IEF head and CoNorm blocks in an ImageNet ResNet, the centermap head in HRNet's
COCO model) are reported as new, never as missing, so a strict import of the right file always succeeds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import torch
from torch import nn

from ochmr_lit.errors import MissingFileError, WeightsError
from ochmr_lit.models.context import ContextEstimator
from ochmr_lit.models.hmr import MeshRegressor
from ochmr_lit.models.weights import (
    LoadReport,
    StrictImportError,
    load_hrnet_coco,
    load_spin_checkpoint,
    load_torchvision_resnet,
    load_weights,
    read_checkpoint,
)

log = logging.getLogger(__name__)

#: torchvision's ImageNet-1k (V1) ResNet files, by backbone, as its weight enums name them.
TORCHVISION_FILES = {"resnet18": "resnet18-f37072fd.pth", "resnet34": "resnet34-b627a593.pth",
                     "resnet50": "resnet50-0676ba61.pth", "resnet101": "resnet101-63fe2227.pth"}
_TORCHVISION_ENUMS = {"resnet18": "ResNet18_Weights", "resnet34": "ResNet34_Weights",
                      "resnet50": "ResNet50_Weights", "resnet101": "ResNet101_Weights"}


@dataclass(frozen=True)
class WeightSource:
    """One entry of ``model.pretrained`` (see the module docstring)."""

    source: str
    path: str | None = None
    strict: bool = True
    download: bool = False


def parse_sources(value: object, accepted: Sequence[str], key: str = "model.pretrained") -> list[WeightSource]:
    """``model.pretrained`` as a list of :class:`WeightSource`, checked against the sources a module accepts.

    Accepts None (no weights), a list of mappings, or the short form ``{source: path}`` (one entry per key).
    """
    if value is None:
        return []
    if isinstance(value, Mapping) and "source" not in value:
        value = [{"source": name, "path": path} for name, path in value.items() if path]
    if isinstance(value, Mapping):
        value = [value]
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise WeightsError(f"{key}={value!r}: give a list of {{source, path}} entries, e.g. "
                         f"[{{source: {accepted[0]}, path: /weights/file.pth}}]")
    names = {f.name for f in fields(WeightSource)}
    sources = []
    for i, entry in enumerate(value):
        if not isinstance(entry, Mapping):
            raise WeightsError(f"{key}[{i}]={entry!r}: each entry is a mapping {{source, path, strict, download}}")
        unknown = sorted(set(map(str, entry)) - names)
        if unknown:
            raise WeightsError(f"{key}[{i}].{unknown[0]}: not a setting of a weight source; use {sorted(names)}")
        source = WeightSource(**entry)
        if source.source not in accepted:
            raise WeightsError(f"{key}[{i}].source={source.source!r}: this model takes one of {list(accepted)}")
        if source.download and source.source != "torchvision":
            raise WeightsError(f"{key}[{i}].download: only torchvision's ImageNet weights can be downloaded; "
                             f"give the local path of the {source.source} file")
        sources.append(source)
    return sources


def _torchvision_file(backbone: str, download: bool, key: str) -> Path:
    """torchvision's ImageNet file for ``backbone`` in torch's hub cache, fetched only when ``download``."""
    name = TORCHVISION_FILES[backbone]
    cached = Path(torch.hub.get_dir()) / "checkpoints" / name
    if cached.is_file():
        return cached
    if not download:
        raise MissingFileError(
            f"{key}: ImageNet weights for {backbone} not found at {cached}; put {name} "
            f"(https://download.pytorch.org/models/{name}) there, give {key}.path, or set {key}.download=true")
    import torchvision  # deferred: only a requested download needs the weight enums

    weights = getattr(torchvision.models, _TORCHVISION_ENUMS[backbone]).IMAGENET1K_V1
    log.info("downloading %s (%s.download=true)", weights.url, key)
    weights.get_state_dict(progress=True)  # writes the file into the hub cache
    return cached


def resolve_path(source: WeightSource, backbone: str | None, key: str) -> Path:
    """The local file of a weight source, or a one-line error saying where to put it."""
    if source.path:
        path = Path(source.path).expanduser()
        if not path.is_file():
            raise MissingFileError(f"{key}.path={path}: no such file; put the {source.source} weights there or "
                                    f"correct {key}.path")
        return path
    if source.source == "torchvision" and backbone in TORCHVISION_FILES:
        return _torchvision_file(backbone, source.download, key)
    raise WeightsError(f"{key} ({source.source}) needs a path: {key}.path=<the local weight file>")


def _ochmr_weights(module: nn.Module, path: Path, strict: bool) -> LoadReport:
    """The ``model.*`` weights of a checkpoint of this framework into the plain network (regressor or context)."""
    state = read_checkpoint(path)
    if not isinstance(state, Mapping) or not isinstance(state.get("state_dict"), Mapping):
        raise WeightsError(f"{path}: not a checkpoint of this framework (no state_dict); the ochmr source takes the "
                         "checkpoints/*.ckpt of a run")
    weights = {k[len("model."):]: v for k, v in state["state_dict"].items() if k.startswith("model.")}
    return load_weights(module, weights, source=str(path), strict=strict)


Loader = Callable[[nn.Module, Path, bool], LoadReport]

#: What each kind of network can start from.
REGRESSOR_SOURCES: dict[str, Loader] = {
    "torchvision": lambda m, p, s: load_torchvision_resnet(m, p, strict=s),
    "spin": lambda m, p, s: load_spin_checkpoint(m, p, strict=s),
    "ochmr": _ochmr_weights,
}
CONTEXT_SOURCES: dict[str, Loader] = {
    "hrnet_coco": lambda m, p, s: load_hrnet_coco(m, p, strict=s),
    "ochmr": _ochmr_weights,
}


def apply_pretrained(model: MeshRegressor | ContextEstimator, value: object,
                     key: str = "model.pretrained") -> list[LoadReport]:
    """Load every source of ``model.pretrained`` into ``model`` in order; the reports, one per source.

    Raises a one-line error naming the file when a strict source does not fit (nothing of it is loaded), when a
    file is missing, or when an entry is malformed.
    """
    loaders = REGRESSOR_SOURCES if isinstance(model, MeshRegressor) else CONTEXT_SOURCES
    backbone = getattr(model, "backbone_name", None)
    reports = []
    for i, source in enumerate(parse_sources(value, list(loaders), key)):
        entry = f"{key}[{i}]"
        path = resolve_path(source, backbone, entry)
        try:
            report = loaders[source.source](model, path, source.strict)
        except StrictImportError as error:
            target = error.report.target + ("" if backbone is None else f" ({backbone})")
            raise WeightsError(
                f"{entry} ({source.source}): {path} does not fit this {target}: {error.report.fault_summary()}; "
                f"nothing was loaded. Use the file made for this model, or set {entry}.strict=false to load the "
                "matching keys") from None
        if not report.ok:
            log.warning("%s (%s, strict=false): %s", entry, source.source, report.fault_summary())
        reports.append(report)
    return reports


def check_pretrained_files(value: object, context_estimator: bool, backbone: str | None,
                           key: str = "model.pretrained") -> None:
    """Every entry of ``model.pretrained`` is well formed and its file is on this machine (a torchvision entry with
    ``download: true`` aside), checked before any stage trains: a pipeline builds its regressor only after the
    context stage, so a missing file would otherwise stop the run after that stage. Nothing is read or fetched.
    ``context_estimator``: the entries are the context estimator's (HRNet) rather than the regressor's."""
    loaders = CONTEXT_SOURCES if context_estimator else REGRESSOR_SOURCES
    for i, source in enumerate(parse_sources(value, list(loaders), key)):
        if not (source.source == "torchvision" and source.download and not source.path):
            resolve_path(source, backbone, f"{key}[{i}]")
