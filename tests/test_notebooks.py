"""The analysis notebooks execute top to bottom (through nbmake) on the results of tiny runs.

The tiny pipeline run's final checkpoint is also scored again by ``evaluate``: the notebooks show that evaluation
once, as evaluated twice. ``jupyter nbconvert`` (a dev dependency) executes notebooks from the command line.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import REPO_ROOT, TINY_OVERRIDES
from hydra import compose, initialize_config_module

from ochmr_lit.evaluate import evaluate


@pytest.fixture(scope="module")
def evaluated_again(tiny_run, tiny_synthcrowd, tmp_path_factory) -> Path:
    """``evaluate`` of the tiny run's final checkpoint on the same test split, as a user runs it after ``fit``."""
    run_dir, _ = tiny_run
    out = tmp_path_factory.mktemp("evaluated_again")
    with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
        cfg = compose(config_name="evaluate", overrides=[
            "experiment=synthcrowd", f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}", f"run_dir={out}",
            f"++data.root={tiny_synthcrowd}", "logger=csv", *TINY_OVERRIDES])
    evaluate(cfg)
    return out / "results"


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


def test_notebooks_execute_from_the_command_line(tmp_path):
    """``jupyter nbconvert --execute`` runs a notebook on the project's kernel and imports the package."""
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "from ochmr_lit.eval.records import joint_display_name\nprint(joint_display_name('right_ankle'))")])
    nbformat.write(notebook, tmp_path / "tiny.ipynb")
    done = subprocess.run([sys.executable, "-m", "nbconvert", "--to", "notebook", "--execute", "--inplace",
                           "--ExecutePreprocessor.timeout=120", str(tmp_path / "tiny.ipynb")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _outputs(nbformat.read(tmp_path / "tiny.ipynb", as_version=4))[0]["text"] == "right ankle\n"


@pytest.mark.slow
def test_results_notebook_compares_runs_sweeps_and_tables(tiny_run, tiny_tables, evaluated_again, tmp_path):
    run_dir, _ = tiny_run
    root, _, occlusion = tiny_tables
    assert occlusion.returncode == 0, occlusion.stderr[-2000:]
    figures = tmp_path / "figures"
    results = [str(run_dir / "results"), str(evaluated_again), str(root / "runs" / "*" / "seed0" / "results"),
               str(root / "runs" / "*" / "seed0" / "sweep_synthcrowd")]
    notebook = _execute_with_nbmake("results", tmp_path, {
        "OCHMR_RESULTS": ",".join(results), "OCHMR_TABLES": str(root / "*" / "table.md"),
        "OCHMR_FIGURES": str(figures)})
    outputs = _outputs(notebook)
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "\n".join(str(o.get("text", "")) for o in outputs)
    # the tiny pipeline run (tested by fit, then by evaluate: shown once), three table runs, two sweeps
    assert "6 run(s):" in text
    assert f"evaluated 2 times: {evaluated_again}" in text and f"also in {run_dir / 'results'}" in text
    markdown = "\n".join(o.get("data", {}).get("text/markdown", "") for o in outputs)
    assert "Detector-confidence sweep" in markdown and "Occlusion (supplementary table 1" in markdown
    assert "| right ankle |" in markdown and "| head (Human3.6M) |" in markdown and "right_ankle" not in markdown
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 3  # occlusion curve, per-joint bars, sweep
    assert {"mpjpe_vs_occlusion.png", "per_joint_mpjpe.png", "detector_sweep.png"} <= {
        p.name for p in figures.glob("*.png")}


@pytest.mark.slow
def test_qualitative_notebook_draws_best_and_worst(tiny_run, evaluated_again, tmp_path):
    """Of the same evaluation twice it draws the newest (``evaluate``'s), with the checkpoint it was given."""
    run_dir, _ = tiny_run
    notebook = _execute_with_nbmake("qualitative", tmp_path, {
        "OCHMR_RESULTS": f"{run_dir / 'results'},{evaluated_again}"})
    outputs = _outputs(notebook)
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "\n".join(str(o.get("text", "")) for o in outputs)
    assert "1 run(s):" in text and "checkpoint last.ckpt" in text
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 2
    assert {"best_4.png", "worst_4.png"} <= {p.name for p in (evaluated_again.parent / "figures").glob("*.png")}
