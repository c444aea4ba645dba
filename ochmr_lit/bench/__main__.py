"""Command line of the benchmarks; see ``ochmr_lit.bench``."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from ochmr_lit.bench import SECTIONS, BenchRow, get_section


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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected sections, print the table, optionally write JSON; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m ochmr_lit.bench", description=__doc__)
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections to run (default: all of {sorted(SECTIONS)})",
    )
    parser.add_argument("--quick", action="store_true", help="small problem sizes (seconds, for CI)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows to this JSON file")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (default 1: the references are single-threaded loops)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {unknown}; known: {sorted(SECTIONS)}")
    rows: list[BenchRow] = []
    for name in names:
        rows.extend(get_section(name)(args.quick))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, quick={args.quick}")
    print(format_table(rows))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "quick": args.quick,
            "threads": torch.get_num_threads(),
            "rows": [r.to_dict() for r in rows],
        }
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
