"""How much lower one model's error is than another's on the same people, with a paired bootstrap interval.

A reproduction table compares OCHMR with SPIN on a few dozen people per bucket (70 heavily occluded people on the
SynthCrowd test split). The seed spread says how much training varies; which people happen to be in the split
varies too. :func:`paired_gain` resamples people (the same people for both models, so what they share cancels)
and gives a confidence interval of the relative error reduction ``1 - mean(method) / mean(baseline)``.
:func:`pooled_person_errors` reads the per-person errors of several seeds' ``per_sample.csv`` and averages them per
person, so the pooled gain equals the gain of the seed means.

::

    python -m ochmr_lit.eval.paired_gain --baseline <results folder>... --method <results folder>...
        [--buckets all heavy distractor] [--column mpjpe_mm]

prints, per bucket, both models' mean error, the reduction and its 95 % interval (each ``--baseline`` /
``--method`` folder is one run's ``results/``, e.g. one per seed).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import bootstrap

from ochmr_lit.errors import ConfigError, DataError, MissingFileError, OneLineArgumentParser, user_errors
from ochmr_lit.eval.records import read_per_sample

#: Bucket name -> (``per_sample.csv`` column, value) selecting its people; ``all`` selects everyone.
BUCKET_SELECTORS: dict[str, tuple[str, Any]] = {
    "none": ("occlusion_bucket", "none"), "partial": ("occlusion_bucket", "partial"),
    "heavy": ("occlusion_bucket", "heavy"), "distractor": ("distractor", 1.0)}


def paired_gain(baseline: np.ndarray, method: np.ndarray, level: float = 0.95, resamples: int = 9999,
                seed: int = 0) -> dict[str, float]:
    """Relative error reduction of ``method`` against ``baseline`` over the same people, with its interval.

    Args:
        baseline, method: (N,) per-person errors (e.g. MPJPE in mm), person ``i`` the same in both.
        level: confidence level of the interval.
        resamples: bootstrap resamples (people drawn with replacement, the same draw for both models).
        seed: seed of the resampling (the interval is reproducible).
    Returns:
        ``gain`` (``1 - mean(method) / mean(baseline)``; 0.2 = 20 % lower error), ``low`` and ``high`` (the
        percentile bootstrap interval, ``scipy.stats.bootstrap`` with ``paired=True``), ``people`` (N).
    """
    baseline, method = np.asarray(baseline, dtype=float), np.asarray(method, dtype=float)
    if baseline.shape != method.shape or baseline.ndim != 1:
        raise ValueError(f"paired errors need two (N,) arrays of the same people, got {baseline.shape} and "
                         f"{method.shape}")
    if len(baseline) < 2:
        raise ValueError(f"a bootstrap interval needs at least 2 people, got {len(baseline)}")

    def gain(base: np.ndarray, ours: np.ndarray, axis: int = -1) -> np.ndarray:
        return 1.0 - ours.mean(axis=axis) / base.mean(axis=axis)

    interval = bootstrap((baseline, method), gain, paired=True, vectorized=True, n_resamples=resamples,
                         confidence_level=level, method="percentile", random_state=np.random.default_rng(seed))
    return {"gain": float(gain(baseline, method)), "low": float(interval.confidence_interval.low),
            "high": float(interval.confidence_interval.high), "people": len(baseline), "level": level}


def pooled_person_errors(results_folders: Sequence[str | Path], column: str = "mpjpe_mm",
                         bucket: str = "all") -> tuple[np.ndarray, np.ndarray]:
    """Per-person errors averaged over runs (e.g. seeds) of one model on one split.

    Args:
        results_folders: results folders holding ``per_sample.csv`` (one per run), all of the same split.
        column: the error column (``mpjpe_mm``, ``pa_mpjpe_mm``, ...).
        bucket: ``all`` or a key of :data:`BUCKET_SELECTORS`.
    Returns:
        ``(sample_index, errors)``: (N,) sorted sample indices of the bucket's people and their mean errors.
    Raises:
        MissingFileError / DataError naming the file when a ``per_sample.csv`` is missing, lacks a column, or
        scores other people than the first run.
    """
    if bucket != "all" and bucket not in BUCKET_SELECTORS:
        raise ConfigError(f"bucket={bucket!r}: use all or one of {', '.join(BUCKET_SELECTORS)}")
    if not results_folders:
        raise ValueError("no results folders given")
    index, errors = None, []
    for folder in results_folders:
        path = Path(folder) / "per_sample.csv"
        if not path.is_file():
            raise MissingFileError(f"{path} not found: evaluate the run first (its results folder keeps one row "
                                    "per person)")
        table = read_per_sample(path)
        needed = {"sample_index", column} | ({BUCKET_SELECTORS[bucket][0]} if bucket != "all" else set())
        missing = sorted(needed - set(table))
        if missing:
            raise DataError(f"{path} has no column {', '.join(missing)}")
        keep = np.ones(len(table["sample_index"]), dtype=bool)
        if bucket != "all":
            name, value = BUCKET_SELECTORS[bucket]
            keep = table[name] == value
        order = np.argsort(table["sample_index"][keep], kind="stable")
        these = table["sample_index"][keep][order]
        if index is None:
            index = these
        elif not np.array_equal(index, these):
            raise DataError(f"{path} scores other people than {Path(results_folders[0]) / 'per_sample.csv'} "
                             f"(bucket {bucket}); compare runs evaluated on the same split")
        errors.append(table[column][keep][order])
    return index.astype(int), np.mean(errors, axis=0)


def paired_person_errors(baseline: Sequence[str | Path], method: Sequence[str | Path], column: str = "mpjpe_mm",
                         bucket: str = "all") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both models' per-person errors (:func:`pooled_person_errors`) on the same people of a bucket.

    Returns ``(sample_index, baseline errors, method errors)``, each (N,). Raises :class:`DataError` naming the
    files when the two models' runs scored other people.
    """
    people, base = pooled_person_errors(baseline, column, bucket)
    same, ours = pooled_person_errors(method, column, bucket)
    if not np.array_equal(people, same):
        raise DataError(f"{Path(method[0]) / 'per_sample.csv'} scores other people than "
                        f"{Path(baseline[0]) / 'per_sample.csv'} (bucket {bucket}); compare runs evaluated "
                        "on the same split")
    return people, base, ours


