"""What the entry points do with a composed config: build, train, evaluate, write results.

``fit.py`` and ``evaluate.py`` only compose the config and call :func:`run_fit` / :func:`run_evaluate`.

- ``build``: module, data module and Trainer of a config;
- ``run_folders``: checkpoints and run folders (``ckpt_path=last``);
- ``predicted_centres``: the cached context-estimator centres a regressor on predicted context reads;
- ``testing``: test a regressor and write its results files;
- ``training``: ``fit`` (one stage or the context-then-regressor pipeline);
- ``evaluation``: ``evaluate`` (a regressor with its context diagnostics, or a context estimator).
"""

from __future__ import annotations

import importlib
from typing import Any

#: Where each public name lives. They are imported on first use, so that an entry point's command-line check
#: (``runner.command_line``, a submodule of this package) reports a mistaken argument without first importing
#: Lightning and the models (several seconds).
_PUBLIC = {
    "build": "build", "wandb_run_id": "build",
    "check_same_architecture": "evaluation", "context_modes": "evaluation", "evaluation_split": "evaluation",
    "run_evaluate": "evaluation",
    "cache_predicted_centres": "predicted_centres",
    "STAGE_FINISHED": "run_folders", "find_last_checkpoint": "run_folders", "find_resume_folder": "run_folders",
    "PREEMPTED_EXIT_CODE": "training", "check_fit_config": "training", "run_fit": "training",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_PUBLIC[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})
