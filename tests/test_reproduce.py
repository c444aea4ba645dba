"""``python -m ochmr_lit.reproduce``: what each table trains, the runs it shares and reuses, the files it writes."""

import json
import logging
import re

import pytest
from conftest import run_reproduce, tiny_table_settings

from ochmr_lit.reproduce.__main__ import load_settings
from ochmr_lit.reproduce.formatting import format_cell, mpjpe_gain
from ochmr_lit.reproduce.runs import compose
from ochmr_lit.reproduce.tables import PRESETS, TABLES, default_seeds, table_rows


def test_rows_of_each_table():
    occlusion = table_rows("occlusion", "cpu")
    assert [(r.key, r.context, r.depths) for r in occlusion] == [
        ("spin", "none", ()), ("ochmr_gt_d2", "gt", (2,)), ("ochmr_predicted_d2", "predicted", (2,))]
    depth = table_rows("conorm_depth", "cpu")
    assert [r.key for r in depth] == ["spin", "ochmr_gt_d1", "ochmr_gt_d2", "ochmr_gt_d3", "ochmr_gt_d4"]
    # the same model is one run, whichever table asks for it
    assert depth[2] == occlusion[1] and depth[0] == occlusion[0]
    assert [r.key for r in table_rows("detector_sweep", "cpu")] == ["spin", "ochmr_predicted_d2"]
    assert default_seeds("occlusion") == [0, 1] and default_seeds("conorm_depth") == [0]
    with pytest.raises(KeyError, match="table='nope': unknown table; choose one of occlusion"):
        table_rows("nope", "cpu")
    with pytest.raises(KeyError, match="preset='gpu': unknown preset"):
        table_rows("occlusion", "gpu")


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("table", TABLES)
def test_every_row_composes_to_the_model_it_names(table, preset, tmp_path):
    for row in table_rows(table, preset):
        overrides = [o.replace("@CONTEXT_CHECKPOINT@", str(tmp_path / "context.ckpt")) for o in row.overrides]
        cfg = compose("fit", [f"experiment={row.experiment}", *overrides, f"run_dir={tmp_path}"])
        assert cfg.task == "regressor"
        assert list(cfg.model.conorm_depths) == list(row.depths)
        assert cfg.model.context_source == row.context
        if row.context == "predicted":
            assert cfg.model.context_checkpoint == str(tmp_path / "context.ckpt")
        assert cfg.model.backbone == ("resnet18" if preset == "cpu" else "resnet50")


def test_the_default_cpu_budget_trains_every_row_on_its_own_larger_dataset(tmp_path, monkeypatch):
    """budget.cpu of reproduce.yaml: 8,000 training images for 4 epochs at 96 px, composed into every row of every
    table, its dataset in a cache folder of its own (the default experiment's 800 images stay where they are)."""
    from hydra.utils import instantiate

    from ochmr_lit.config_checks import check_augmentation, check_regressor_model, check_trainer

    monkeypatch.setenv("OCHMR_CACHE", str(tmp_path))
    budget = list(load_settings(["table=occlusion"]).budget.cpu)
    assert budget == ["data.splits.train=8000", "trainer.max_epochs=4", "data.crop_size=96", "data.map_size=24"]
    for table in TABLES:
        for row in table_rows(table, "cpu"):
            overrides = [o.replace("@CONTEXT_CHECKPOINT@", str(tmp_path / "context.ckpt")) for o in row.overrides]
            cfg = compose("fit", [f"experiment={row.experiment}", *overrides, *budget, f"run_dir={tmp_path}"])
            assert dict(cfg.data.splits) == {"train": 8000, "val": 60, "test": 80} and cfg.trainer.max_epochs == 4
            assert (cfg.data.crop_size, cfg.data.map_size) == (96, 24)
            check_trainer(cfg.trainer)
            check_augmentation(cfg.data.augment)
            check_regressor_model(cfg.model)
            data = instantiate(cfg.data, _convert_="all")
            assert data.root == tmp_path / "synthcrowd" / "s0_256x256_train8000"


