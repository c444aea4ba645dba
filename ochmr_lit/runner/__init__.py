"""What the entry points do with a composed config: build, train, evaluate, write results.

``fit.py`` and ``evaluate.py`` only compose the config and call :func:`run_fit` / :func:`run_evaluate`.

- ``builder``: module, data module and Trainer of a config (``build``);
- ``run_folders``: checkpoints and run folders (``ckpt_path=last``);
- ``predicted_centres``: the cached context-estimator centres a regressor on predicted context reads;
- ``testing``: test a regressor and write its results files;
- ``training``: ``fit`` (one stage or the context-then-regressor pipeline);
- ``evaluation``: ``evaluate`` (a regressor with its context diagnostics, or a context estimator).
"""

from ochmr_lit.lazy_exports import lazy_exports

#: Where each public name lives, imported on first use, so that an entry point's command-line check
#: (``runner.command_line``, a submodule of this package) reports a mistaken argument without first importing
#: Lightning and the models.
_PUBLIC = {
    "build": "builder", "wandb_run_id": "builder",
    "check_same_architecture": "evaluation", "context_modes": "evaluation", "evaluation_split": "evaluation",
    "run_evaluate": "evaluation",
    "cache_predicted_centres": "predicted_centres",
    "STAGE_FINISHED": "run_folders", "find_last_checkpoint": "run_folders", "find_resume_folder": "run_folders",
    "PREEMPTED_EXIT_CODE": "training", "check_fit_config": "training", "run_fit": "training",
}
__all__ = sorted(_PUBLIC)
__getattr__, __dir__ = lazy_exports(__name__, _PUBLIC, globals())
