"""Per-occlusion-bucket metric tables of validation: numbers, and the W&B table of a tiny run."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import TINY_OVERRIDES

from ochmr_lit.eval.bucket_tables import BUCKET_COLUMNS, BUCKET_ROWS, bucket_table, log_bucket_table, markdown_table
from ochmr_lit.eval.mesh_evaluation import MeshEvaluation


def _evaluation_with_known_samples() -> MeshEvaluation:
    """Six people (occlusion 0.0, 0.05, 0.2, 0.3, 0.5, NaN; distractor 1, 0, NaN, 0, 1, 1), predictions offset
    from the GT mesh."""
    from ochmr_lit.body import BodyModel

    body = BodyModel(None)
    n = 6
    gen = torch.Generator().manual_seed(0)
    pose = torch.randn(n, 72, generator=gen) * 0.2
    betas = torch.randn(n, 10, generator=gen) * 0.5
    batch = {"has_smpl": torch.ones(n, dtype=torch.bool), "smpl_pose": pose, "smpl_betas": betas,
             "gender": torch.tensor([0, 1, 2, 0, 1, 2]), "index": torch.arange(n),
             "occlusion_ratio": torch.tensor([0.0, 0.05, 0.2, 0.3, 0.5, math.nan]),
             "distractor": torch.tensor([1.0, 0.0, math.nan, 0.0, 1.0, 1.0]), "dataset": ["synthcrowd"] * n}
    from ochmr_lit.geometry import axis_angle_to_rotmat

    with torch.no_grad():
        other = body(axis_angle_to_rotmat((pose + torch.randn(n, 72, generator=gen) * 0.3).view(n, 24, 3)),
                     betas + torch.randn(n, 10, generator=gen))
    evaluation = MeshEvaluation("synthcrowd")
    evaluation.update(batch, {"vertices": other.vertices}, body)
    return evaluation


def test_table_numbers_are_the_per_sample_errors_averaged_by_bucket():
    evaluation = _evaluation_with_known_samples()
    metrics = evaluation.compute()
    rows = evaluation.per_sample()
    columns, table = bucket_table(metrics, num_people=len(rows["sample_index"]))
    assert columns == list(BUCKET_COLUMNS) == ["bucket", "people", "MPJPE (mm)", "PA-MPJPE (mm)", "PVE (mm)"]
    assert [row[0] for row in table] == list(BUCKET_ROWS) == ["none", "partial", "heavy", "all", "distractor"]
    expected_people = {"none": 2, "partial": 2, "heavy": 1, "all": 6, "distractor": 3}
    chosen_by = {"all": np.ones(6, bool), "distractor": rows["distractor"] == 1.0}
    for row in table:
        bucket = row[0]
        chosen = chosen_by.get(bucket, rows["occlusion_bucket"] == bucket)
        assert row[1] == expected_people[bucket] == int(chosen.sum())
        for value, name in zip(row[2:], ("mpjpe_mm", "pa_mpjpe_mm", "pve_mm"), strict=True):
            assert value == pytest.approx(float(rows[name][chosen].mean()), rel=1e-9)
            assert value > 1.0  # millimetres, and the predictions are off
    # the NaN-occlusion person is in "all" (and, flagged, in "distractor"); the NaN-flag person in no distractor
    assert rows["occlusion_bucket"].tolist().count("unknown") == 1
    np.testing.assert_array_equal(rows["distractor"], [1.0, 0.0, np.nan, 0.0, 1.0, 1.0])
    assert metrics["count_distractor"] == 3 and sum(metrics[f"count_{b}"] for b in ("none", "partial", "heavy")) == 5


def test_empty_buckets_and_missing_counts():
    metrics = {"mpjpe": 80.0, "pa_mpjpe": 50.0, "pve": 95.0, "count_none": 3, "mpjpe_none": 70.0,
               "pa_mpjpe_none": 40.0, "pve_none": 90.0, "count_partial": 0, "mpjpe_partial": math.nan,
               "pa_mpjpe_partial": math.nan, "pve_partial": math.nan}
    _, rows = bucket_table(metrics)
    assert rows == [["none", 3, 70.0, 40.0, 90.0], ["partial", 0, None, None, None],
                    ["heavy", 0, None, None, None], ["all", 3, 80.0, 50.0, 95.0], ["distractor", 0, None, None, None]]
    # the distractor row is not part of "all"
    _, rows = bucket_table({**metrics, "count_distractor": 2, "mpjpe_distractor": 99.0,
                            "pa_mpjpe_distractor": 60.0, "pve_distractor": 101.0})
    assert rows[3:] == [["all", 3, 80.0, 50.0, 95.0], ["distractor", 2, 99.0, 60.0, 101.0]]
    assert markdown_table(BUCKET_COLUMNS, rows).splitlines()[3] == "| partial | 0 | - | - | - |"
    with pytest.raises(KeyError, match=r"metrics lack \['pve'\]; pass MeshEvaluation.compute\(\) output"):
        bucket_table({"mpjpe": 1.0, "pa_mpjpe": 1.0})


def test_tables_go_to_wandb_and_tensorboard_only():
    calls = []

    class WandbLogger:
        def log_table(self, **kwargs):
            calls.append(("wandb", kwargs))

    class Experiment:
        def add_text(self, key, text, global_step):
            calls.append(("tb", key, text, global_step))

    class TensorBoardLogger:
        experiment = Experiment()

    class CSVLogger:
        pass

    columns, rows = bucket_table({"mpjpe": 1.0, "pa_mpjpe": 2.0, "pve": 3.0, "count_none": 1, "mpjpe_none": 1.0,
                                  "pa_mpjpe_none": 2.0, "pve_none": 3.0})
    used = log_bucket_table([CSVLogger(), WandbLogger(), TensorBoardLogger()], "val/t", columns, rows, step=7)
    assert used == ["WandbLogger", "TensorBoardLogger"]
    assert calls[0] == ("wandb", {"key": "val/t", "columns": columns, "data": rows, "step": 7})
    assert calls[1][:2] == ("tb", "val/t") and calls[1][3] == 7
    assert "| all | 1 | 1.0 | 2.0 | 3.0 |" in calls[1][2]


def test_tiny_fit_writes_the_table_to_the_offline_wandb_run(tmp_path, tiny_synthcrowd):
    from hydra import compose, initialize_config_module

    from ochmr_lit.runner import run_fit

    with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
        cfg = compose(config_name="fit", overrides=[
            "experiment=synthcrowd_spin", f"run_dir={tmp_path}", f"++data.root={tiny_synthcrowd}", "logger=wandb",
            "trainer.max_epochs=1", "test_after_fit=false", "callbacks=none", "model.num_vis=0",
            "trainer.enable_progress_bar=false", *TINY_OVERRIDES])
    run_fit(cfg)
    runs = sorted((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, runs
    tables = sorted(runs[0].glob("files/media/table/val/occlusion_buckets_*.table.json"))
    assert len(tables) == 1, sorted(p.relative_to(runs[0]) for p in runs[0].rglob("*") if p.is_file())
    table = json.loads(tables[0].read_text())
    assert table["columns"] == list(BUCKET_COLUMNS)
    assert [row[0] for row in table["data"]] == list(BUCKET_ROWS)
    people = [row[1] for row in table["data"]]
    # tiny SynthCrowd val: every person is in one bucket, and all of them are in "all"
    assert people[3] == sum(people[:3]) > 0


def test_results_table_starts_with_the_bucket_summary(tmp_path):
    from ochmr_lit.eval.results_files import summary_table, write_results

    metrics = {"mpjpe": 80.0, "pa_mpjpe": 50.0, "pve": 95.0, "count_none": 3, "mpjpe_none": 70.0,
               "pa_mpjpe_none": 45.0, "pve_none": 85.0, "count_partial": 0, "mpjpe_partial": float("nan"),
               "pa_mpjpe_partial": float("nan"), "pve_partial": float("nan"), "count_heavy": 1,
               "mpjpe_heavy": 110.0, "pa_mpjpe_heavy": 65.0, "pve_heavy": 125.0, "count_distractor": 2,
               "mpjpe_distractor": 120.0, "pa_mpjpe_distractor": 70.0, "pve_distractor": 130.0, "kp_AP": 0.256}
    text = write_results(tmp_path, metrics, None, {"name": "synthcrowd"}).joinpath("table.md").read_text()
    assert text.startswith("### protocol: synthcrowd\n\n| bucket | people | MPJPE (mm) |")
    assert "| heavy | 1 | 110.0 | 65.0 | 125.0 |" in text and "| partial | 0 | - | - | - |" in text
    assert "| all | 4 | 80.0 | 50.0 | 95.0 |\n| distractor | 2 | 120.0 | 70.0 | 130.0 |" in text
    assert "keypoint AP: AP 25.6 %" in text
    assert "| kp_AP | 0.2560 |" in text  # the full list follows
    assert summary_table({"kp_AP": 0.3}) is None  # a keypoint-only evaluation has no bucket summary