def test_cells_and_mpjpe_gain():
    assert format_cell({"mean": 101.25, "sd": 2.5, "values": [98.75, 103.75]}) == "101.2 ± 2.5"
    assert format_cell({"mean": 101.25, "sd": 0.0, "values": [101.25]}) == "101.2"
    assert format_cell({"mean": float("nan"), "sd": float("nan"), "values": [float("nan")]}) == "-"
    cell = {"mpjpe_heavy": {"mean": 200.0, "sd": 0.0, "values": [180.0, 220.0]}}
    ours = {"mpjpe_heavy": {"mean": 150.0, "sd": 0.0, "values": [144.0, 156.0]}}
    result = {"rows": [{"key": "spin", "cells": cell}, {"key": "ochmr_predicted_d2", "cells": ours}]}
    gain = mpjpe_gain(result)
    assert gain["of_means"] == pytest.approx(0.25)
    assert gain["per_seed"] == pytest.approx([0.2, 1 - 156 / 220])
    assert mpjpe_gain({"rows": [{"key": "spin", "cells": cell}]}) is None


def test_bad_settings_stop_with_one_line():
    done = run_reproduce("table=occlusion", "epochs=3")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: unknown or malformed setting 'epochs'")
    done = run_reproduce("preset=cpu")
    assert done.returncode == 2 and "table=<occlusion|conorm_depth|detector_sweep> is required" in done.stderr
    done = run_reproduce("table=occlusion", "preset=gpu")
    assert done.returncode == 2 and "unknown preset; choose one of cpu, paper" in done.stderr


@pytest.mark.parametrize("seeds, message", [
    ("[0,0]", "seeds=[0, 0]: a seed is listed twice"), ("[a]", "seeds=['a']: every seed is a whole number >= 0"),
    ("[-1]", "seeds=[-1]: every seed"), ("[1.5]", "seeds=[1.5]: every seed"), ("[true]", "seeds=[True]: every seed")])
def test_seeds_are_distinct_whole_numbers_before_anything_trains(seeds, message):
    from ochmr_lit.errors import ConfigError

    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(["table=occlusion", f"seeds={seeds}"])
    assert list(load_settings(["table=occlusion", "seeds=[0,2]"]).seeds) == [0, 2]


