"""Every real-dataset data config composes and instantiates its DataModule (no files are read)."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_module
from hydra.utils import instantiate

from ochmr_lit.data import datamodules as rd

EXPECTED = {
    "3dpw": (rd.ThreeDPWDataModule, {"subset": "all"}),
    "3dpw_pc": (rd.ThreeDPWDataModule, {"subset": "pc"}),
    "3dpw_occ": (rd.ThreeDPWDataModule, {"subset": "occ"}),
    "3doh": (rd.ThreeDOHDataModule, {"name": "3doh"}),
    "panoptic": (rd.PanopticDataModule, {"cameras": ["00_16", "00_30"]}),
    "crowdpose": (rd.CrowdPoseDataModule, {"keypoint_convention": "crowdpose14", "name": "crowdpose"}),
    "ochuman": (rd.OCHumanDataModule, {"keypoint_convention": "coco17", "name": "ochuman"}),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_data_config_instantiates(name, tmp_path):
    with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
        cfg = compose(config_name="fit", overrides=["~experiment", f"data={name}", f"paths.data_root={tmp_path}"])
    module = instantiate(cfg.data)
    cls, attrs = EXPECTED[name]
    assert type(module) is cls
    for key, value in attrs.items():
        assert getattr(module, key) == value
    if name in ("3dpw_pc", "3dpw_occ"):  # the subsets take frames from every official split
        assert module.splits["test"] == ["train", "validation", "test"]
        assert module.augment is None
    if name == "3dpw":
        assert module.splits == {"train": ["train"], "val": ["validation"], "test": ["test"]}
        assert str(module.root).startswith(str(tmp_path))
