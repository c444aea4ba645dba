"""What the entry points do with a composed config: build, train, evaluate, write results.

``fit.py`` and ``evaluate.py`` only compose the config and call :func:`run_fit` / :func:`run_evaluate`.

- ``build``: module, data module and Trainer of a config;
- ``run_folders``: checkpoints and run folders (``ckpt_path=last``);
- ``predicted_centres``: the cached context-estimator centres a regressor on predicted context reads;
- ``testing``: test a regressor and write its results files;
- ``training``: ``fit`` (one stage or the context-then-regressor pipeline);
- ``evaluation``: ``evaluate`` (a regressor with its context diagnostics, or a context estimator).
"""

from ochmr_lit.runner.build import build, wandb_run_id
from ochmr_lit.runner.evaluation import check_same_architecture, context_modes, evaluation_split, run_evaluate
from ochmr_lit.runner.predicted_centres import cache_predicted_centres
from ochmr_lit.runner.run_folders import STAGE_FINISHED, find_last_checkpoint, find_resume_folder
from ochmr_lit.runner.training import PREEMPTED_EXIT_CODE, check_fit_config, run_fit

__all__ = ["PREEMPTED_EXIT_CODE", "STAGE_FINISHED", "build", "cache_predicted_centres", "check_fit_config",
           "check_same_architecture", "context_modes", "evaluation_split", "find_last_checkpoint",
           "find_resume_folder", "run_evaluate", "run_fit", "wandb_run_id"]
