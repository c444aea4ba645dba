"""A trained mesh regressor back from its checkpoint, self-contained and checked for what it is.

One loader for ``evaluate``, ``predict``, ``vis.compare`` and the reproduction sweeps, so the same file gets the
same one-line answer everywhere it is given.
"""

from __future__ import annotations

import inspect
import logging
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from ochmr_lit.checkpoint_files import CONTEXT_CHECKPOINTS, REGRESSOR_CHECKPOINTS, checkpoint_file
from ochmr_lit.errors import CheckpointError
from ochmr_lit.lit.context_estimator import ContextEstimatorModule
from ochmr_lit.lit.mesh_regressor import MeshRegressorModule

log = logging.getLogger(__name__)

#: Hyper-parameters that set a module's weights (their names and shapes): a checkpoint continues a run only when
#: they agree. ``width`` is the context estimator's HRNet width, the others the mesh regressor's.
ARCHITECTURE_KEYS = ("backbone", "conorm_depths", "hidden_channels", "pooling_grid", "heatmap_keypoints", "width")

#: A key of the context estimator whose first dimension is its HRNet width (the first high-resolution branch).
_CONTEXT_WIDTH_KEY = "context_net.backbone.transition1.0.0.weight"


def _first(keys: list[str], n: int = 3) -> str:
    return ", ".join(keys[:n]) + (", ..." if len(keys) > n else "")


def stored_context_width(state_dict: dict[str, torch.Tensor]) -> int | None:
    """HRNet width of the context estimator a regressor checkpoint's ``state_dict`` holds (None: it holds none)."""
    weight = state_dict.get(_CONTEXT_WIDTH_KEY)
    return None if weight is None else int(weight.shape[0])


def weight_mismatch(expected: dict[str, torch.Tensor], stored: dict[str, torch.Tensor]) -> str:
    """What differs between a module's state dict and a checkpoint's ("" when the keys and shapes agree).

    Returns e.g. ``"2 missing (a, b), 1 of another shape (c: checkpoint (3,) vs model (4,))"``.
    """
    expected_shapes = {k: tuple(v.shape) for k, v in expected.items()}
    stored_shapes = {k: tuple(v.shape) for k, v in stored.items()}
    missing = sorted(set(expected_shapes) - set(stored_shapes))
    unexpected = sorted(set(stored_shapes) - set(expected_shapes))
    reshaped = [f"{k}: checkpoint {stored_shapes[k]} vs model {expected_shapes[k]}"
                for k in sorted(set(stored_shapes) & set(expected_shapes)) if stored_shapes[k] != expected_shapes[k]]
    return ", ".join(f"{len(keys)} {what} ({_first(keys, 2 if what == 'of another shape' else 3)})"
                     for what, keys in (("missing", missing), ("unexpected", unexpected),
                                        ("of another shape", reshaped)) if keys)


def unreadable_reason(path: Path, error: Exception) -> str:
    """Why ``torch.load`` could not read ``path``, in a few words: a zip archive cut short (an interrupted copy), a
    file that is no ``torch.save`` archive at all, else the first sentence of torch's message."""
    with path.open("rb") as file:
        head = file.read(4)
    if head.startswith(b"PK") and not zipfile.is_zipfile(path):
        return (f"the file is cut short or damaged ({path.stat().st_size} bytes, its zip archive has no end): an "
                "interrupted copy or download?")
    if not head.startswith(b"PK"):
        return f"not a torch.save archive: those are zip files, this one starts with {head!r}"
    message = " ".join(str(error).split())
    return message.split(". ")[0] if message else type(error).__name__


def _load_checkpoint(ckpt: str | Path, label: str, missing_fix: str, unreadable_fix: str,
                     not_ours: Callable[[Any], str]) -> dict[str, Any]:
    """A Lightning checkpoint of this framework read with ``weights_only``, or a one-line error: a missing file
    (``ckpt_path=<ckpt>: no such file; <missing_fix>``), an unreadable one (``<label> cannot be read as a
    checkpoint (<reason>); <unreadable_fix>``) or one without a state_dict and hyper-parameters (``not_ours(state)``).
    """
    checkpoint_file(ckpt, missing_fix)
    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
    except Exception as error:  # any failure to read it means: not a usable checkpoint
        reason = unreadable_reason(Path(ckpt), error)
        raise CheckpointError(f"{label} cannot be read as a checkpoint ({reason}); {unreadable_fix}") from None
    if not isinstance(state, dict) or "state_dict" not in state or not state.get("hyper_parameters"):
        raise CheckpointError(not_ours(state))
    return state


