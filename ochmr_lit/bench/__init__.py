"""Benchmarks: ``python -m ochmr_lit.bench [--only SECTION[,SECTION]] [--quick] [--json FILE]``.

Each section is a module with ``run(quick: bool) -> list[BenchRow]``, registered by name in
``SECTIONS`` (imported only when selected, so one section's imports never slow another down).
To add a section, write ``ochmr_lit/bench/<name>.py`` with such a ``run`` and add it to ``SECTIONS``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import asdict, dataclass

#: Section name -> module that implements it.
SECTIONS: dict[str, str] = {
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


def get_section(name: str) -> Callable[[bool], list[BenchRow]]:
    """The ``run`` function of section ``name``; KeyError listing the known sections otherwise."""
    if name not in SECTIONS:
        raise KeyError(f"unknown benchmark section {name!r}; known: {sorted(SECTIONS)}")
    return importlib.import_module(SECTIONS[name]).run