@pytest.mark.slow
def test_tiny_tables_share_runs_and_write_their_files(tiny_tables, tiny_synthcrowd):
    root, done, occlusion = tiny_tables
    assert done.returncode == 0, done.stderr[-3000:]
    sweep = json.loads((root / "detector_sweep" / "table.json").read_text())
    block = sweep["datasets"]["synthcrowd"]
    detections = json.loads((root / "detections" / "synthcrowd_test_seed0.json").read_text())
    # boxes kept at each threshold = the simulated detections scoring at least the threshold
    assert block["num_boxes"] == [sum(d["score"] >= t for d in detections) for t in block["thresholds"]]
    assert block["thresholds"][0] == 0.0 and block["thresholds"][-1] == 0.99
    for row in block["rows"]:
        assert all(0.0 <= cell["mean"] <= 100.0 for cell in row["ap"])
    for key in ("spin", "ochmr_predicted_d2"):
        rows = json.loads((root / "runs" / key / "seed0" / "sweep_synthcrowd" / "detector_sweep.json").read_text())
        assert [r["num_boxes"] for r in rows] == block["num_boxes"]
    assert "| 0.00 | " in (root / "detector_sweep" / "table.md").read_text()

    # the occlusion table reuses the sweep's SPIN and OCHMR (predicted) runs and trains only OCHMR (GT)
    done = occlusion
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("reusing") >= 3  # spin, the context estimator and ochmr_predicted_d2
    assert "training ochmr_gt_d2 (seed 0)" in done.stderr and "training spin" not in done.stderr
    table = json.loads((root / "occlusion" / "table.json").read_text())
    trained = [row for row in table["rows"] if not row.get("diagnostic")]
    assert [row["key"] for row in trained] == ["spin", "ochmr_gt_d2", "ochmr_predicted_d2"]
    for row in trained:
        run = row["runs"][0]
        metrics = json.loads((root / "runs" / row["key"] / "seed0" / "results" / "metrics.json").read_text())
        assert row["cells"]["mpjpe"]["mean"] == pytest.approx(metrics["metrics"]["mpjpe"])
        assert row["cells"]["kp_AP"]["mean"] == pytest.approx(100 * metrics["metrics"]["kp_AP"])
        assert run["checkpoint"].endswith(".ckpt")
    text = (root / "occlusion" / "table.md").read_text()
    assert "| SPIN (baseline) | none | - |" in text and "Heavy-occlusion MPJPE of OCHMR" in text
    assert "Distractor-bucket MPJPE of OCHMR" in text and " | MPJPE distractor | " in text
    # the context diagnostics: each OCHMR row again with another person's maps and with zero maps, the row on
    # predicted context also with the annotations' maps, from the evaluation of the same checkpoint
    diagnostics = {row["key"]: row for row in table["rows"] if row.get("diagnostic")}
    assert set(diagnostics) == {f"{key}@{mode}" for key in ("ochmr_gt_d2", "ochmr_predicted_d2")
                                for mode in ("shuffled", "zeroed")} | {"ochmr_predicted_d2@exact"}
    for key, row in diagnostics.items():
        run, mode = key.split("@")
        evaluated = json.loads((root / "runs" / run / "seed0" / "eval_context" / "done.json").read_text())
        assert evaluated["checkpoint"] == next(r for r in trained if r["key"] == run)["runs"][0]["checkpoint"]
        assert row["cells"]["mpjpe"]["mean"] == pytest.approx(evaluated["context_diagnostics"][mode]["mpjpe"])
        assert row["context"] == f"{trained[1 if run == 'ochmr_gt_d2' else 2]['context']}, {mode}"
    assert "| OCHMR (GT context, CoNorm@2), context shuffled | gt, shuffled | 2 |" in text
    assert "| OCHMR (predicted context, CoNorm@2), context exact | predicted, exact | 2 |" in text
    assert 'The rows "context exact" give a model trained on predicted context' in text
    # the reference rows come from the first run's test evaluation (they do not depend on the weights)
    first = json.loads((root / "runs" / "spin" / "seed0" / "results" / "metrics.json").read_text())["references"]
    references = {row["key"]: row for row in table["references"]}
    assert set(references) == {"constant", "oracle"}
    for key in ("constant", "oracle"):
        assert references[key]["cells"]["mpjpe"]["mean"] == pytest.approx(first[key]["mpjpe"])
    assert "| constant: mean pose, shape and camera | - | - |" in text and " | vs constant |" in text
    assert "Seeds: 0." in text
    # each run's training time (its processes added up) is kept and printed per row
    for row in trained:
        assert 0.0 < row["runs"][0]["training_seconds"] <= row["runs"][0]["seconds"]
    assert "Training time of the rows' runs in minutes, per seed" in text and "min in all." in text

    # a run folder of other settings is refused, naming the file
    other = tiny_table_settings(root.parent, tiny_synthcrowd, "regressor_overrides=[model.backbone=resnet34]")
    done = run_reproduce("table=occlusion", "seeds=[0]", *other)
    assert done.returncode == 2
    assert "job.json: this run folder holds a run of other settings" in done.stderr


def test_paper_evaluations_compose_with_their_data_and_protocol(tmp_path):
    from ochmr_lit.eval.protocols import get_protocol
    from ochmr_lit.reproduce.tables import PRESET_SPECS

    spec = PRESET_SPECS["paper"]
    assert [e.protocol for e in spec.evaluations["occlusion"]] == ["3dpw_pc", "ochuman_ap", "3dpw_occ", "3doh"]
    for table, evaluations in spec.evaluations.items():
        for row in table_rows(table, "paper"):
            for e in evaluations:
                cfg = compose("evaluate", [f"experiment={row.experiment}", f"data={e.data}", f"protocol={e.protocol}",
                                           f"ckpt_path={tmp_path / 'model.ckpt'}", f"run_dir={tmp_path}"])
                assert cfg.protocol == e.protocol and cfg.data._target_.startswith("ochmr_lit.data")
                assert e.metric in get_protocol(e.protocol).metrics or e.metric == "kp_AP"
    assert spec.sweep_datasets == ("coco", "crowdpose", "ochuman")


def test_paper_sweep_needs_detection_files(tmp_path):
    done = run_reproduce("table=detector_sweep", "preset=paper", f"out={tmp_path}")
    assert done.returncode == 2
    assert "needs detections.coco=<COCO results JSON" in done.stderr.strip().splitlines()[-1]


