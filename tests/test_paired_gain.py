"""The paired gain of one model over another: exact point value, honest intervals, per-person files read right."""

import numpy as np
import pytest

from ochmr_lit.errors import DataError, MissingFileError
from ochmr_lit.eval.paired_gain import gain_table, main, paired_gain, paired_person_errors, pooled_person_errors
from ochmr_lit.eval.results_files import write_results
from ochmr_lit.reproduce.formatting import format_table_document
from ochmr_lit.reproduce.mesh_table import _claim_intervals


def test_gain_is_the_relative_reduction_of_the_mean_and_a_fixed_ratio_has_no_spread():
    rng = np.random.default_rng(0)
    base = rng.uniform(100, 200, 50)
    out = paired_gain(base, 0.8 * base)
    assert out["gain"] == pytest.approx(0.2) and out["people"] == 50
    # every resample of the same people keeps the ratio: the interval collapses onto it
    assert out["low"] == pytest.approx(0.2) and out["high"] == pytest.approx(0.2)
    same = paired_gain(base, base)
    assert (same["gain"], same["low"], same["high"]) == pytest.approx((0.0, 0.0, 0.0))
    noisy = rng.normal(0, 20, 50)
    assert paired_gain(base, base + noisy)["gain"] == pytest.approx(1 - (base + noisy).mean() / base.mean())


def test_the_interval_covers_the_true_gain_about_as_often_as_it_says():
    # people's errors under SPIN ~ N(150, 30); the method removes 10 % of each plus person-level noise
    rng = np.random.default_rng(1)
    trials, covered = 200, 0
    for t in range(trials):
        base = rng.normal(150, 30, 60)
        method = 0.9 * base + rng.normal(0, 10, 60)
        out = paired_gain(base, method, resamples=999, seed=t)
        covered += out["low"] <= 0.1 <= out["high"]
    assert 0.88 <= covered / trials <= 0.99


def test_more_people_narrow_the_interval_as_one_over_their_square_root():
    rng = np.random.default_rng(2)
    base = rng.normal(150, 30, 80)
    method = 0.9 * base + rng.normal(0, 10, 80)
    narrow, wide = paired_gain(np.tile(base, 4), np.tile(method, 4)), paired_gain(base, method)
    ratio = (narrow["high"] - narrow["low"]) / (wide["high"] - wide["low"])
    assert ratio == pytest.approx(0.5, rel=0.15)


def test_bad_pairs_are_refused():
    with pytest.raises(ValueError, match="two \\(N,\\) arrays of the same people"):
        paired_gain(np.ones(5), np.ones(4))
    with pytest.raises(ValueError, match="at least 2 people"):
        paired_gain(np.ones(1), np.ones(1))


def _write_run(folder, order, mpjpe, buckets, distractor):
    per_sample = {"sample_index": np.asarray(order), "occlusion_bucket": np.asarray(buckets)[order],
                  "distractor": np.asarray(distractor)[order], "mpjpe_mm": np.asarray(mpjpe, dtype=float)[order]}
    return write_results(folder, {"mpjpe": float(np.mean(mpjpe))}, per_sample, {"name": "synthcrowd"})


BUCKETS = ["none", "heavy", "heavy", "partial", "heavy", "none"]
DISTRACTOR = [0, 1, 0, 1, 1, 0]


