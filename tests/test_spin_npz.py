"""SPIN-format npz files read into the same records as the COCO-format files of the same people."""

import numpy as np
import pytest

from ochmr_lit.data.datamodules.mixed import RatioSampler, source_probabilities
from ochmr_lit.data.readers.spin_npz import load_spin_npz_records
from ochmr_lit.data.readers.synthcrowd import load_synthcrowd_records


def test_spin_npz_and_coco_json_of_synthcrowd_agree(tiny_synthcrowd):
    split = tiny_synthcrowd / "train"
    from_npz, _ = load_spin_npz_records(split / "smpl_gt.npz", split, "synthcrowd")
    from_json, _ = load_synthcrowd_records(split)
    by_ann = {r.ann_id: r for r in from_json}
    ann_ids = np.load(split / "smpl_gt.npz")["ann_id"]
    assert len(from_npz) == len(ann_ids)
    for record, ann_id in zip(from_npz, ann_ids, strict=True):
        twin = by_ann[int(ann_id)]
        assert record.image_path == twin.image_path
        np.testing.assert_allclose(record.smpl_pose, twin.smpl_pose, atol=1e-5)
        np.testing.assert_allclose(record.smpl_betas, twin.smpl_betas, atol=1e-5)
        assert record.gender == twin.gender
        # body joints labelled in both files sit at the same pixels
        both = (record.keypoints[:, 2] > 0) & (twin.keypoints[:, 2] > 0)
        np.testing.assert_allclose(record.keypoints[both, :2], twin.keypoints[both, :2], atol=0.05)


def test_wrong_array_shape_names_file_and_key(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, imgname=np.array(["a.jpg"]), center=np.zeros((1, 3)), scale=np.ones(1))
    with pytest.raises(ValueError, match=r"bad.npz: key 'center'"):
        load_spin_npz_records(bad, tmp_path, "x")


def test_spin_ratios_split_groups_by_size_and_sampler_follows_them():
    sizes = {"h36m": 300, "lsp": 100, "mpii": 300, "coco": 600, "mpi_inf_3dhp": 50}
    groups = [{"datasets": ["h36m"], "ratio": 0.3}, {"datasets": ["lsp", "mpii", "coco"], "ratio": 0.6},
              {"datasets": ["mpi_inf_3dhp"], "ratio": 0.1}]
    p = source_probabilities(sizes, groups)
    assert p == pytest.approx({"h36m": 0.3, "lsp": 0.06, "mpii": 0.18, "coco": 0.36, "mpi_inf_3dhp": 0.1})
    names = list(sizes)
    offsets = np.cumsum([0] + [sizes[n] for n in names[:-1]])
    sampler = RatioSampler(offsets, [sizes[n] for n in names], [p[n] for n in names], epoch_size=20000, seed=1,
                           rank=0, world_size=1)
    drawn = np.array([i for _, i in sampler])
    source = np.searchsorted(offsets, drawn, side="right") - 1
    shares = np.bincount(source, minlength=len(names)) / len(drawn)
    np.testing.assert_allclose(shares, [p[n] for n in names], atol=0.01)  # within 1 % (3 sigma at 20k draws)
    with pytest.raises(ValueError, match="sum to"):
        source_probabilities(sizes, [{"datasets": ["h36m"], "ratio": 0.5}])


def test_mixed_eval_samples_carry_spin_joints(tiny_synthcrowd):
    """The paper recipe's eval sets (SPIN npz) reach the H36M/3DHP protocols: S becomes joints_spin24."""
    from ochmr_lit.data.datamodules.mixed import MixedDataModule

    split = tiny_synthcrowd / "val"
    spec = {"name": "synthcrowd", "npz": str(split / "smpl_gt.npz"), "image_root": str(split)}
    data = MixedDataModule(sources={"synth": {"npz": spec["npz"], "image_root": spec["image_root"]}},
                           groups=[{"datasets": ["synth"], "ratio": 1.0}], eval_sets={"val": spec},
                           crop_size=64, map_size=16, num_workers=0, eval_batch_size=64)
    batch = next(iter(data.val_dataloader()))
    S = np.load(spec["npz"])["S"].astype(np.float32)
    np.testing.assert_array_equal(batch["joints_spin24"].numpy(), S[batch["index"].numpy()])


