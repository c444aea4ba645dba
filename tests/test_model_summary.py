"""The model summary at the start of training shows no ``Total FLOPs: 0`` (FLOPs nobody counted), keeps the
parameter lines, and replaces Lightning's default summary exactly once."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelSummary, RichModelSummary
from lightning.pytorch.utilities.model_summary import summarize
from omegaconf import OmegaConf
from torch import nn

from ochmr_lit.lit.summary import ParameterSummary, summary_text, summary_trainer_arguments


class TinyModule(L.LightningModule):
    """Two layers, one of them frozen; ``example_input_array`` only when ``with_example``."""

    def __init__(self, with_example: bool = False) -> None:
        super().__init__()
        self.encoder = nn.Linear(8, 4)
        self.head = nn.Linear(4, 2)
        self.head.requires_grad_(False)
        if with_example:
            self.example_input_array = torch.zeros(3, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


def text_of(module: L.LightningModule) -> str:
    """The summary text :class:`ParameterSummary` logs for ``module``."""
    summary = summarize(module, max_depth=1)
    return summary_text(summary._get_summary_data(), summary.total_parameters, summary.trainable_parameters,
                        summary.model_size, summary.total_training_modes, summary.total_flops)


def test_no_flops_line_or_column_when_none_were_counted() -> None:
    text = text_of(TinyModule())
    assert "Total Flops" not in text and "FLOPs" not in text and "Total FLOPs: 0" not in text
    assert "encoder" in text and "head" in text
    lines = {line.split(None, 1)[1]: line.split(None, 1)[0] for line in text.splitlines()[-6:]}
    assert lines["Trainable params"] == "36" and lines["Non-trainable params"] == "10"
    assert lines["Total params"] == "46"
    assert "Total estimated model params size (MB)" in lines


def test_counted_flops_stay() -> None:
    text = text_of(TinyModule(with_example=True))
    total = next(line for line in text.splitlines() if line.rstrip().endswith("Total Flops"))
    assert total.split()[0] == str(2 * 3 * (8 * 4 + 4 * 2))  # multiply-adds of both layers on 3 rows
    assert "FLOPs" in text.splitlines()[0] and "Total params" in text


@contextmanager
def records_of(name: str) -> Iterator[list[logging.LogRecord]]:
    """The records logged to logger ``name`` (Lightning's loggers do not propagate to the root's, caplog's)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def test_the_callback_logs_the_text() -> None:
    with records_of("lightning.pytorch.callbacks.model_summary") as records:
        summary = summarize(TinyModule(), max_depth=1)
        ParameterSummary.summarize(summary._get_summary_data(), summary.total_parameters,
                                   summary.trainable_parameters, summary.model_size, summary.total_training_modes,
                                   summary.total_flops)
    (record,) = records
    assert "Total params" in record.getMessage() and "Flops" not in record.getMessage()


@pytest.mark.parametrize(("settings", "added"), [({}, True), ({"enable_model_summary": None}, True),
                                                 ({"enable_model_summary": False}, False),
                                                 ({"barebones": True}, False)])
def test_the_summary_replaces_lightnings_once(settings: dict, added: bool) -> None:
    arguments = summary_trainer_arguments([], settings)
    assert [type(c) for c in arguments["callbacks"]] == ([ParameterSummary] if added else [])
    own = summary_trainer_arguments([RichModelSummary()], settings)
    assert [type(c) for c in own["callbacks"]] == [RichModelSummary] and "enable_model_summary" not in own
    if added:
        cfg = OmegaConf.create({"_target_": "lightning.Trainer", "logger": False, "enable_checkpointing": False,
                                "enable_progress_bar": False, **settings})
        OmegaConf.set_struct(cfg, True)
        with records_of("lightning.pytorch") as records:
            trainer = instantiate(cfg, **arguments)
        assert [type(c) for c in trainer.callbacks if isinstance(c, ModelSummary)] == [ParameterSummary]
        assert records and not any("ModelSummary" in r.getMessage() for r in records)  # no "skipping the default"
