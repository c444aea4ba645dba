"""Convert or index the official dataset files once: ``python -m ochmr_lit.prepare <dataset> --raw DIR --out DIR``.

* ``3dpw``: ``<raw>/sequenceFiles/{train,validation,test}/*.pkl`` -> ``<out>/3dpw_{split}.npz`` (SPIN-format
  index, camera-frame SMPL, boxes from ``poses2d``; see ``ochmr_lit.data.datasets.threedpw``).
* ``panoptic``: ``<raw>/<sequence>/`` of the four CRMH sequences -> ``<out>/panoptic_<sequence>_<camera>.npz``
  for HD cameras 00_16 and 00_30.
* ``ochuman``: ``<raw>/ochuman.json`` -> ``<out>/ochuman_coco_format_{val,test}_range_0.00_1.00.json`` (the
  official COCO-format conversion).

3DOH, COCO and CrowdPose are read from their official files directly and need no step here.

``python -m ochmr_lit.prepare mean_params --data <split> [--out FILE]`` computes SPIN-format mean parameters
(the regressor's IEF start, ``model.mean_params``) from a training split's SMPL labels: a SynthCrowd split
folder or a SPIN-format npz (``pose``, ``shape``). See :mod:`ochmr_lit.body.mean_params`.

Every output is written atomically beside a ``<output>.summary.json`` (its inputs and counts). A run skips
an output whose summary lists the same inputs and which is newer than all of them, so running twice does
the work once (``--force`` redoes it). The summary table says what was kept and what was skipped, and why.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ochmr_lit.body.mean_params import mean_params_of_spin_npz, mean_params_of_synthcrowd_split, save_mean_params
from ochmr_lit.metrics.matched_mpjpe import PANOPTIC_SEQUENCES

DATASETS: tuple[str, ...] = ("3dpw", "panoptic", "ochuman")
DIRECT: dict[str, str] = {
    "3doh": "3DOH's annots.json is read directly (data.ann_files); nothing to prepare",
    "coco": "COCO keypoint JSONs are read directly; nothing to prepare",
    "crowdpose": "CrowdPose keypoint JSONs are read directly; nothing to prepare",
}


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
    from ochmr_lit.data.datasets.threedpw import PW3D_SPLITS, write_index

    report = PrepareReport("3dpw")
    root = raw / "sequenceFiles"
    if not root.is_dir():
        raise FileNotFoundError(f"{root} not found: --raw must be the 3DPW folder holding sequenceFiles/ "
                                "(and imageFiles/)")
    for split in splits or PW3D_SPLITS:
        pickles = sorted((root / split).glob("*.pkl"))
        if not pickles:
            report.missing.append(f"sequenceFiles/{split}")
            continue
        output = out / f"3dpw_{split}.npz"
        report.outputs.append(_produce(output, pickles, lambda p=pickles, o=output, s=split: write_index(
            p, o, progress=_progress(f"3DPW {s}", show_progress)), force))
    return report


def prepare_panoptic(raw: Path, out: Path, force: bool = False, show_progress: bool = True,
                     sequences: Sequence[str] = PANOPTIC_SEQUENCES, cameras: Sequence[str] | None = None,
                     frame_step: int = 1) -> PrepareReport:
    """Index each (sequence, HD camera) of the CRMH protocol found under ``raw``."""
    from ochmr_lit.data.datasets.panoptic import PANOPTIC_CAMERAS, POSE_DIR, frame_files, write_index

    report = PrepareReport("panoptic")
    for sequence in sequences:
        seq_dir = raw / sequence
        if not (seq_dir / POSE_DIR).is_dir():
            report.missing.append(sequence)
            continue
        inputs = [p for _, p in frame_files(seq_dir)] + [seq_dir / f"calibration_{sequence}.json"]
        for camera in cameras or PANOPTIC_CAMERAS:
            output = out / f"panoptic_{sequence}_{camera}.npz"
            report.outputs.append(_produce(output, inputs, lambda d=seq_dir, c=camera, o=output: write_index(
                d, c, o, frame_step=frame_step, progress=_progress(f"Panoptic {d.name} {c}", show_progress)), force))
    return report


def prepare_ochuman(raw: Path, out: Path, force: bool = False, show_progress: bool = True,
                    val_images: int | None = None) -> PrepareReport:
    """Convert the raw ``ochuman.json`` into the official val and test COCO-format files."""
    from ochmr_lit.data.datasets.ochuman_raw import VAL_IMAGES, write_ochuman_coco

    raw_file = raw if raw.is_file() else raw / "ochuman.json"
    if not raw_file.is_file():
        raise FileNotFoundError(f"{raw_file} not found: --raw must be OCHuman's ochuman.json or its folder")
    report = PrepareReport("ochuman")
    for subset in ("val", "test"):
        output = out / f"ochuman_coco_format_{subset}_range_0.00_1.00.json"
        report.outputs.append(_produce(output, [raw_file], lambda s=subset, o=output: write_ochuman_coco(
            raw_file, o, subset=s, val_images=val_images or VAL_IMAGES), force))
    return report


def prepare(dataset: str, raw: str | Path, out: str | Path, force: bool = False, show_progress: bool = True,
            **options) -> PrepareReport:
    """Prepare ``dataset`` from its official files in ``raw`` into ``out``; see the module doc for layouts."""
    raw, out = Path(raw), Path(out)
    if not raw.exists():
        raise FileNotFoundError(f"--raw {raw} does not exist")
    builders = {"3dpw": prepare_3dpw, "panoptic": prepare_panoptic, "ochuman": prepare_ochuman}
    if dataset not in builders:
        raise ValueError(f"unknown dataset {dataset!r}; prepare handles {list(DATASETS)} "
                         f"({', '.join(DIRECT)} need no preparation)")
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


def _print_report(report: PrepareReport) -> None:
    """A rich table on a terminal, the plain lines of :func:`format_report` otherwise (logs, pipes)."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        print(format_report(report))
        return
    table = Table(title=f"prepare {report.dataset}")
    for column in ("output", "status", "kept", "skipped", "why skipped"):
        table.add_column(column)
    for out in report.outputs:
        skipped = {k: v for k, v in sorted(out.counts.items()) if k != "kept" and v}
        table.add_row(out.path.name, out.status, str(out.counts.get("kept", 0)), str(sum(skipped.values())),
                      ", ".join(f"{v} {k}" for k, v in skipped.items()) or "-")
    console.print(table)
    if report.missing:
        console.print(f"not found (nothing written for them): {', '.join(report.missing)}")