def test_mixed_train_dataloader_draws_spins_ratios(tmp_path):
    """10k draws of the mixed config's train loader: 30 % H36M, 60 % in-the-wild by size, 10 % 3DHP (within 1 %)."""
    from hydra import compose, initialize_config_module
    from hydra.utils import instantiate

    with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
        cfg = compose(config_name="fit", overrides=["~experiment", "data=mixed", f"paths.data_root={tmp_path}",
                                                    "data.num_workers=0", "data.epoch_size=10000"])
    assert [(list(g["datasets"]), g["ratio"]) for g in cfg.data.groups] == [
        (["h36m"], 0.3), (["lsp", "lspet", "mpii", "coco"], 0.6), (["mpi_inf_3dhp"], 0.1)]
    sizes = {"h36m": 40, "lsp": 10, "lspet": 50, "mpii": 30, "coco": 60, "mpi_inf_3dhp": 20}
    rng = np.random.default_rng(0)
    (tmp_path / "spin_extras").mkdir()
    for name, n in sizes.items():  # SPIN-format files where the config reads them (images are never decoded)
        np.savez(cfg.data.sources[name]["npz"], imgname=np.array([f"images/{name}_{i}.jpg" for i in range(n)]),
                 center=rng.uniform(50, 150, (n, 2)), scale=rng.uniform(0.5, 1.0, n), part=np.zeros((n, 24, 3)),
                 openpose=np.zeros((n, 25, 3)))
    module = instantiate(cfg.data)
    loader = module.train_dataloader()
    records = loader.dataset.records
    assert [r.dataset for r in records] == [name for name, n in sizes.items() for _ in range(n)]
    drawn = [records[index].dataset for _, index in loader.sampler]
    assert len(drawn) == len(loader.sampler) == 10000
    in_the_wild = ("lsp", "lspet", "mpii", "coco")
    wild_size = sum(sizes[n] for n in in_the_wild)  # 150 people: lsp 4 %, lspet 20 %, mpii 12 %, coco 24 %
    expected = {"h36m": 0.3, "mpi_inf_3dhp": 0.1, **{n: 0.6 * sizes[n] / wild_size for n in in_the_wild}}
    shares = {name: drawn.count(name) / len(drawn) for name in sizes}
    assert shares == pytest.approx(expected, abs=0.01)  # within 1 % of each ratio (seeded; ~2 sigma at 10k draws)
    assert sum(shares[n] for n in in_the_wild) == pytest.approx(0.6, abs=0.01)


def test_a_missing_npz_of_the_mixed_data_is_one_line_naming_its_key(tmp_path, monkeypatch, capsys):
    """SPIN's training mix without its npz files (the paper presets before the data is in place): the entry points
    print which source's file is missing, where it was looked for and the keys to set, instead of a traceback."""
    from hydra import compose, initialize_config_module
    from hydra.utils import instantiate

    from ochmr_lit.errors import MissingFileError, user_errors

    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
        cfg = compose(config_name="fit", overrides=["~experiment", "data=mixed", f"paths.data_root={tmp_path}"])
    data = instantiate(cfg.data, _convert_="all")
    npz = tmp_path / "spin_extras" / "h36m_train.npz"
    with pytest.raises(MissingFileError) as error:
        data.load_records("train")
    assert str(error.value) == (f"data.sources.h36m.npz={npz}: no such file; put SPIN's h36m_train.npz (its "
                                "preprocessed dataset_extras) there, or correct data.sources.h36m.npz (or "
                                "paths.data_root)")
    with pytest.raises(SystemExit), user_errors():
        data.load_records("val")
    assert capsys.readouterr().err.splitlines() == [
        f"error: data.eval_sets.val.npz={tmp_path / 'spin_extras' / '3dpw_test.npz'}: no such file; put SPIN's "
        "3dpw_test.npz (its preprocessed dataset_extras) there, or correct data.eval_sets.val.npz (or paths.data_root)"]
