"""What the tiny run's offline W&B runs hold: the validation overlay grid as a media file, and the runs' group.

The offline run of each stage lives in ``<stage run_dir>/wandb/offline-run-*/``: the record log
``run-<id>.wandb`` (run, config and history records) and the media files under ``files/media/``.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import ochmr_lit.lit  # noqa: F401  (torchvision must be imported before the first EGL context: it segfaults after)
from ochmr_lit.vis.render import RendererUnavailableError

#: Record log layout of ``.wandb`` files (LevelDB's log format with W&B's own file header and CRC-32).
_HEADER = struct.Struct("<4sHB")  # b":W&B", magic 0xBEE1, version 0
_CHUNK = struct.Struct("<IHB")  # crc32, length, type (1 full, 2 first, 3 middle, 4 last)
_BLOCK = 32768


def _renderer_or_skip():
    try:
        from ochmr_lit.vis.render import get_context

        get_context()
    except RendererUnavailableError as error:
        pytest.skip(str(error))


def _read_records(path: Path) -> list:
    """The protobuf records of a ``.wandb`` file, every chunk's CRC-32 checked."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    ident, magic, version = _HEADER.unpack_from(data)
    assert (ident, magic, version) == (b":W&B", 0xBEE1, 0), f"{path.name}: not a W&B record log"
    records, pending, pos = [], b"", _HEADER.size
    while pos + _CHUNK.size <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _CHUNK.size:  # block trailer: zero padding
            pos += left
            continue
        crc, length, kind = _CHUNK.unpack_from(data, pos)
        if kind == 0 and length == 0:  # zero padding up to the end of the block
            pos += left
            continue
        chunk = data[pos + _CHUNK.size:pos + _CHUNK.size + length]
        assert zlib.crc32(chunk, zlib.crc32(bytes([kind]))) == crc, f"{path.name}: bad chunk at byte {pos}"
        pos += _CHUNK.size + length
        pending += chunk
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    assert pending == b"", f"{path.name}: truncated record at the end"
    return records


def _offline_run(stage_dir: Path) -> dict:
    """The single offline W&B run of a stage: its folder, run record, config and logged history values."""
    runs = sorted((stage_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, runs
    (log_file,) = runs[0].glob("run-*.wandb")
    run, config, history = None, {}, []
    for record in _read_records(log_file):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
        elif kind == "config":
            config.update({item.key: json.loads(item.value_json) for item in record.config.update})
        elif kind == "history":
            history.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                            for item in record.history.item})
    assert run is not None, f"{log_file}: no run record"
    return {"dir": runs[0], "run": run, "config": config, "history": history}


def test_validation_overlay_grid_is_logged_with_meshes_drawn(tiny_run):
    """One ``val/overlays`` image per validation epoch: rows = the first ``num_vis`` val crops, columns = crop |
    context | mesh; the crop column is exactly the val crops, the context column their centermap overlay, and the
    mesh column the crop with a light-blue mesh over part of it."""
    _renderer_or_skip()
    from hydra.utils import instantiate

    from ochmr_lit.vis.centermaps import denormalise, overlay_maps

    run_dir, _ = tiny_run
    wandb_run = _offline_run(run_dir)
    config = wandb_run["config"]
    size, epochs = config["data"]["crop_size"], config["trainer"]["max_epochs"]
    n = min(config["model"]["num_vis"], config["data"]["eval_batch_size"])
    assert (size, epochs, n) == (64, 1, 4)

    media = sorted((wandb_run["dir"] / "files" / "media" / "images" / "val").glob("overlays_*.png"))
    assert len(media) == epochs  # once per validation epoch (no sanity check: num_sanity_val_steps=0)
    logged = [h for h in wandb_run["history"] if "val/overlays/filenames" in h]
    assert len(logged) == epochs
    entry = logged[0]
    assert entry["val/overlays/filenames"] == [str(media[0].relative_to(wandb_run["dir"] / "files"))]
    assert entry["val/overlays/captions"] == ["crop | context | predicted mesh"]
    grid = cv2.cvtColor(cv2.imread(str(media[0])), cv2.COLOR_BGR2RGB)
    assert grid.shape == (n * size, 3 * size, 3)
    assert (entry["val/overlays/height"], entry["val/overlays/width"]) == grid.shape[:2]

    # the same val samples as the data module's first val batch (the run's own data config)
    datamodule = instantiate(config["data"], _convert_="all")
    batch = next(iter(datamodule.val_dataloader()))
    crops = denormalise(batch["image"][:n])
    context = overlay_maps(batch["image"][:n], batch["centermaps"][:n])
    for i in range(n):
        row = grid[i * size:(i + 1) * size].astype(np.int64)
        crop, maps, mesh = row[:, :size], row[:, size:2 * size], row[:, 2 * size:]
        assert crop.var() > 100.0  # not blank
        np.testing.assert_array_equal(crop, crops[i])
        assert np.abs(maps - context[i]).max() <= 1  # centermap overlay of the batch's context maps
        assert np.any(maps != crop, axis=-1).mean() > 0.05  # the centermaps are visible
        drawn = np.any(mesh != crop, axis=-1)
        assert 0.03 < drawn.mean() < 0.6, drawn.mean()  # a body over part of the crop, not a wash over all of it
        # drawn pixels are the light-blue mesh colour (blue well above red), unlike the crop under them
        blue_minus_red = (mesh[..., 2] - mesh[..., 0])[drawn].mean()
        assert blue_minus_red > 40.0 and blue_minus_red > (crop[..., 2] - crop[..., 0])[drawn].mean() + 40.0
    assert torch.is_tensor(batch["centermaps"]) and batch["centermaps"].shape[1] == 2


def test_pipeline_stages_share_the_experiment_group(tiny_run):
    """Both stages of the default pipeline are W&B runs in one group, the experiment's name; each run is named
    after its own stage and tagged with the dataset (the regressor also with its protocol)."""
    run_dir, _ = tiny_run
    regressor, context = _offline_run(run_dir), _offline_run(run_dir / "context")
    experiment = regressor["config"]["experiment_name"]
    assert experiment == "synthcrowd" and regressor["config"]["task"] == "regressor"
    assert context["config"]["task"] == "context"
    assert regressor["run"].run_group == context["run"].run_group == experiment
    assert regressor["run"].display_name == experiment
    assert context["run"].display_name == context["config"]["experiment_name"] == f"{experiment}_context"
    assert regressor["run"].run_id != context["run"].run_id
    assert {"data:synthcrowd", "protocol:synthcrowd"} <= set(regressor["run"].tags)
    assert "data:synthcrowd" in set(context["run"].tags)
    # the context stage logs its centermap grid the same way
    assert len(list((context["dir"] / "files" / "media" / "images" / "val").glob("centermaps_*.png"))) == 1