def gain_table(baseline: Sequence[str | Path], method: Sequence[str | Path], buckets: Sequence[str] = ("all",),
               column: str = "mpjpe_mm") -> str:
    """A Markdown table: per bucket, people, both models' mean error, the reduction and its 95 % interval."""
    lines = [f"| bucket | people | baseline {column} | method {column} | reduction | 95 % interval |",
             "|---|---|---|---|---|---|"]
    for bucket in buckets:
        people, base, ours = paired_person_errors(baseline, method, column, bucket)
        if len(people) < 2:
            lines.append(f"| {bucket} | {len(people)} | - | - | - | - |")
            continue
        g = paired_gain(base, ours)
        lines.append(f"| {bucket} | {g['people']} | {base.mean():.1f} | {ours.mean():.1f} | {100 * g['gain']:.1f} % "
                     f"| {100 * g['low']:.1f} to {100 * g['high']:.1f} % |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = OneLineArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", nargs="+", required=True, help="results folders of the baseline's runs")
    parser.add_argument("--method", nargs="+", required=True, help="results folders of the compared model's runs")
    parser.add_argument("--buckets", nargs="+", default=["all", "heavy", "distractor"],
                        help=f"all or any of {', '.join(BUCKET_SELECTORS)}")
    parser.add_argument("--column", default="mpjpe_mm", help="the per_sample.csv error column (e.g. pa_mpjpe_mm)")
    with user_errors():
        args = parser.parse_args(argv)
        print(gain_table(args.baseline, args.method, args.buckets, args.column))


if __name__ == "__main__":
    main()
