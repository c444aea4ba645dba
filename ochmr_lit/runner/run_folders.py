"""Where a run keeps its checkpoints: the newest ``last.ckpt`` of an experiment, the folder ``ckpt_path=last``
continues, the checkpoint a stage starts from."""

from __future__ import annotations

import copy
import logging
from pathlib import Path

from omegaconf import DictConfig, open_dict

from ochmr_lit.errors import MissingFileError

log = logging.getLogger(__name__)


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

def resume_in_place(cfg: DictConfig) -> DictConfig:
    """``ckpt_path=last`` continues the run in the folder it resumes: checkpoints, logs and results in one place."""
    if cfg.get("ckpt_path") != "last" or _has_stage_checkpoint(Path(cfg.run_dir)):
        return cfg
    folder = find_resume_folder(cfg.paths.output_dir, cfg.experiment_name)
    cfg = copy.deepcopy(cfg)
    with open_dict(cfg):
        cfg.run_dir = str(folder)
    log.info("ckpt_path=last: continuing the run in %s", folder)
    return cfg

def resolve_ckpt_path(cfg: DictConfig) -> str | None:
    if cfg.get("ckpt_path") in (None, ""):
        return None
    if cfg.ckpt_path == "last":
        return str(find_last_checkpoint(cfg.paths.output_dir, cfg.experiment_name))
    if not Path(cfg.ckpt_path).is_file():
        raise MissingFileError(f"ckpt_path={cfg.ckpt_path}: no such file")
    return str(cfg.ckpt_path)

def stage_ckpt_path(cfg: DictConfig) -> str | None:
    """The checkpoint a training stage starts from: with ``last``, its own folder's (None: the stage starts)."""
    if cfg.get("ckpt_path") == "last":
        last = Path(cfg.run_dir) / "checkpoints" / "last.ckpt"
        return str(last) if last.is_file() else None
    return resolve_ckpt_path(cfg)
