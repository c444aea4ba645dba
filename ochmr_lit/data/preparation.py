"""Converting or indexing the official files of the datasets that need it once: 3DPW, CMU Panoptic, OCHuman.

The library behind ``python -m ochmr_lit.prepare`` (which documents the layouts) and behind the data modules'
``prepare_data``. Every output is written beside a ``<output>.summary.json`` (its inputs and counts); an output
whose summary lists the same inputs and which is newer than all of them is kept, so preparing twice does the
work once (``force`` redoes it).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ochmr_lit.command_choices import DIRECT_DATASETS, PREPARED_DATASETS
from ochmr_lit.data.readers.ochuman_raw import VAL_IMAGES, write_ochuman_coco
from ochmr_lit.data.readers.panoptic import PANOPTIC_CAMERAS, POSE_DIR, frame_files
from ochmr_lit.data.readers.panoptic import write_index as write_panoptic_index
from ochmr_lit.data.readers.threedpw import PW3D_SPLITS
from ochmr_lit.data.readers.threedpw import write_index as write_3dpw_index
from ochmr_lit.errors import MissingFileError
from ochmr_lit.metrics.matched_mpjpe import PANOPTIC_SEQUENCES
from ochmr_lit.paths import cache_dir


@dataclass
class OutputReport:
    """One prepared file: ``status`` is ``written`` or ``up_to_date``; ``counts`` has ``kept`` and skip reasons."""

    path: Path
    status: str
    counts: dict[str, int]


@dataclass
class PrepareReport:
    dataset: str
    outputs: list[OutputReport] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def totals(self) -> Counter:
        total: Counter = Counter()
        for out in self.outputs:
            total.update(out.counts)
        return total


def _summary_path(output: Path) -> Path:
    return output.with_name(output.name + ".summary.json")


def is_up_to_date(output: Path, inputs: Sequence[Path]) -> dict[str, int] | None:
    """The stored counts when ``output`` is complete and newer than every input, else None."""
    summary = _summary_path(output)
    if not (output.is_file() and summary.is_file()):
        return None
    try:
        stored = json.loads(summary.read_text())
    except json.JSONDecodeError:
        return None
    if stored.get("inputs") != sorted(str(p) for p in inputs):
        return None
    newest = max((p.stat().st_mtime for p in inputs), default=0.0)
    if output.stat().st_mtime < newest or summary.stat().st_mtime < newest:
        return None
    return dict(stored.get("counts", {}))


def _produce(output: Path, inputs: Sequence[Path], build: Callable[[], Counter], force: bool) -> OutputReport:
    if not force:
        counts = is_up_to_date(output, inputs)
        if counts is not None:
            return OutputReport(output, "up_to_date", counts)
    counts = dict(build())
    summary = _summary_path(output)
    tmp = summary.with_name(summary.name + ".tmp")
    tmp.write_text(json.dumps({"inputs": sorted(str(p) for p in inputs), "counts": counts}, indent=1))
    tmp.replace(summary)
    return OutputReport(output, "written", counts)


def _progress(description: str, show: bool) -> Callable[[Iterable], Iterable]:
    def wrap(items: Iterable) -> Iterable:
        if not show:
            return items
        from rich.progress import track

        return track(items, description=description, transient=True)

    return wrap


def prepare_3dpw(raw: Path, out: Path, force: bool = False, show_progress: bool = True,
                 splits: Sequence[str] | None = None) -> PrepareReport:
    """Index the official sequence pickles of each split present under ``raw/sequenceFiles``."""
    report = PrepareReport("3dpw")
    root = raw / "sequenceFiles"
    if not root.is_dir():
        raise MissingFileError(f"{root} not found: --raw must be the 3DPW folder holding sequenceFiles/ "
                               "(and imageFiles/)")
    for split in splits or PW3D_SPLITS:
        pickles = sorted((root / split).glob("*.pkl"))
        if not pickles:
            report.missing.append(f"sequenceFiles/{split}")
            continue
        output = out / f"3dpw_{split}.npz"
        report.outputs.append(_produce(output, pickles, lambda p=pickles, o=output, s=split: write_3dpw_index(
            p, o, progress=_progress(f"3DPW {s}", show_progress)), force))
    return report


def prepare_panoptic(raw: Path, out: Path, force: bool = False, show_progress: bool = True,
                     sequences: Sequence[str] = PANOPTIC_SEQUENCES, cameras: Sequence[str] | None = None,
                     frame_step: int = 1) -> PrepareReport:
    """Index each (sequence, HD camera) of the CRMH protocol found under ``raw``."""
    report = PrepareReport("panoptic")
    for sequence in sequences:
        seq_dir = raw / sequence
        if not (seq_dir / POSE_DIR).is_dir():
            report.missing.append(sequence)
            continue
        inputs = [p for _, p in frame_files(seq_dir)] + [seq_dir / f"calibration_{sequence}.json"]
        for camera in cameras or PANOPTIC_CAMERAS:
            output = out / f"panoptic_{sequence}_{camera}.npz"
            report.outputs.append(_produce(output, inputs, lambda d=seq_dir, c=camera, o=output: write_panoptic_index(
                d, c, o, frame_step=frame_step, progress=_progress(f"Panoptic {d.name} {c}", show_progress)), force))
    return report


def prepare_ochuman(raw: Path, out: Path, force: bool = False, show_progress: bool = True,
                    val_images: int | None = None) -> PrepareReport:
    """Convert the raw ``ochuman.json`` into the official val and test COCO-format files."""
    raw_file = raw if raw.is_file() else raw / "ochuman.json"
    if not raw_file.is_file():
        raise MissingFileError(f"{raw_file} not found: --raw must be OCHuman's ochuman.json or its folder")
    report = PrepareReport("ochuman")
    for subset in ("val", "test"):
        output = out / f"ochuman_coco_format_{subset}_range_0.00_1.00.json"
        report.outputs.append(_produce(output, [raw_file], lambda s=subset, o=output: write_ochuman_coco(
            raw_file, o, subset=s, val_images=val_images or VAL_IMAGES), force))
    return report


def prepare(dataset: str, raw: str | Path, out: str | Path, force: bool = False, show_progress: bool = True,
            **options) -> PrepareReport:
    """Prepare ``dataset`` from its official files in ``raw`` into ``out``.

    :mod:`ochmr_lit.prepare` describes the layouts of ``raw`` and ``out``.
    """
    raw, out = Path(raw), Path(out)
    if not raw.exists():
        raise MissingFileError(f"--raw {raw} does not exist")
    builders = {"3dpw": prepare_3dpw, "panoptic": prepare_panoptic, "ochuman": prepare_ochuman}
    if dataset not in builders:
        raise ValueError(f"unknown dataset {dataset!r}; prepare handles {list(PREPARED_DATASETS)} "
                         f"({', '.join(DIRECT_DATASETS)} need no preparation)")
    out.mkdir(parents=True, exist_ok=True)
    return builders[dataset](raw, out, force=force, show_progress=show_progress, **options)


def format_report(report: PrepareReport) -> str:
    """Plain-text summary: one line per output with kept and skipped counts and reasons."""
    lines = [f"{report.dataset}: {len(report.outputs)} outputs"]
    for out in report.outputs:
        skipped = {k: v for k, v in sorted(out.counts.items()) if k != "kept" and v}
        reasons = ", ".join(f"{v} {k}" for k, v in skipped.items()) or "none"
        lines.append(f"  {out.path.name}: {out.status}; kept {out.counts.get('kept', 0)}; skipped "
                     f"{sum(skipped.values())} ({reasons})")
    if report.missing:
        lines.append(f"  not found (nothing written for them): {', '.join(report.missing)}")
    return "\n".join(lines)


def prepared_index_dir(index_dir: str | None, name: str) -> Path:
    """Where a dataset's prepared index lives: ``index_dir`` when given, else ``<cache>/prepared/<name>``."""
    return Path(index_dir) if index_dir else cache_dir() / "prepared" / name
