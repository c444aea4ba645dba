"""Which checkpoint files the commands take, and the one-line error for one that is not there.

Without torch, so that an entry point can check a ``ckpt_path`` before it imports the model code; the loaders of
:mod:`ochmr_lit.lit.checkpoints` ask the same question with the same words.
"""

from __future__ import annotations

from pathlib import Path

from ochmr_lit.errors import MissingFileError

#: What ``evaluate``, ``predict`` and ``vis.compare`` take.
REGRESSOR_CHECKPOINTS = ("evaluate, predict and compare take the checkpoints/*.ckpt of task=regressor or "
                         "task=pipeline runs")
#: What ``evaluate`` with a context experiment takes.
CONTEXT_CHECKPOINTS = ("evaluate with a context experiment (experiment=synthcrowd_context) takes the "
                       "checkpoints/*.ckpt of task=context runs or the context/checkpoints/*.ckpt of task=pipeline "
                       "runs")
#: What ``evaluate`` says when no ``ckpt_path`` is given.
EVALUATE_NEEDS_CHECKPOINT = "evaluate needs ckpt_path=<checkpoint file> (or ckpt_path=last)"


def checkpoint_file(ckpt: str | Path, missing_fix: str) -> Path:
    """``ckpt`` as a Path; ``ckpt_path=<ckpt>: no such file; <missing_fix>`` (:class:`MissingFileError`) when no such
    file is there."""
    path = Path(ckpt)
    if not path.is_file():
        raise MissingFileError(f"ckpt_path={ckpt}: no such file; {missing_fix}")
    return path
