"""The analysis notebooks execute top to bottom (through nbmake) on the results of tiny runs."""

import os
import shutil
import subprocess
import sys

import nbformat
import pytest
from conftest import REPO_ROOT


def _execute_with_nbmake(name: str, tmp_path, env: dict) -> nbformat.NotebookNode:
    """Run ``notebooks/<name>.ipynb`` with ``pytest --nbmake`` on a copy; return the executed copy."""
    copy = tmp_path / f"{name}.ipynb"
    shutil.copy(REPO_ROOT / "notebooks" / f"{name}.ipynb", copy)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbmake",
                           "--nbmake-timeout=600", "--overwrite", str(copy)], cwd=tmp_path,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    return nbformat.read(copy, as_version=4)


def _outputs(notebook: nbformat.NotebookNode) -> list[dict]:
    return [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]


@pytest.mark.slow
def test_results_notebook_compares_runs_sweeps_and_tables(tiny_run, tiny_tables, tmp_path):
    run_dir, _ = tiny_run
    root, _, occlusion = tiny_tables
    assert occlusion.returncode == 0, occlusion.stderr[-2000:]
    figures = tmp_path / "figures"
    results = [str(run_dir / "results"), str(root / "runs" / "*" / "seed0" / "results"),
               str(root / "runs" / "*" / "seed0" / "sweep_synthcrowd")]
    notebook = _execute_with_nbmake("results", tmp_path, {
        "OCHMR_RESULTS": ",".join(results), "OCHMR_TABLES": str(root / "*" / "table.md"),
        "OCHMR_FIGURES": str(figures)})
    outputs = _outputs(notebook)
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "\n".join(str(o.get("text", "")) for o in outputs)
    assert "6 run(s):" in text  # the tiny pipeline run, three table runs, two sweeps
    markdown = "\n".join(o.get("data", {}).get("text/markdown", "") for o in outputs)
    assert "Detector-confidence sweep" in markdown and "Occlusion (supplementary table 1" in markdown
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 3  # occlusion curve, per-joint bars, sweep
    assert {"mpjpe_vs_occlusion.png", "per_joint_mpjpe.png", "detector_sweep.png"} <= {
        p.name for p in figures.glob("*.png")}


@pytest.mark.slow
def test_qualitative_notebook_draws_best_and_worst(tiny_run, tmp_path):
    run_dir, _ = tiny_run
    notebook = _execute_with_nbmake("qualitative", tmp_path, {"OCHMR_RESULTS": str(run_dir / "results")})
    outputs = _outputs(notebook)
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 2
    assert {"best_4.png", "worst_4.png"} <= {p.name for p in (run_dir / "figures").glob("*.png")}
