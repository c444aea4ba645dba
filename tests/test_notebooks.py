"""The analysis notebooks execute top to bottom on the results of a tiny run."""

import nbformat
import pytest
from conftest import REPO_ROOT
from nbclient import NotebookClient


@pytest.mark.slow
@pytest.mark.parametrize("name", ["results", "qualitative"])
def test_notebook_executes_on_a_tiny_run(name, tiny_run, monkeypatch):
    run_dir, _ = tiny_run
    monkeypatch.setenv("OCHMR_RESULTS", str(run_dir / "results"))
    notebook = nbformat.read(REPO_ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(REPO_ROOT / "notebooks")}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 2  # results: occlusion curve + per-joint bars; qualitative: best and worst grids
    written = sorted(p.name for p in (run_dir / "figures").glob("*.png"))
    expected = {"results": {"mpjpe_vs_occlusion.png", "per_joint_mpjpe.png"},
                "qualitative": {"best_4.png", "worst_4.png"}}[name]
    assert expected <= set(written)
