"""Learning curves of regressor runs from their CSV logs: ``python -m ochmr_lit.vis.curves``.

Reads each run's ``csv/metrics.csv`` (Lightning's CSVLogger, as every run of this framework writes it) and draws
validation MPJPE and PA-MPJPE (mm) against the training step, one line per run, with horizontal reference lines
(e.g. the ``constant`` guess) when given; where runs logged PA-MPJPE's depth and image-plane parts
(``val/pa_mpjpe_depth``, ``val/pa_mpjpe_plane``), a third panel draws them. Also prints a markdown table of each
run's per-epoch values.

    python -m ochmr_lit.vis.curves --run "data mean=outputs/a/<time>" --run "T-pose=outputs/b/<time>" \\
        --reference "constant=188.4,86.6" --out curves.png
"""

from __future__ import annotations

import csv
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ochmr_lit.errors import MissingFileError, OneLineArgumentParser  # noqa: E402
from ochmr_lit.paths import folder_problem  # noqa: E402

METRICS: tuple[str, ...] = ("val/mpjpe", "val/pa_mpjpe")
#: PA-MPJPE's depth and image-plane parts, logged by evaluations whose ground truth is in the camera frame.
PARTS: tuple[str, ...] = ("val/pa_mpjpe_depth", "val/pa_mpjpe_plane")


def read_validation_curve(run_dir: str | Path) -> dict[str, list[float]]:
    """Per-validation ``step``, ``epoch``, MPJPE, PA-MPJPE and its :data:`PARTS` (mm; NaN where not logged), in
    order, from a run's ``csv/metrics.csv``.

    Runs that logged the ``constant`` reference on validation also give ``constant`` = [MPJPE, PA-MPJPE] and,
    where they logged its parts, ``constant_parts`` = [depth, image plane].
    """
    path = Path(run_dir) / "csv" / "metrics.csv"
    if not path.is_file():
        raise MissingFileError(f"{path} not found: pass a run folder written with the csv logger "
                               "(logger=default or logger=csv)")
    curve: dict[str, list[float]] = {"step": [], "epoch": [], **{m: [] for m in (*METRICS, *PARTS)}}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            if not row.get(METRICS[0]):
                continue
            if row.get("val/constant/mpjpe") and "constant" not in curve:
                curve["constant"] = [float(row["val/constant/mpjpe"]), float(row["val/constant/pa_mpjpe"])]
            constant_parts = [row.get(m.replace("val/", "val/constant/")) for m in PARTS]
            if all(constant_parts) and "constant_parts" not in curve:
                curve["constant_parts"] = [float(v) for v in constant_parts]
            curve["step"].append(float(row["step"]))
            curve["epoch"].append(float(row["epoch"]))
            for metric in (*METRICS, *PARTS):
                curve[metric].append(float(row[metric]) if row.get(metric) else math.nan)
    if not curve["step"]:
        raise ValueError(f"{path} has no {METRICS[0]} rows: the run has not finished a validation yet")
    return curve


def plot_curves(curves: Mapping[str, Mapping[str, Sequence[float]]], out: str | Path,
                references: Mapping[str, tuple[float, float]] | None = None, title: str = "") -> Path:
    """Two panels (MPJPE, PA-MPJPE in mm vs training step), one line per run, dashed reference lines; a third
    with PA-MPJPE's depth (dashed) and image-plane (solid) parts where any run logged them."""
    with_parts = any(_logged(curve, PARTS) for curve in curves.values())
    fig, axes = plt.subplots(1, 3 if with_parts else 2, figsize=(16 if with_parts else 11, 4.2),
                             constrained_layout=True)
    if with_parts:
        _plot_parts(axes[2], curves)
    for ax, metric, label in zip(axes, METRICS, ("val MPJPE (mm)", "val PA-MPJPE (mm)"), strict=False):
        for i, (name, curve) in enumerate(curves.items()):
            ax.plot(curve["step"], curve[metric], marker="o", markersize=3, label=name, color=run_colour(i))
        for i, (name, values) in enumerate((references or {}).items()):
            ax.axhline(values[METRICS.index(metric)], color="0.3", linestyle=("--", ":", "-.")[i % 3], label=name)
        ax.set_xlabel("training step")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8, loc="upper right")
    if title:
        fig.suptitle(title)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def run_colour(index: int) -> str:
    """The matplotlib cycle colour of the ``index``-th run, the same in every panel."""
    return f"C{index % 10}"