def prepare_mean_params(data: str | Path, out: str | Path | None = None) -> tuple[Path, int]:
    """Write the mean parameters of ``data`` (SynthCrowd split folder or SPIN npz); returns (file, people).

    ``out`` defaults to ``smpl_mean_params.npz`` in the split folder, or beside the npz as
    ``<name>_mean_params.npz``.
    """
    data = Path(data)
    if data.is_dir():
        params, people = mean_params_of_synthcrowd_split(data)
        target = Path(out) if out else data / "smpl_mean_params.npz"
    elif data.suffix == ".npz" and data.is_file():
        params, people = mean_params_of_spin_npz(data)
        target = Path(out) if out else data.with_name(f"{data.stem}_mean_params.npz")
    else:
        raise FileNotFoundError(f"--data {data}: not a SynthCrowd split folder nor a SPIN-format .npz file")
    return save_mean_params(target, params, source=str(data.name), num_people=people), people


def _mean_params_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m ochmr_lit.prepare mean_params",
                                     description="SPIN-format mean parameters of a training split's SMPL labels")
    parser.add_argument("--data", required=True, help="SynthCrowd split folder or SPIN-format npz")
    parser.add_argument("--out", default=None, help="output .npz (default: beside the data)")
    args = parser.parse_args(argv)
    try:
        path, people = prepare_mean_params(args.data, args.out)
    except (FileNotFoundError, KeyError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"mean parameters of {people} people written to {path} (use it with model.mean_params={path})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["mean_params"]:
        return _mean_params_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m ochmr_lit.prepare", description=__doc__.split("\n")[0])
    parser.add_argument("dataset", choices=sorted(DATASETS + tuple(DIRECT) + ("mean_params",)))
    parser.add_argument("--raw", required=True, help="folder of the official files (see the module doc)")
    parser.add_argument("--out", required=True, help="folder for the converted files / indexes")
    parser.add_argument("--force", action="store_true", help="rebuild outputs that are up to date")
    parser.add_argument("--frame-step", type=int, default=1, help="panoptic: index every n-th frame")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.dataset in DIRECT:
        print(DIRECT[args.dataset])
        return 0
    options = {"frame_step": args.frame_step} if args.dataset == "panoptic" else {}
    try:
        report = prepare(args.dataset, args.raw, args.out, force=args.force, show_progress=not args.no_progress,
                         **options)
    except (FileNotFoundError, KeyError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    _print_report(report)
    return 0 if report.outputs else 1


if __name__ == "__main__":
    sys.exit(main())
