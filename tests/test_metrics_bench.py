"""The benchmark command: section registry, table, JSON rows whose results agree with the references."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ochmr_lit.bench import SECTIONS, get_section
from ochmr_lit.bench.__main__ import main


def test_metrics_section_quick(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    assert main(["--only", "metrics", "--quick", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| metrics | PA-MPJPE, 10000 samples x 14 joints |" in printed
    rows = json.loads(out.read_text())["rows"]
    assert [r["name"].split(",")[0] for r in rows] == ["PA-MPJPE", "MPJPE", "keypoint AP (COCO)"]
    for r in rows:
        assert r["ours_s"] > 0 and r["reference_s"] > 0
        assert r["speedup"] == pytest.approx(r["reference_s"] / r["ours_s"])
    assert rows[0]["agreement"] < 1e-4 and rows[1]["agreement"] < 1e-4  # mm
    assert rows[2]["agreement"] < 1e-12  # AP identical to the results-file route
    assert rows[0]["target_speedup"] == 20.0


def test_unknown_section_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert "metrics" in SECTIONS
    with pytest.raises(SystemExit):
        main(["--only", "metrics,nope"])
    assert "unknown section(s) ['nope']" in capsys.readouterr().err
    with pytest.raises(KeyError, match="known"):
        get_section("nope")
