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
import sys
from collections.abc import Sequence
from pathlib import Path

from ochmr_lit.body.mean_params import mean_params_of_spin_npz, mean_params_of_synthcrowd_split, save_mean_params
from ochmr_lit.data.preparation import DATASETS, DIRECT, PrepareReport, format_report, prepare


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
