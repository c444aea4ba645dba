"""The model summary logged when training starts, without FLOPs that were never counted.

Lightning's default summary (its ``ModelSummary`` / ``RichModelSummary`` callback) has a FLOPs column and a
``Total FLOPs`` line. It counts FLOPs only by running ``example_input_array`` through the model, which the
modules here do not set (a forward pass of the full model at start-up is not worth a log line), so it printed
``Total FLOPs: 0`` and a column of zeros, read as a bug. :class:`ParameterSummary` logs the same table and
parameter lines and leaves the FLOPs out when none were counted (a module with ``example_input_array`` keeps
them). The runner gives every training Trainer this callback in place of Lightning's default
(:func:`summary_trainer_arguments`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from lightning.pytorch.callbacks import Callback, ModelSummary
from lightning.pytorch.utilities.model_summary.model_summary import _format_summary_table

#: Lightning's own logger of the model summary: the table shows wherever Lightning's did.
log = logging.getLogger("lightning.pytorch.callbacks.model_summary")

#: The FLOPs column of the layer table and the label of the total's line, as Lightning names them.
FLOPS_COLUMN = "FLOPs"
TOTAL_FLOPS_LABEL = "Total Flops"


def summary_text(summary_data: list[tuple[str, list[str]]], total_parameters: int, trainable_parameters: int,
                 model_size: float, total_training_modes: dict[str, int], total_flops: int) -> str:
    """Lightning's summary table and totals; without the FLOPs column and line when ``total_flops`` is 0."""
    if total_flops:
        return _format_summary_table(total_parameters, trainable_parameters, model_size, total_training_modes,
                                     total_flops, *summary_data)
    columns = [column for column in summary_data if column[0] != FLOPS_COLUMN]
    table = _format_summary_table(total_parameters, trainable_parameters, model_size, total_training_modes, 0,
                                  *columns)
    return "\n".join(line for line in table.splitlines() if not line.rstrip().endswith(TOTAL_FLOPS_LABEL))


class ParameterSummary(ModelSummary):
    """Lightning's model summary callback, logged as text, with the FLOPs left out when none were counted."""

    @staticmethod
    def summarize(summary_data: list[tuple[str, list[str]]], total_parameters: int, trainable_parameters: int,
                  model_size: float, total_training_modes: dict[str, int], total_flops: int,
                  **summarize_kwargs: Any) -> None:
        """Log :func:`summary_text` (called by ``on_fit_start`` on the global-zero process)."""
        log.info("\n" + summary_text(summary_data, total_parameters, trainable_parameters, model_size,
                                     total_training_modes, total_flops))


def summary_enabled(trainer_settings: Mapping[str, Any]) -> bool:
    """Whether a Trainer of these settings shows a model summary (``enable_model_summary`` unset or true, and
    not ``barebones``), as Lightning decides."""
    return trainer_settings.get("enable_model_summary") is not False and not trainer_settings.get("barebones")


def summary_trainer_arguments(callbacks: Sequence[Callback], trainer_settings: Mapping[str, Any]) -> dict[str, Any]:
    """The Trainer's ``callbacks`` argument: ``callbacks`` plus a :class:`ParameterSummary` when a Trainer of
    ``trainer_settings`` shows a summary and none is among them; ``enable_model_summary=False`` then comes with it,
    so that Lightning adds no summary of its own (nor logs that it skips one)."""
    if not summary_enabled(trainer_settings) or any(isinstance(c, ModelSummary) for c in callbacks):
        return {"callbacks": list(callbacks)}
    return {"callbacks": [*callbacks, ParameterSummary()], "enable_model_summary": False}
