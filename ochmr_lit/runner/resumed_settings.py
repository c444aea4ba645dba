"""A resumed training run continues exactly as it started: its seed and data settings must be the checkpoint's.

``ckpt_path=last`` finds the newest run of an experiment and continues it; a command that leaves out an override the
run was started with (``data.splits.train=8000``) or adds one (``data.batch_size=16``) would otherwise train the rest
of the run on other data, in another order, without a word: the sampler skips the batches already trained by their
count, and every sample's augmentation is drawn from ``(seed, epoch, index)``. Settings that only change how the
samples are loaded, and the folders of files (which may have moved), can change; so can anything outside ``data`` and
``seed`` (``trainer.max_epochs`` extends a run; the model's shapes are checked when its weights load).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ochmr_lit.errors import ConfigError

#: Data settings a resume may change: how samples are loaded and evaluated, and where files lie (a run folder or
#: dataset moved to another machine: the data, the body-model files, the cache of the run's own predicted centres).
LOADING_ONLY = frozenset({"num_workers", "pin_memory", "persistent_workers", "prefetch_factor", "generation_workers",
                          "eval_batch_size", "root", "index_dir", "body_model_dir", "predicted_centres"})


def _flat(values: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Nested settings as ``{"data.augment.scale": 0.25, ...}``."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def changed_settings(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(key, the checkpoint's value, the command's value)`` of each seed or data setting that differs
    (:data:`LOADING_ONLY` aside). Keys only one side has are not compared: a setting the framework added or dropped
    since the run started says nothing about the command."""
    def relevant(config: Mapping[str, Any]) -> dict[str, Any]:
        data = {k: v for k, v in (config.get("data") or {}).items() if k not in LOADING_ONLY}
        return {"seed": config.get("seed"), **_flat(data, "data.")}

    before, now = relevant(stored), relevant(current)
    return [(key, before[key], now[key]) for key in sorted(set(before) & set(now)) if before[key] != now[key]]


def check_resumed_settings(ckpt_path: str, stored: Mapping[str, Any] | None, current: Mapping[str, Any],
                           key: str = "ckpt_path") -> None:
    """A :class:`ConfigError` listing what differs (:func:`changed_settings`) between the run configuration stored in
    the checkpoint a training stage resumes (``stored``: its ``run_config``, read once by the stage; None for a
    checkpoint written before checkpoints kept it) and the command's (``current``, resolved)."""
    if not stored:
        return
    changed = changed_settings(stored, current)
    if not changed:
        return
    shown = "; ".join(f"{name}={before!r} then, {now!r} now" for name, before, now in changed[:4])
    more = f" and {len(changed) - 4} more" if len(changed) > 4 else ""
    raise ConfigError(f"{key}={ckpt_path} resumes a run started with other settings: {shown}{more}. A resume "
                      "continues the run exactly as it started: give the run's own settings again (a fit run's "
                      ".hydra/overrides.yaml lists those given), or start a new run from its weights with "
                      f"model.pretrained=[{{source:ochmr,path:{ckpt_path}}}]")
