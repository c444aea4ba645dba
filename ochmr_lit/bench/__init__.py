"""Benchmarks: ``python -m ochmr_lit.bench [--only SECTION[,SECTION]] [--quick] [--device cpu|cuda] [--json FILE]``.

Each section is a module with ``run(quick: bool) -> list[BenchRow | PerfRow]``, registered by name in
``SECTIONS`` (imported only when selected, so one section's imports never slow another down); a section
whose ``run`` also takes ``device`` is given the ``--device`` choice. To add a section, write
``ochmr_lit/bench/<name>.py`` with such a ``run`` and add it to ``SECTIONS``. What sections share lives in
:mod:`~ochmr_lit.bench.measure` (timing, FLOPs, peak, MFU) and :mod:`~ochmr_lit.bench.workloads` (the batch and
the models' training steps); a section imports those, never another section.

:class:`BenchRow` compares two implementations of the same result (time and agreement);
:class:`PerfRow` reports a throughput or a count against a baseline measured in the same process.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

#: Section name -> module that implements it.
SECTIONS: dict[str, str] = {
    "flops": "ochmr_lit.bench.flops",  # first: measures the matmul peak that MFU is computed against
    "training": "ochmr_lit.bench.training",
    "inference": "ochmr_lit.bench.inference",
    "data": "ochmr_lit.bench.data",
    "metrics": "ochmr_lit.bench.metrics",
}


@dataclass
class BenchRow:
    """One line of the benchmark table.

    Attributes:
        section: the section that produced it.
        name: what was measured (with the problem size).
        ours_s: wall time of this project's implementation, seconds.
        reference_s: wall time of the reference it is compared with, seconds (NaN if none).
        reference: what the reference is.
        agreement: largest absolute difference between the two results (in ``agreement_unit``).
        agreement_unit: unit of ``agreement``.
        target_speedup: speed-up the project aims for (NaN if none).
    """

    section: str
    name: str
    ours_s: float
    reference_s: float
    reference: str
    agreement: float
    agreement_unit: str
    target_speedup: float = float("nan")

    @property
    def speedup(self) -> float:
        """reference time / our time."""
        return self.reference_s / self.ours_s if self.ours_s > 0 else float("nan")

    def to_dict(self) -> dict[str, object]:
        """Plain dict, speed-up included."""
        return {**asdict(self), "speedup": self.speedup}


@dataclass
class PerfRow:
    """One measurement against a baseline measured in the same process run.

    Attributes:
        section: the section that produced it.
        name: what was measured (model, batch, precision, memory format; "quick" variants say so).
        value: the measurement, in ``unit`` (e.g. img/s, persons/s, crops/s, GFLOP/img).
        unit: unit of ``value`` and ``baseline_value``.
        baseline: what ``value`` is compared with.
        baseline_value: the baseline's measurement in ``unit`` (NaN if none).
        gflops_per_item: model GFLOP per item of the measured work (NaN if not counted).
        mfu: achieved fraction of the measured matmul peak, ``gflops_per_item * items/s / peak`` (NaN if none).
        note: anything a reader needs to interpret the row (peak used, workers needed, ...).
    """

    section: str
    name: str
    value: float
    unit: str
    baseline: str = ""
    baseline_value: float = float("nan")
    gflops_per_item: float = float("nan")
    mfu: float = float("nan")
    note: str = ""

    @property
    def ratio(self) -> float:
        """value / baseline value (NaN without a baseline)."""
        if math.isnan(self.baseline_value) or self.baseline_value == 0:
            return float("nan")
        return self.value / self.baseline_value

    def to_dict(self) -> dict[str, object]:
        """Plain dict, ratio included."""
        return {**asdict(self), "ratio": self.ratio}


def get_section(name: str) -> Callable[..., list[BenchRow | PerfRow]]:
    """The ``run`` function of section ``name``; KeyError listing the known sections otherwise."""
    if name not in SECTIONS:
        raise KeyError(f"unknown benchmark section {name!r}; known: {sorted(SECTIONS)}")
    return importlib.import_module(SECTIONS[name]).run
