"""Testing a regressor with the Trainer and writing its results files (after fit and in ``evaluate``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import DictConfig

from ochmr_lit.eval.results_files import print_table, write_results


def finish_loggers(trainer: L.Trainer) -> None:
    for logger in trainer.loggers:
        if type(logger).__name__ == "WandbLogger" and trainer.is_global_zero:
            logger.experiment.finish()

def run_test(module, datamodule, trainer: L.Trainer, cfg: DictConfig, folder: Path | None = None,
             selected: dict[str, Any] | None = None) -> dict[str, Any]:
    """Test the module; write its results (and the reference predictions') to ``folder`` (default ``results/``).

    ``selected`` (the best epoch ``fit`` kept: ``{path, monitor, mode, score}``): test the weights of its
    checkpoint instead, and record it in the results' ``run_config`` as ``selected_checkpoint``.
    Returns ``metrics`` (the model's), ``references`` (reference name -> metrics) and ``protocol``.
    """
    trainer.test(module, datamodule=datamodule, verbose=False, ckpt_path=selected["path"] if selected else None)
    if selected:  # loading the checkpoint restored the run config stored in it
        module.run_config = {**(module.run_config or {}), "selected_checkpoint": selected}
    flip_test = bool(module.hparams.get("flip_test", False))
    results = {"metrics": module.test_results, "references": module.test_references,
               "protocol": {**module.evaluation_protocol().to_dict(), "flip_test": flip_test}}
    if trainer.is_global_zero:
        write_results(folder or Path(cfg.run_dir) / "results", module.test_results, module.test_per_sample,
                      results["protocol"], run_config=module.run_config, per_joint=module.test_per_joint,
                      references=module.test_references)
        mode = ("" if module.context_mode == "true" else f", context {module.context_mode}") + \
            (", flip test" if flip_test else "")
        print_table(module.test_results, references=module.test_references,
                    title=f"{cfg.experiment_name}: {results['protocol']['name']} "
                          f"({getattr(datamodule, 'test_split', 'test')} split{mode})")
    return results
