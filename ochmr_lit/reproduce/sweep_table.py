"""The detector-confidence sweep table: each row's AP at every detection-score threshold, per dataset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from ochmr_lit.errors import ConfigError, MissingFileError
from ochmr_lit.eval.results_files import atomic_write_text
from ochmr_lit.inference.run import resolve_device
from ochmr_lit.reproduce.mesh_table import seed_summary
from ochmr_lit.reproduce.runs import TableRunner, compose, read_json
from ochmr_lit.reproduce.simulated_detector import write_simulated_detections
from ochmr_lit.reproduce.sweep import sweep_checkpoint
from ochmr_lit.reproduce.tables import Row


def _sweep_inputs(runner: TableRunner, cfg: DictConfig, dataset: str, row: Row) -> tuple[Path, Path, Path]:
    """(annotation file, image folder, detections file) of a sweep dataset (its data as ``row`` trains on)."""
    if runner.preset == "cpu":
        from hydra.utils import instantiate

        fit_cfg = compose("fit", [f"experiment={row.experiment}", *runner.settings(row.overrides)])
        datamodule = instantiate(fit_cfg.data, _convert_="all")
        split_dir = datamodule.split_dir("test")
        ann_file = split_dir / "annotations.json"
        det_file = runner.root / "detections" / f"{dataset}_test_seed{int(cfg.detector_seed)}.json"
        summary_file = det_file.with_suffix(".summary.json")
        if not det_file.is_file():
            written = write_simulated_detections(ann_file, det_file, seed=int(cfg.detector_seed))
            atomic_write_text(summary_file, json.dumps(written, indent=2))
        return ann_file, split_dir / "images", det_file
    det = given_detections(cfg, dataset)
    data_cfg = compose("evaluate", [f"data={dataset}", "experiment=spin_r50", "ckpt_path=unused"]).data
    return Path(data_cfg.ann_files.test), Path(data_cfg.image_roots.test), det


def given_detections(cfg: DictConfig, dataset: str) -> Path:
    """``detections.<dataset>`` of the paper preset's sweep: given, and an existing file."""
    det = (cfg.get("detections") or {}).get(dataset)
    if not det:
        raise ConfigError(f"table=detector_sweep preset=paper needs detections.{dataset}=<COCO results JSON of "
                          f"the {dataset} test split> (Faster R-CNN person boxes with scores)")
    if not Path(det).is_file():
        raise MissingFileError(f"detections.{dataset}={det}: no such file; give the COCO results JSON of the "
                               f"{dataset} test split")
    return Path(det)


def sweep_table(runner: TableRunner, cfg: DictConfig, rows: list[Row], seeds: list[int]) -> dict[str, Any]:
    """Per dataset: boxes kept and AP of each row at every detection-score threshold (seed-averaged)."""
    datasets = {}
    for dataset in runner.spec.sweep_datasets:
        ann_file, image_dir, det_file = _sweep_inputs(runner, cfg, dataset, rows[0])
        protocol = f"detector_sweep_{dataset}"
        per_row = []
        for row in rows:
            per_seed = []
            for seed in seeds:
                record = runner.train_row(row, seed)
                target = runner.run_dir(row.key, seed) / f"sweep_{dataset}"
                done = target / "sweep_columns.json"
                if done.is_file():
                    result = read_json(done)
                else:
                    result = sweep_checkpoint(record["checkpoint"], ann_file, image_dir, det_file, protocol=protocol,
                                              device=str(resolve_device(cfg.get("device"))))
                    _write_sweep_results(target, result, protocol, record, det_file)
                per_seed.append(result)
            ap = [seed_summary([s["AP"][i] * 100.0 for s in per_seed]) for i in range(len(per_seed[0]["threshold"]))]
            per_row.append({"key": row.key, "label": row.label, "ap": ap})
        first = read_json(runner.run_dir(rows[0].key, seeds[0]) / f"sweep_{dataset}" / "sweep_columns.json")
        datasets[dataset] = {"thresholds": first["threshold"], "num_boxes": first["num_boxes"],
                             "detections": str(det_file), "rows": per_row}
    return {"datasets": datasets}


def _write_sweep_results(folder: Path, result: dict[str, list[float]], protocol: str, record: dict[str, Any],
                         det_file: Path) -> None:
    """``detector_sweep.json`` (rows and columns) and a ``metrics.json`` the results notebook reads."""
    rows = [{k: result[k][i] for k in result} for i in range(len(result["threshold"]))]
    run_results = Path(record["results"]) / "metrics.json" if record.get("results") else None
    run_config = read_json(run_results).get("run_config", {}) if run_results and run_results.is_file() else {}
    atomic_write_text(folder / "metrics.json", json.dumps({
        "metrics": {f"kp_{k}": v[0] for k, v in result.items() if k not in ("threshold", "num_boxes")},
        "protocol": {"name": protocol, "detections": str(det_file)}, "run_config": run_config}, indent=2))
    atomic_write_text(folder / "detector_sweep.json", json.dumps(rows, indent=2))
    atomic_write_text(folder / "sweep_columns.json", json.dumps(result, indent=2))  # written last: the sweep is done