def _logged(curve: Mapping[str, Sequence[float]], metrics: Sequence[str]) -> bool:
    """Whether ``curve`` has a finite value of every one of ``metrics`` somewhere."""
    return all(any(math.isfinite(v) for v in curve.get(m, ())) for m in metrics)


def _plot_parts(ax: plt.Axes, curves: Mapping[str, Mapping[str, Sequence[float]]]) -> None:
    """PA-MPJPE's depth (dashed) and image-plane (solid) parts per run, in the run's colour; the logged constant's
    as grey lines."""
    for i, (name, curve) in enumerate(curves.items()):
        if not _logged(curve, PARTS):
            continue  # the run keeps its colour: the colours of the runs after it do not shift
        ax.plot(curve["step"], curve[PARTS[1]], marker="o", markersize=3, color=run_colour(i),
                label=f"{name}: image plane")
        ax.plot(curve["step"], curve[PARTS[0]], marker="o", markersize=3, linestyle="--", color=run_colour(i),
                label=f"{name}: depth")
    constant = next((c["constant_parts"] for c in curves.values() if "constant_parts" in c), None)
    if constant:
        ax.axhline(constant[1], color="0.3", label="constant: image plane")
        ax.axhline(constant[0], color="0.3", linestyle="--", label="constant: depth")
    ax.set_xlabel("training step")
    ax.set_ylabel("val PA-MPJPE parts (mm)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")


def check_figure_file(path: str, key: str) -> None:
    """A ValueError naming ``key`` unless matplotlib can write ``path`` (its suffix a format it knows, its folder
    one that exists or can be made)."""
    formats = Figure().canvas.get_supported_filetypes()
    suffix = Path(path).suffix.lstrip(".").lower()
    if suffix not in formats:
        raise ValueError(f"{key} {path}: name a figure file, e.g. curves.png (formats: {', '.join(sorted(formats))})")
    problem = folder_problem(Path(path).parent)
    if problem is not None:
        raise ValueError(f"{key} {path}: its folder cannot be created ({problem})")


def _pair(text: str, what: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name or not value:
        raise ValueError(f"{what} {text!r}: write it as NAME=VALUE")
    return name, value


def main(argv: Sequence[str] | None = None) -> int:
    parser = OneLineArgumentParser(prog="python -m ochmr_lit.vis.curves", description=__doc__.split("\n")[0])
    parser.add_argument("--run", action="append", required=True, help="LABEL=RUN_FOLDER (repeatable)")
    parser.add_argument("--reference", action="append", default=[],
                        help="NAME=MPJPE,PA_MPJPE in mm (repeatable); default: the runs' logged val constant")
    parser.add_argument("--out", required=True, help="PNG to write")
    parser.add_argument("--title", default="")
    try:
        args = parser.parse_args(argv)
        curves = {}
        for text in args.run:
            label, folder = _pair(text, "--run")
            try:
                curves[label] = read_validation_curve(folder)
            except FileNotFoundError as error:
                raise FileNotFoundError(f"--run {text}: {error}") from None
        references = {}
        for text in args.reference:
            name, values = _pair(text, "--reference")
            try:
                numbers = [float(v) for v in values.split(",")]
            except ValueError:
                numbers = []
            if len(numbers) != 2:
                raise ValueError(f"--reference {text!r}: give MPJPE,PA_MPJPE in mm, e.g. {name}=184.4,86.2")
            references[name] = (numbers[0], numbers[1])
        check_figure_file(args.out, "--out")
        logged = [c["constant"] for c in curves.values() if "constant" in c]
        if not references and logged:  # the validation split's own constant guess, as the runs logged it
            references["constant (val)"] = (logged[0][0], logged[0][1])
    except (FileNotFoundError, ValueError) as error:  # ConfigError (argparse's mistakes) among them
        print(f"error: {error}", file=sys.stderr)
        return 2
    plot_curves(curves, args.out, references, args.title)
    with_parts = any(_logged(curve, PARTS) for curve in curves.values())
    shown = (*METRICS, *PARTS) if with_parts else METRICS
    header = ["run", "epoch", "step", "val MPJPE", "val PA-MPJPE", *(["depth", "image plane"] if with_parts else [])]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for label, curve in curves.items():
        for e, s, *values in zip(curve["epoch"], curve["step"], *(curve[m] for m in shown), strict=True):
            cells = [f"{v:.1f}" if math.isfinite(v) else "-" for v in values]
            print(f"| {label} | {int(e)} | {int(s)} | " + " | ".join(cells) + " |")
    print(f"curves written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
