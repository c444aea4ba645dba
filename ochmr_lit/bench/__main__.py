"""Command line of the benchmarks; see ``ochmr_lit.bench``."""

from __future__ import annotations

import inspect
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from ochmr_lit.bench import SECTIONS, BenchRow, PerfRow, get_section
from ochmr_lit.errors import ConfigError, OneLineArgumentParser, user_errors
from ochmr_lit.paths import folder_problem

#: Threads of a section when --threads is not given (others use torch's default: every core).
DEFAULT_THREADS: dict[str, int] = {"metrics": 1}  # its references are single-threaded loops


def format_table(rows: Sequence[BenchRow]) -> str:
    """A Markdown table of benchmark rows."""
    lines = [
        "| section | benchmark | ours (s) | reference (s) | speed-up | target | max abs diff | reference |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        target = "" if math.isnan(r.target_speedup) else f">= {r.target_speedup:g}x"
        ref_s = "" if math.isnan(r.reference_s) else f"{r.reference_s:.3f}"
        speed = "" if math.isnan(r.speedup) else f"{r.speedup:.1f}x"
        lines.append(
            f"| {r.section} | {r.name} | {r.ours_s:.3f} | {ref_s} | {speed} | {target} | "
            f"{r.agreement:.2e} {r.agreement_unit} | {r.reference} |"
        )
    return "\n".join(lines)


def _fmt(value: float, spec: str) -> str:
    return "" if math.isnan(value) else format(value, spec)


def format_perf_table(rows: Sequence[PerfRow]) -> str:
    """A Markdown table of throughput/count rows against their baselines."""
    lines = [
        "| section | benchmark | value | unit | baseline | baseline value | ratio | GFLOP/item | MFU | note |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.section} | {r.name} | {r.value:.4g} | {r.unit} | {r.baseline} | {_fmt(r.baseline_value, '.4g')} | "
            f"{_fmt(r.ratio, '.2f')}{'x' if not math.isnan(r.ratio) else ''} | {_fmt(r.gflops_per_item, '.3g')} | "
            f"{_fmt(r.mfu * 100, '.1f')}{'%' if not math.isnan(r.mfu) else ''} | {r.note} |"
        )
    return "\n".join(lines)


def run_section(name: str, quick: bool, device: str) -> list[BenchRow | PerfRow]:
    """Rows of section ``name``; ``device`` is passed to sections whose ``run`` takes it."""
    fn = get_section(name)
    if "device" in inspect.signature(fn).parameters:
        return fn(quick, device=device)
    if device != "cpu":
        print(f"section {name} runs on the CPU only (asked for {device})")
    return fn(quick)


def build_parser() -> OneLineArgumentParser:
    """The command's argument parser (a mistake raises a one-line ConfigError)."""
    parser = OneLineArgumentParser(prog="python -m ochmr_lit.bench", description=__doc__)
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections to run (default: all of {sorted(SECTIONS)})",
    )
    parser.add_argument("--quick", action="store_true", help="small problem sizes (seconds, for CI)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows to this JSON file")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (sections that run models use it)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads for every section (default: 1 for metrics, whose references are "
        "single-threaded loops; torch's default, every core, for the others)",
    )
    return parser


def selected_sections(only: str) -> list[str]:
    """The section names of ``--only``; a ConfigError naming an unknown one (or none) and the known ones."""
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        raise ConfigError(f"--only {only}: unknown section(s) {unknown}; known: {sorted(SECTIONS)}")
    if not names:
        raise ConfigError(f"--only {only!r} names no section; choose from {sorted(SECTIONS)}")
    return names


def check_arguments(device: str, json_file: Path | None, threads: int | None) -> None:
    """Refuse a device, an output file or a thread count that cannot work, before any section runs."""
    if device.split(":")[0] not in ("cpu", "cuda"):
        raise ConfigError(f"--device must be cpu or cuda, got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: no CUDA device is available here; use --device cpu")
    if json_file is not None:
        problem = "it is a folder" if json_file.is_dir() else folder_problem(json_file.parent)
        if problem is not None:
            raise ConfigError(f"--json {json_file}: not a writable file path ({problem}); name a .json file in a "
                              "folder")
    if threads is not None and threads < 1:
        raise ConfigError(f"--threads {threads}: must be at least 1")


def run_benchmarks(argv: Sequence[str] | None) -> None:
    """Run the selected sections, print the table, optionally write JSON."""
    args = build_parser().parse_args(argv)
    check_arguments(args.device, args.json, args.threads)
    names = selected_sections(args.only)
    all_cores = torch.get_num_threads()
    rows: list[BenchRow | PerfRow] = []
    threads: dict[str, int] = {}
    for name in names:
        threads[name] = args.threads if args.threads is not None else DEFAULT_THREADS.get(name, all_cores)
        torch.set_num_threads(threads[name])
        try:
            rows.extend(run_section(name, args.quick, args.device))
        finally:
            torch.set_num_threads(all_cores)
    bench_rows = [r for r in rows if isinstance(r, BenchRow)]
    perf_rows = [r for r in rows if isinstance(r, PerfRow)]
    device = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "cpu"
    print(f"torch {torch.__version__}, device {device}, threads {threads}, quick={args.quick}")
    if perf_rows:
        print(format_perf_table(perf_rows))
    if bench_rows:
        print(format_table(bench_rows))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "quick": args.quick,
            "device": device,
            "threads": threads,
            "rows": [r.to_dict() for r in bench_rows],
            "perf_rows": [r.to_dict() for r in perf_rows],
        }
        args.json.write_text(json.dumps(payload, indent=2))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks; returns the exit code. A user mistake (an unknown section, a bad argument) prints one
    line ``error: ...`` and exits with status 2 (the traceback with ``HYDRA_FULL_ERROR=1``)."""
    with user_errors():
        run_benchmarks(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
