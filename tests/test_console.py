"""The console shows the run: Lightning's cloud-logger tip and its pytree deprecation warning are filtered out."""

import logging
import warnings

import lightning as L

import ochmr_lit  # noqa: F401  (installs the filters)
from ochmr_lit.console import LIGHTNING_TIP, quiet_lightning


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_lightnings_tip_is_not_logged_but_its_other_info_is(tmp_path):
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    collect, level = _Collect(), logger.level
    logger.addHandler(collect)
    logger.setLevel(logging.INFO)
    try:  # a CSV logger attached: the tip is logged whenever no LitLogger is
        L.Trainer(accelerator="cpu", logger=L.pytorch.loggers.CSVLogger(tmp_path), enable_checkpointing=False,
                  enable_progress_bar=False)
    finally:
        logger.removeHandler(collect)
        logger.setLevel(level)
    assert not [m for m in collect.messages if m.startswith(LIGHTNING_TIP)]
    assert any("GPU available" in m for m in collect.messages)  # the rest of Lightning's INFO lines still show


def test_only_the_known_deprecation_warning_is_filtered():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        ochmr_lit.console.quiet_known_noise()
        warnings.warn_explicit("`isinstance(treespec, LeafSpec)` is deprecated", DeprecationWarning,
                               "_pytree.py", 21, module="lightning.pytorch.utilities._pytree")
        warnings.warn_explicit("something else is deprecated", DeprecationWarning, "_pytree.py", 22,
                               module="lightning.pytorch.utilities._pytree")
    assert [str(w.message) for w in caught] == ["something else is deprecated"]


def test_quiet_lightning_silences_info_warnings_and_python_warnings_but_not_errors_and_restores_them():
    logger = logging.getLogger("lightning.pytorch.trainer.connectors")
    collect = _Collect()
    logger.addHandler(collect)
    parents = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    before = [p.level for p in parents]
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            try:
                with quiet_lightning():
                    logger.warning("inside warning")
                    logger.error("inside error")
                    warnings.warn("inside python warning", UserWarning, stacklevel=1)
                    raise RuntimeError("stops the probe")
            except RuntimeError:
                pass
            logger.warning("outside warning")
            warnings.warn("outside python warning", UserWarning, stacklevel=1)
    finally:
        logger.removeHandler(collect)
    assert collect.messages == ["inside error", "outside warning"]
    assert [str(w.message) for w in seen] == ["outside python warning"]
    assert [p.level for p in parents] == before