def _training_state(ckpt: str | Path, what: str) -> dict[str, Any]:
    """A checkpoint given to ``fit ckpt_path=`` for a ``what`` module, read or refused in one line."""
    return _load_checkpoint(
        ckpt, f"ckpt_path={ckpt}", "give a checkpoints/*.ckpt of a run of this experiment, or ckpt_path=last to "
        "continue the newest one", "give a checkpoints/*.ckpt of a run of this experiment",
        lambda state: f"ckpt_path={ckpt} is not a training checkpoint of this framework (no state_dict with "
                      f"hyper_parameters) and cannot continue a {what}; starting weights of SPIN or torchvision go "
                      "in model.pretrained")


def check_checkpoint_kind(ckpt: str | Path, module_class: type) -> dict[str, Any]:
    """The checkpoint's state when it was written by a ``module_class`` (its hyper-parameters fit the class's
    arguments), else a one-line CheckpointError naming what wrote it. Reads the file once; no module is built."""
    what = module_class.__name__
    state = _training_state(ckpt, what)
    accepted = set(inspect.signature(module_class.__init__).parameters) - {"self"}
    foreign = sorted(set(state["hyper_parameters"]) - accepted)
    if foreign:
        task = (state.get("run_config") or {}).get("task")
        raise CheckpointError(f"ckpt_path={ckpt} was written by another module (task={task}, hyper-parameters "
                              f"{_first(foreign)}) and cannot continue a {what}; in a pipeline run, resume with "
                              "ckpt_path=last, which picks each stage's own checkpoint")
    return state


def check_checkpoint_architecture(ckpt: str | Path, trained: Mapping[str, Any], model: Mapping[str, Any]) -> None:
    """A checkpoint given to ``fit`` (``ckpt_path=<file>``) holds the architecture the config's ``model`` builds,
    compared by hyper-parameters (:data:`ARCHITECTURE_KEYS`; ``trained``: the checkpoint's) before any stage
    starts: in a pipeline the regressor stage that continues it comes after the context stage, so the weights
    themselves are compared (:func:`check_training_checkpoint`) only then."""
    def same(a: Any, b: Any) -> bool:
        return (sorted(a) == sorted(b)) if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) else a == b

    def show(value: Any) -> Any:
        return list(value) if isinstance(value, tuple) else value

    differ = [k for k in ARCHITECTURE_KEYS if k in trained and k in model and not same(trained[k], model[k])]
    if differ:
        held = ", ".join(f"model.{k}={show(trained[k])}" for k in differ)
        built = ", ".join(f"model.{k}={show(model[k])}" for k in differ)
        raise CheckpointError(f"ckpt_path={ckpt} holds another architecture ({held}) than this run builds ({built}): "
                              "continue it with the experiment and overrides it was trained with (its run_config), "
                              "or start without ckpt_path (model.pretrained takes starting weights)")


def check_training_checkpoint(ckpt: str | Path, module: torch.nn.Module) -> dict[str, Any]:
    """The checkpoint's state, or a one-line CheckpointError unless ``ckpt`` can continue training ``module``
    (``fit ckpt_path=<file>``).

    The file must be a checkpoint of this framework written by the same kind of module (a context estimator's
    cannot continue a regressor) with weights of the same architecture (keys and shapes: another backbone,
    other CoNorm depths or another head are named). Starting weights of other codebases (SPIN, torchvision)
    go through ``model.pretrained`` instead.
    """
    state = check_checkpoint_kind(ckpt, type(module))
    found = weight_mismatch(module.state_dict(), state["state_dict"])
    if found:
        hparams = state["hyper_parameters"]
        arch = ", ".join(f"{k}={hparams[k]}" for k in ARCHITECTURE_KEYS if k in hparams)
        raise CheckpointError(f"ckpt_path={ckpt} holds another architecture ({arch}) than the "
                              f"{type(module).__name__} this run builds: {found}; continue it with the overrides it "
                              "was trained with, or start without ckpt_path")
    return state


def _read(ckpt: str | Path, takes: str = REGRESSOR_CHECKPOINTS) -> dict[str, Any]:
    """A checkpoint for evaluation, read or refused in one line; ``takes`` says which files the command takes."""
    def not_ours(state: Any) -> str:
        keys = sorted(map(str, state))[:6] if isinstance(state, dict) else type(state).__name__
        return (f"{ckpt} is not a checkpoint of this framework (top-level {keys}, no state_dict with "
                f"hyper_parameters); {takes} (SPIN or torchvision weight files start a "
                "training run through model.pretrained)")

    return _load_checkpoint(ckpt, str(ckpt), takes, takes, not_ours)


