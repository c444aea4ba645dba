"""Predicted context cached as body centres: decoding, the cache file, and equality with the on-the-fly path."""

import numpy as np
import pytest
import torch

from ochmr_lit.data.centermaps import render_centermaps
from ochmr_lit.data.predicted_centres import (
    apply_predicted_centres,
    decode_centres,
    load_predicted_centres,
    predict_centres,
    render_maps,
    rerender_context,
    save_predicted_centres,
)
from ochmr_lit.data.schema import PersonRecord
from ochmr_lit.geometry import crop_affine


def test_decode_recovers_subpixel_centres_of_rendered_maps():
    local = torch.tensor([[7.3, 5.6], [2.0, 12.8]])
    others = [torch.tensor([[7.3, 5.6], [12.0, 3.0]]), torch.tensor([[2.0, 12.8]])]
    maps = render_maps(local, others, 16, 2.0)
    got_local, got_others = decode_centres(maps)
    assert (got_local - local).abs().max() < 1e-3  # the log-parabola is exact for a Gaussian
    assert [len(o) for o in got_others] == [2, 1]
    assert torch.equal(got_others[0][torch.argsort(got_others[0][:, 0])], torch.tensor([[7.0, 6.0], [12.0, 3.0]]))


def test_rerendering_rendered_maps_is_nearly_the_identity():
    maps = render_maps(torch.tensor([[8.0, 8.0]]), [torch.tensor([[8.0, 8.0], [3.0, 4.0]])], 16, 2.0)
    assert (rerender_context(maps) - maps).abs().max() < 1e-6


def test_cache_round_trip_and_errors(tmp_path):
    table = {"a/1/1": (np.array([10.5, 20.25]), np.array([[10.0, 20.0], [40.0, 41.0]])),
             "a/1/2": (np.array([40.0, 41.0]), np.zeros((0, 2)))}
    path = save_predicted_centres(tmp_path / "centres.npz", table, checkpoint="ctx.ckpt")
    loaded = load_predicted_centres(path)
    assert loaded.keys() == table.keys()
    for key, (centre, others) in table.items():
        np.testing.assert_array_equal(loaded[key][0], centre)
        np.testing.assert_array_equal(loaded[key][1], others)
    with pytest.raises(FileNotFoundError, match="data.predicted_centres="):
        load_predicted_centres(tmp_path / "absent.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match=r"other.npz: not a predicted-centres file \(missing arrays"):
        load_predicted_centres(tmp_path / "other.npz")


def _record(ann_id: int, centre, image_centers) -> PersonRecord:
    return PersonRecord(image_path="img.jpg", image_id=1, ann_id=ann_id, box=np.array([0.0, 0.0, 50.0, 80.0]),
                        center=np.asarray(centre, float), image_centers=np.asarray(image_centers, float),
                        dataset="toy")


def test_apply_replaces_centres_and_names_missing_samples():
    records = [_record(1, [25, 40], [[25, 40], [90, 40]]), _record(2, [90, 40], [[25, 40], [90, 40]])]
    table = {records[0].sample_id: (np.array([26.0, 41.0]), np.array([[26.0, 41.0]]))}
    with pytest.raises(KeyError, match=r"cache.npz: no predicted centres for 1 of 2 samples"):
        apply_predicted_centres(records, table, "cache.npz")
    out = apply_predicted_centres(records[:1], table)
    np.testing.assert_array_equal(out[0].center, [26.0, 41.0])
    np.testing.assert_array_equal(out[0].image_centers, [[26.0, 41.0]])
    np.testing.assert_array_equal(records[0].center, [25, 40])  # the input records are left as they were


class _EchoEstimator(torch.nn.Module):
    """Stands in for a perfect context estimator: returns the maps stored for each crop in order."""

    def __init__(self, maps: torch.Tensor):
        super().__init__()
        self.maps = maps
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.maps[: images.shape[0]]


def test_cached_centres_render_the_maps_of_the_on_the_fly_path():
    """Unaugmented crop: rendering the cached image-space centres == re-rendering the estimator's maps."""
    crop, map_size, sigma = 64, 16, 2.0
    centre, other = np.array([120.0, 95.0]), np.array([150.0, 90.0])
    affine = np.asarray(crop_affine(centre, 110.0, crop, 0.0), np.float64)
    truth = render_centermaps(centre, np.stack([centre, other]), affine, crop, map_size, sigma)[None]
    net = _EchoEstimator(truth)
    batch = {"image": torch.zeros(1, 3, crop, crop), "crop_affine": torch.from_numpy(affine)[None],
             "sample_id": ["toy/1/1"]}
    table = predict_centres(net, [batch])
    record = apply_predicted_centres([_record(1, [0, 0], [[0, 0]])], {"toy/1/1": table["toy/1/1"]})[0]
    cached = render_centermaps(record.center, record.image_centers, affine, crop, map_size, sigma)
    on_the_fly = rerender_context(truth, sigma)[0]
    assert (cached - on_the_fly).abs().max() < 1e-4
    np.testing.assert_allclose(table["toy/1/1"][0], centre, atol=1e-2)


def test_pipeline_caches_centres_once_and_they_equal_the_estimator_on_the_fly(tiny_run, tiny_synthcrowd):
    """The default pipeline's regressor reads cached centres; for unaugmented crops they render the maps that
    running the frozen estimator on the crop gives (what inference does)."""
    from ochmr_lit.data import SynthCrowdDataModule
    from ochmr_lit.lit import MeshRegressorModule

    run_dir, outcome = tiny_run
    folder = run_dir / "predicted_centres"
    assert sorted(p.name for p in folder.glob("*.npz")) == ["test.npz", "train.npz", "val.npz"]
    module = MeshRegressorModule.load_from_checkpoint(outcome["checkpoint"], map_location="cpu", weights_only=False)
    module.eval()
    # model.context_input_size=null: the estimator's input side is read from its checkpoint (the stage's 64 px)
    assert module.run_config["model"]["context_input_size"] is None and module.hparams.context_input_size == 64
    data = SynthCrowdDataModule(root=str(tiny_synthcrowd), splits={"train": 4, "val": 2, "test": 2},
                                image_size=(128, 128), crop_size=64, map_size=16, num_workers=0,
                                eval_batch_size=64, predicted_centres=str(folder))
    for split in ("train", "test"):
        cached = load_predicted_centres(folder / f"{split}.npz")
        assert len(cached) == len(data.load_records(split)[0])  # every person of the split, once
    batch = next(iter(data.test_dataloader()))
    bf16 = str(module.run_config["trainer"]["precision"]).startswith("bf16")  # as the pipeline computed the cache
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        on_the_fly = module.context_for(batch)
    assert on_the_fly.shape == batch["centermaps"].shape
    assert (on_the_fly - batch["centermaps"]).abs().max() < 1e-3


def test_unaugmented_loader_reads_the_whole_split_on_every_ddp_rank(tiny_synthcrowd, monkeypatch):
    """The centre cache is built on each rank from every person (the training loaders are split over ranks)."""
    from ochmr_lit.data import SynthCrowdDataModule

    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 1)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 2)
    data = SynthCrowdDataModule(root=str(tiny_synthcrowd), splits={"train": 4, "val": 2, "test": 2},
                                image_size=(128, 128), crop_size=64, map_size=16, num_workers=0, eval_batch_size=64)
    people = len(data.load_records("val")[0])
    assert 0 < len(data.val_dataloader().sampler) < people  # rank 1 of 2 evaluates its share only
    indices = torch.cat([batch["index"] for batch in data.unaugmented_loader("val")])
    assert sorted(indices.tolist()) == list(range(people))
