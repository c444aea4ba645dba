"""Convert or index the official dataset files once: ``python -m ochmr_lit.prepare <dataset> --raw DIR --out DIR``.

* ``3dpw``: ``<raw>/sequenceFiles/{train,validation,test}/*.pkl`` -> ``<out>/3dpw_{split}.npz`` (SPIN-format
  index, camera-frame SMPL, boxes from ``poses2d``; see ``ochmr_lit.data.readers.threedpw``).
* ``panoptic``: ``<raw>/<sequence>/`` of the four CRMH sequences -> ``<out>/panoptic_<sequence>_<camera>.npz``
  for HD cameras 00_16 and 00_30.
* ``ochuman``: ``<raw>/ochuman.json`` -> ``<out>/ochuman_coco_format_{val,test}_range_0.00_1.00.json`` (the
  official COCO-format conversion).

3DOH, COCO and CrowdPose are read from their official files directly and need no step here.

``python -m ochmr_lit.prepare mean_params --data <split> [--out FILE]`` computes SPIN-format mean parameters
(the regressor's IEF start, ``model.mean_params``) from a training split's SMPL labels: a SynthCrowd split
folder or a SPIN-format npz (``pose``, ``shape``). See :mod:`ochmr_lit.body.mean_params`.

The command line and the given folders are checked before torch and the readers are imported: a mistake is
named in one line within a second.

Every output is written atomically beside a ``<output>.summary.json`` (its inputs and counts). A run skips
an output whose summary lists the same inputs and which is newer than all of them, so running twice does
the work once (``--force`` redoes it). The summary table says what was kept and what was skipped, and why.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from ochmr_lit.command_choices import DIRECT_DATASETS, PREPARED_DATASETS
from ochmr_lit.errors import (
    ConfigError,
    DataError,
    MissingFileError,
    OchmrError,
    OneLineArgumentParser,
    report_user_error,
)

if TYPE_CHECKING:
    from ochmr_lit.data.preparation import PrepareReport

T = TypeVar("T")


def _print_report(report: PrepareReport) -> None:
    """A rich table on a terminal, the plain lines of :func:`format_report` otherwise (logs, pipes)."""
    from rich.console import Console
    from rich.table import Table

    from ochmr_lit.data.preparation import format_report

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
    data = _checked_mean_params_data(data)
    # after the check: torch and the body model load here
    from ochmr_lit.body.mean_params import (
        mean_params_of_spin_npz,
        mean_params_of_synthcrowd_split,
        save_mean_params,
    )

    if data.is_dir():
        params, people = mean_params_of_synthcrowd_split(data)
        target = Path(out) if out else data / "smpl_mean_params.npz"
    elif data.suffix == ".npz" and data.is_file():
        params, people = mean_params_of_spin_npz(data)
        target = Path(out) if out else data.with_name(f"{data.stem}_mean_params.npz")
    return save_mean_params(target, params, source=str(data.name), num_people=people), people


def _checked_mean_params_data(data: str | Path) -> Path:
    """``--data`` as a Path: a folder, or an ``.npz`` file; one line naming it otherwise."""
    data = Path(data)
    if not data.exists():
        raise MissingFileError(f"--data {data}: no such folder or file; pass a SynthCrowd split folder (with "
                               "annotations.json) or a SPIN-format .npz (pose, shape)")
    if not data.is_dir() and not (data.suffix == ".npz" and data.is_file()):
        raise DataError(f"--data {data}: not a SynthCrowd split folder nor a SPIN-format .npz file; pass one of "
                        "them")
    return data


def input_error(error: Exception, inputs: Sequence[str | Path]) -> OchmrError | None:
    """The user error a reader's exception stands for, or None for a bug (which keeps its traceback).

    A missing file is one; so is a ValueError or KeyError whose message names one of ``inputs`` or a file under
    it (the dataset readers name the file they reject, what they found and the fix).
    """
    if isinstance(error, FileNotFoundError):
        return MissingFileError(str(error))
    message = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    if any(str(Path(p)) in message for p in inputs):
        return DataError(message)
    return None


def reading_inputs(run: Callable[[], T], inputs: Sequence[str | Path]) -> T:
    """``run()``, with the readers' complaints about ``inputs`` raised as user errors (:func:`input_error`)."""
    try:
        return run()
    except OchmrError:
        raise
    except (FileNotFoundError, KeyError, ValueError) as error:
        user_error = input_error(error, inputs)
        if user_error is None:
            raise
        raise user_error from error


def _mean_params_main(argv: Sequence[str]) -> int:
    parser = OneLineArgumentParser(prog="python -m ochmr_lit.prepare mean_params",
                                   description="SPIN-format mean parameters of a training split's SMPL labels")
    parser.add_argument("--data", required=True, help="SynthCrowd split folder or SPIN-format npz")
    parser.add_argument("--out", default=None, help="output .npz (default: beside the data)")
    args = parser.parse_args(argv)
    path, people = reading_inputs(lambda: prepare_mean_params(args.data, args.out), [args.data])
    print(f"mean parameters of {people} people written to {path} (use it with model.mean_params={path})")
    return 0


def _check_folders(raw: str, out: str) -> None:
    """``--raw`` must exist and ``--out`` must be a folder (or not exist yet)."""
    if not Path(raw).exists():
        raise MissingFileError(f"--raw {raw}: no such folder or file; pass the folder of the dataset's official "
                               "files (python -m ochmr_lit.prepare --help describes each layout)")
    if Path(out).exists() and not Path(out).is_dir():
        raise ConfigError(f"--out {out} is a file; pass a folder for the prepared files")


def _prepare_main(argv: list[str]) -> int:
    parser = OneLineArgumentParser(prog="python -m ochmr_lit.prepare", description=__doc__.split("\n")[0])
    parser.add_argument("dataset", choices=sorted(PREPARED_DATASETS + tuple(DIRECT_DATASETS) + ("mean_params",)))
    parser.add_argument("--raw", required=True, help="folder of the official files (see the module doc)")
    parser.add_argument("--out", required=True, help="folder for the converted files / indexes")
    parser.add_argument("--force", action="store_true", help="rebuild outputs that are up to date")
    parser.add_argument("--frame-step", type=int, default=1, help="panoptic: index every n-th frame")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.dataset in DIRECT_DATASETS:
        print(DIRECT_DATASETS[args.dataset])
        return 0
    if args.frame_step < 1:
        raise ConfigError(f"--frame-step {args.frame_step}: must be at least 1 (1 indexes every frame)")
    _check_folders(args.raw, args.out)
    from ochmr_lit.data.preparation import prepare  # after the checks: torch and the readers load here

    options = {"frame_step": args.frame_step} if args.dataset == "panoptic" else {}
    report = reading_inputs(lambda: prepare(args.dataset, args.raw, args.out, force=args.force,
                                            show_progress=not args.no_progress, **options), [args.raw])
    _print_report(report)
    return 0 if report.outputs else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; a user mistake prints one line ``error: ...`` and gives the exit status 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["mean_params"]:
            return _mean_params_main(argv[1:])
        return _prepare_main(argv)
    except OchmrError as error:
        return report_user_error(error)


if __name__ == "__main__":
    sys.exit(main())