def load_regressor_checkpoint(ckpt: str | Path, overrides: dict[str, Any] | None = None) -> MeshRegressorModule:
    """The :class:`MeshRegressorModule` of a checkpoint, rebuilt from its hyper-parameters (``weights_only``).

    Self-contained: the context estimator of a ``predicted``-context regressor is rebuilt from the weights the
    checkpoint stores (``context_net.*``), and its mean parameters from the stored buffers, so the files it
    was trained with (``context_checkpoint``, ``mean_params``, the ``pretrained`` starting weights) are provenance
    only and may have moved.

    Raises a one-line error naming the checkpoint and the fix when the file is missing, is not a Lightning
    checkpoint, holds another module (e.g. the context estimator), or holds weights that do not fit the
    architecture its hyper-parameters describe (missing, unexpected and differently shaped keys).
    """
    state = _read(ckpt)
    hparams = dict(state["hyper_parameters"])
    accepted = set(inspect.signature(MeshRegressorModule.__init__).parameters) - {"self"}
    foreign = sorted(set(hparams) - accepted)
    if foreign:
        task = (state.get("run_config") or {}).get("task")
        kind = "a context-estimator" if task == "context" or "width" in hparams else "another module's"
        raise CheckpointError(f"{ckpt} is {kind} checkpoint, not a mesh regressor's (hyper-parameters "
                              f"{_first(foreign)}); {REGRESSOR_CHECKPOINTS}, not context/checkpoints/")
    hparams["pretrained"] = None  # provenance only: the trained weights are in the checkpoint
    if hparams.get("mean_params") and not Path(hparams["mean_params"]).is_file():
        hparams["mean_params"] = None  # provenance only: the checkpoint's buffers hold the values
    if hparams.get("context_source") == "predicted":
        width = stored_context_width(state["state_dict"])
        if width is None:
            raise CheckpointError(f"{ckpt}: a predicted-context regressor without its context estimator's weights "
                             "(no context_net.* tensors); it was not written by this framework's training, retrain it")
        hparams["context_width"] = width  # the stored weights are used; context_checkpoint is provenance
    module = MeshRegressorModule(**{**hparams, **(overrides or {})})
    found = weight_mismatch(module.state_dict(), state["state_dict"])
    if found:
        arch = ", ".join(f"{k}={hparams.get(k)}" for k in ("backbone", "conorm_depths", "context_source"))
        raise CheckpointError(
            f"{ckpt}: its weights are not those of the architecture its hyper-parameters name ({arch}): "
            f"{found}; it was written by another model (or version of the code) under these "
            "hyper-parameters: evaluate the checkpoint of the run that trained this architecture, or retrain it")
    module.on_load_checkpoint(state)
    module.load_state_dict(state["state_dict"])
    log.info("loaded %s as trained: %s", ckpt,
             ", ".join(f"{k}={hparams.get(k)}" for k in ("backbone", "conorm_depths", "context_source")))
    return module


def load_context_checkpoint(ckpt: str | Path) -> ContextEstimatorModule:
    """The :class:`ContextEstimatorModule` of a checkpoint, rebuilt from its hyper-parameters (``weights_only``).

    The weights are the checkpoint's ``state_dict`` (the average, for a run with ``callbacks.ema``); the starting
    weights it was trained from (``pretrained``) are provenance only, and it is evaluated eager (no compile).
    Raises a one-line error naming the checkpoint and the fix when the file is missing, unreadable, a regressor's,
    or holds weights that do not fit the HRNet width its hyper-parameters name.
    """
    state = _read(ckpt, CONTEXT_CHECKPOINTS)
    hparams = dict(state["hyper_parameters"])
    accepted = set(inspect.signature(ContextEstimatorModule.__init__).parameters) - {"self"}
    foreign = sorted(set(hparams) - accepted)
    if foreign:
        raise CheckpointError(f"{ckpt} is a mesh regressor's checkpoint, not a context estimator's "
                              f"(hyper-parameters {_first(foreign)}); {CONTEXT_CHECKPOINTS}; evaluate a regressor "
                              "with its own experiment")
    hparams.update(pretrained=None, compile=False)
    module = ContextEstimatorModule(**hparams)
    found = weight_mismatch(module.state_dict(), state["state_dict"])
    if found:
        raise CheckpointError(f"{ckpt}: its weights are not those of HRNet-W{hparams.get('width')}, the width its "
                              f"hyper-parameters name: {found}; evaluate the checkpoint of the run that trained it")
    module.on_load_checkpoint(state)
    module.load_state_dict(state["state_dict"])
    return module