def test_a_given_context_checkpoint_must_be_a_context_estimator(tmp_path):
    missing = tmp_path / "context.ckpt"
    done = run_reproduce("table=occlusion", f"out={tmp_path}", f"context_checkpoint={missing}")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith(f"error: context_checkpoint={missing}: no such file")
    assert not (tmp_path / "cpu").exists()  # refused before any run starts


@pytest.mark.slow
def test_a_table_reads_a_given_context_estimator_instead_of_training_one(tiny_tables, tiny_synthcrowd, tmp_path):
    root, sweep, _ = tiny_tables
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    trained = json.loads((root / "runs" / "context" / "seed0" / "done.json").read_text())["checkpoint"]
    regressor = json.loads((root / "runs" / "spin" / "seed0" / "done.json").read_text())["checkpoint"]
    settings = tiny_table_settings(tmp_path, tiny_synthcrowd)

    done = run_reproduce("table=detector_sweep", *settings, f"context_checkpoint={regressor}")
    assert done.returncode == 2 and "is a mesh regressor's checkpoint, not a context estimator's" in done.stderr

    done = run_reproduce("table=detector_sweep", *settings, f"context_checkpoint={trained}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert not (tmp_path / "cpu" / "runs" / "context").exists() and "training context" not in done.stderr
    job = json.loads((tmp_path / "cpu" / "runs" / "ochmr_predicted_d2" / "seed0" / "job.json").read_text())
    assert f"model.context_checkpoint={trained}" in job["overrides"]
    table = json.loads((tmp_path / "cpu" / "detector_sweep" / "table.json").read_text())
    assert table["context_checkpoint"] == trained
    text = (tmp_path / "cpu" / "detector_sweep" / "table.md").read_text()
    assert f"context_checkpoint={trained}" in text and "not trained by this command" in text


def test_a_table_trains_seed_by_seed_and_shows_its_finished_seeds_until_the_rest_are_done(tmp_path, monkeypatch,
                                                                                          caplog):
    """Every row of seed 0 before any of seed 1; table.partial.md compares every row after seed 0 and goes once
    table.md is written. Training and evaluation are stood in for: each run's test MPJPE is 100 + its order."""
    from ochmr_lit.reproduce import run as reproduce_run
    from ochmr_lit.reproduce import runs as table_runs

    trained, partial_seen, partial_text = [], [], []
    folder = tmp_path / "cpu" / "occlusion"

    def fake_train(self, key, experiment, seed, overrides, context=False):
        if (key, seed) not in trained:
            if key != "context":
                partial_seen.append((folder / "table.partial.md").is_file())
            if (key, seed) == ("spin", 1):
                partial_text.append((folder / "table.partial.md").read_text())
            trained.append((key, seed))
        order = trained.index((key, seed))
        return {"checkpoint": str(tmp_path / f"{key}{seed}.ckpt"), "seconds": 60.0, "training_seconds": 60.0,
                "metrics": {"mpjpe": 100.0 + order, "pa_mpjpe": 50.0}, "results": None}

    def fake_diagnose(self, row, seed, checkpoint, modes=table_runs.DIAGNOSTIC_MODES):
        return {mode: {"mpjpe": 200.0, "pa_mpjpe": 80.0} for mode in modes}

    monkeypatch.setattr(table_runs.TableRunner, "train", fake_train)
    monkeypatch.setattr(table_runs.TableRunner, "diagnose", fake_diagnose)
    cfg = load_settings(["table=occlusion", f"out={tmp_path}", "seeds=[0,1]"])
    with caplog.at_level(logging.INFO, logger="ochmr_lit.reproduce.run"):
        result = reproduce_run.run_table(cfg)
    progress = [r.getMessage() for r in caplog.records if r.getMessage().startswith("run ")]
    assert progress[0] == "run 1 of 6: spin, seed 0" and progress[-1] == "run 6 of 6: ochmr_predicted_d2, seed 1"

    assert trained == [("spin", 0), ("ochmr_gt_d2", 0), ("context", 0), ("ochmr_predicted_d2", 0),
                       ("spin", 1), ("ochmr_gt_d2", 1), ("ochmr_predicted_d2", 1)]
    # no partial table before seed 0 is done for every row, one from then on
    assert partial_seen == [False, False, False, True, True, True]
    assert "(partial)" in partial_text[0] and "seed 1 is still to train" in partial_text[0]
    assert "| OCHMR (predicted context, CoNorm@2) | predicted | 2 | - | - | - | - | 103.0 |" in partial_text[0]
    assert not (folder / "table.partial.md").exists() and not (folder / "table.partial.json").exists()
    spin = next(row for row in result["rows"] if row["key"] == "spin")
    assert spin["cells"]["mpjpe"]["values"] == [100.0, 104.0] and "partial_of" not in result  # seed 1 ran 5th
    assert "(partial)" not in (folder / "table.md").read_text()


def test_a_partial_table_says_which_seeds_it_holds_and_which_are_to_come():
    from ochmr_lit.reproduce.formatting import format_table_document

    result = {"table": "occlusion", "preset": "cpu", "seeds": [0], "partial_of": [0, 1], "seconds": 120.0,
              "machine": "x86_64", "columns": [["MPJPE all", "mpjpe"]], "references": [],
              "rows": [{"key": "spin", "label": "SPIN (baseline)", "context": "none", "depths": [], "runs": [],
                        "cells": {"mpjpe": {"mean": 101.0, "sd": 0.0, "values": [101.0]}}, "counts": {}}]}
    text = format_table_document(result)
    assert text.startswith("### Occlusion (supplementary table 1 in miniature), preset `cpu` (partial)")
    assert "seeds=[0,1]" in text  # the command that finishes the table
    assert "**Partial**: every row is trained for seeds 0; seed 1 is still to train" in text
    assert "| 101.0 |" in text


def test_diagnostics_read_the_rows_data_and_are_redone_when_made_otherwise(tmp_path, monkeypatch):
    """The diagnostics evaluate the data the row trained on (the budget's crops too). One finished with the same
    settings and modes is reused; one made before ``exact`` existed, or with other settings, is evaluated again."""
    from ochmr_lit.reproduce import runs as table_runs

    budget = ["trainer.max_epochs=12", "data.crop_size=128", "data.map_size=32"]
    runner = table_runs.TableRunner("cpu", tmp_path, budget=budget, context_checkpoint=str(tmp_path / "c.ckpt"))
    rows = {row.key: row for row in table_rows("occlusion", "cpu")}
    old = {"shuffled": {"mpjpe": 190.0}, "zeroed": {"mpjpe": 250.0}}
    written = {"ochmr_gt_d2": {"overrides": [*rows["ochmr_gt_d2"].overrides, *budget]},  # this version's
               "ochmr_predicted_d2": {}}  # an earlier version's: no exact, no settings
    for key, extra in written.items():
        folder = runner.run_dir(key, 0) / "eval_context"
        folder.mkdir(parents=True)
        (folder / "done.json").write_text(json.dumps({"checkpoint": "x.ckpt", "context_diagnostics": old, **extra}))
    evaluated = []

    def fake_evaluate(cfg):
        evaluated.append((cfg.run_dir, list(cfg.context_modes), cfg.data.crop_size, cfg.data.map_size))
        return {"results": {"context_diagnostics": {mode: {"mpjpe": 100.0} for mode in cfg.context_modes}}}

    monkeypatch.setattr(table_runs, "run_evaluate", fake_evaluate)
    assert runner.diagnose(rows["ochmr_gt_d2"], 0, "x.ckpt") == old and evaluated == []
    again = runner.diagnose(rows["ochmr_predicted_d2"], 0, "x.ckpt")
    assert evaluated == [(str(runner.run_dir("ochmr_predicted_d2", 0) / "eval_context"),
                          ["exact", "shuffled", "zeroed"], 128, 32)]
    assert set(again) == {"exact", "shuffled", "zeroed"}
    assert runner.diagnose(rows["ochmr_predicted_d2"], 0, "x.ckpt") == again and len(evaluated) == 1  # kept
    other = table_runs.TableRunner("cpu", tmp_path, budget=["data.crop_size=96", "data.map_size=24"])
    other.diagnose(rows["ochmr_gt_d2"], 0, "x.ckpt")
    assert evaluated[-1][1:] == (["shuffled", "zeroed"], 96, 24)