def test_pooled_errors_average_seeds_per_person_whatever_the_row_order(tmp_path):
    first = _write_run(tmp_path / "s0", [5, 3, 1, 0, 2, 4], [10, 20, 30, 40, 50, 60], BUCKETS, DISTRACTOR)
    second = _write_run(tmp_path / "s1", [0, 1, 2, 3, 4, 5], [12, 22, 32, 42, 52, 62], BUCKETS, DISTRACTOR)
    people, errors = pooled_person_errors([first, second], bucket="heavy")
    assert people.tolist() == [1, 2, 4] and errors.tolist() == pytest.approx([21, 31, 51])
    people, errors = pooled_person_errors([first, second], bucket="distractor")
    assert people.tolist() == [1, 3, 4] and errors.tolist() == pytest.approx([21, 41, 51])
    assert pooled_person_errors([first], bucket="all")[1].mean() == pytest.approx(35)

    other = _write_run(tmp_path / "other", [0, 1, 2, 3, 4, 5], [1] * 6, ["heavy"] * 6, DISTRACTOR)
    with pytest.raises(DataError, match=r"other/per_sample.csv scores other people than .*s0/per_sample.csv"):
        pooled_person_errors([first, other], bucket="heavy")
    with pytest.raises(DataError, match=r"other/per_sample.csv scores other people than .*s0/per_sample.csv"):
        paired_person_errors([first], [other], bucket="heavy")  # the two models' runs, as a table pairs them
    with pytest.raises(MissingFileError, match=r"nowhere/per_sample.csv not found: evaluate the run first"):
        pooled_person_errors([tmp_path / "nowhere"])
    with pytest.raises(ValueError, match="bucket='severe': use all or one of none, partial, heavy, distractor"):
        pooled_person_errors([first], bucket="severe")


def test_a_table_reports_each_context_rows_interval_against_spin(tmp_path):
    spin = [_write_run(tmp_path / f"spin{k}", list(range(6)), np.arange(6) * 10.0 + 100 + k, BUCKETS, DISTRACTOR)
            for k in (0, 1)]
    ochmr = [_write_run(tmp_path / f"ochmr{k}", list(range(6)), (np.arange(6) * 10.0 + 100 + k) * 0.75, BUCKETS,
                        DISTRACTOR) for k in (0, 1)]
    rows = [{"key": "spin", "label": "SPIN (baseline)", "context": "none", "runs": [{"results": str(f)} for f in spin]},
            {"key": "ochmr_predicted_d2", "label": "OCHMR (predicted context, CoNorm@2)", "context": "predicted",
             "runs": [{"results": str(f)} for f in ochmr]}]
    intervals = _claim_intervals(rows)
    assert set(intervals) == {"ochmr_predicted_d2"} and set(intervals["ochmr_predicted_d2"]) == {"heavy", "distractor"}
    heavy = intervals["ochmr_predicted_d2"]["heavy"]
    assert (heavy["gain"], heavy["low"], heavy["high"], heavy["people"]) == pytest.approx((0.25, 0.25, 0.25, 3))

    result = {"table": "occlusion", "preset": "cpu", "seeds": [0, 1], "seconds": 60.0, "machine": "test",
              "columns": [["MPJPE", "mpjpe"]], "references": [], "claim_intervals": intervals,
              "rows": [{**row, "depths": [], "cells": {"mpjpe": {"mean": 1.0, "sd": 0.0, "values": [1.0, 1.0]}}}
                       for row in rows]}
    text = format_table_document(result)
    assert "- OCHMR (predicted context, CoNorm@2): heavy 25.0 % [25.0, 25.0] (3 people); distractor 25.0 %" in text
    assert "95 % paired bootstrap interval" in text
    # without per-person results (e.g. a run evaluated elsewhere) there is nothing to resample
    assert _claim_intervals([{**rows[0], "runs": [{"results": None}]}, rows[1]]) == {}


def test_the_command_prints_each_bucket_and_refuses_bad_folders_in_one_line(tmp_path, capsys):
    base = _write_run(tmp_path / "spin", list(range(6)), np.arange(6) * 10.0 + 100, BUCKETS, DISTRACTOR)
    ours = _write_run(tmp_path / "ochmr", list(range(6)), (np.arange(6) * 10.0 + 100) * 0.9, BUCKETS, DISTRACTOR)
    main(["--baseline", str(base), "--method", str(ours), "--buckets", "all", "heavy", "partial"])
    out = capsys.readouterr().out
    assert "| all | 6 | 125.0 | 112.5 | 10.0 % | 10.0 to 10.0 % |" in out
    assert "| heavy | 3 | 123.3 | 111.0 | 10.0 % |" in out and "| partial | 1 | - | - | - | - |" in out
    assert gain_table([base], [ours], ["heavy"]).splitlines()[2].startswith("| heavy | 3 |")
    with pytest.raises(SystemExit) as stopped:
        main(["--baseline", str(tmp_path / "missing"), "--method", str(ours)])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: ")
