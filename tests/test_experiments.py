"""Every experiment preset composes and runs one fast_dev_run step on CPU at tiny sizes."""

from pathlib import Path

import pytest
import torch
import torchvision
from conftest import REPO_ROOT
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf, open_dict

from ochmr_lit.models.hrnet import HRNet
from ochmr_lit.models.pretrained import TORCHVISION_FILES
from ochmr_lit.runner import build, run_fit

EXPERIMENTS = sorted(p.stem for p in (REPO_ROOT / "experiments").glob("*.yaml"))


def tiny_overrides(tmp_dir: Path, synthcrowd_root: Path, fixtures: Path) -> list[str]:
    coco = fixtures / "coco"
    return [
        f"run_dir={tmp_dir}", f"paths.output_dir={tmp_dir}", "trainer=cpu", "++trainer.fast_dev_run=1",
        "logger=csv", "data.num_workers=0", "data.batch_size=2", "data.eval_batch_size=2",
        "data.crop_size=64", "data.map_size=16",
        f"++data.ann_files={{train:{coco}/test_coco.json,val:{coco}/test_coco.json,test:{coco}/test_coco.json}}",
        f"++data.image_roots={{train:{coco},val:{coco},test:{coco}}}",
        f"++data.root={synthcrowd_root}", "++data.splits={train:4,val:2,test:2}", "++data.image_size=[128,128]",
        "++data.generation_seed=0",  # the tiny split's own (synthcrowd_overfit's 1000 would generate it again)
        # SPIN-format sources: SynthCrowd writes its 3D ground truth as a SPIN npz
        f"++data.sources={{synth:{{npz:{synthcrowd_root}/train/smpl_gt.npz,image_root:{synthcrowd_root}/train}}}}",
        "++data.groups=[{datasets:[synth],ratio:1.0}]", "++data.epoch_size=4",
        f"++data.eval_sets={{val:{{name:synthcrowd,npz:{synthcrowd_root}/val/smpl_gt.npz,"
        f"image_root:{synthcrowd_root}/val}},test:{{name:synthcrowd,npz:{synthcrowd_root}/test/smpl_gt.npz,"
        f"image_root:{synthcrowd_root}/test}}}}",
    ]


def compose_experiment(name: str, overrides: list[str]):
    with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
        cfg = compose(config_name="fit", overrides=[f"experiment={name}"])
    # keep only the override keys the experiment's data module takes
    kind = cfg.data._target_.rsplit(".", 1)[-1]
    spin = ("data.sources", "data.groups", "data.epoch_size", "data.eval_sets")
    synth = ("data.root", "data.splits", "data.image_size", "data.generation_seed")
    drop = {"CocoKeypointDataModule": (*synth, *spin),
            "SynthCrowdDataModule": ("data.ann_files", "data.image_roots", *spin),
            "MixedDataModule": ("data.ann_files", "data.image_roots", *synth)}[kind]
    kept = [o for o in overrides if not o.lstrip("+").startswith(drop)]
    with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
        cfg = compose(config_name="fit", overrides=[f"experiment={name}", *kept])
    with open_dict(cfg):
        if kind == "MixedDataModule":  # a dict override merges into the preset's sources: replace them here
            cfg.data.sources = {k: v for k, v in cfg.data.sources.items() if k == "synth"}
        if cfg.model.get("backbone"):
            cfg.model.backbone = "resnet18"
        if cfg.get("context_stage") is not None:
            cfg.context_stage.data = {"crop_size": 64, "map_size": 16}
    return cfg


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_composes_with_its_paper_settings(name):
    with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
        cfg = compose(config_name="fit", overrides=[f"experiment={name}", "run_dir=/tmp/x"])
    assert cfg.experiment_name == name
    assert cfg.task in ("regressor", "context", "pipeline")
    resolved = OmegaConf.to_container(cfg, resolve=True)
    if cfg.task != "context":
        assert isinstance(resolved["model"]["conorm_depths"], list)
        assert resolved["model"]["context_source"] in ("gt", "predicted", "none")


def weight_files(tmp_dir: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paper presets' starting weights where they look for them, in the official formats (random values):
    torchvision's ResNet-18 file in torch's hub cache (TORCH_HOME) and HRNet-W32's COCO file in paths.weights_dir."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_dir / "torch"))
    hub = tmp_dir / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.save(torchvision.models.resnet18().state_dict(), hub / TORCHVISION_FILES["resnet18"])
    (tmp_dir / "weights").mkdir()
    torch.save(HRNet(width=32, num_joints=17).state_dict(), tmp_dir / "weights" / "pose_hrnet_w32_256x192.pth")
    return [f"paths.weights_dir={tmp_dir / 'weights'}"]


@pytest.mark.slow
@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_runs_fast_dev_run(name, tmp_path, tiny_synthcrowd, fixtures_dir, monkeypatch):
    overrides = [*tiny_overrides(tmp_path, tiny_synthcrowd, fixtures_dir), *weight_files(tmp_path, monkeypatch)]
    cfg = compose_experiment(name, overrides)
    if cfg.task == "pipeline":
        outcome = run_fit(cfg)
        assert Path(outcome["context_checkpoint"]).is_file()
    else:
        module, datamodule, trainer = build(cfg)
        assert len(module.pretrained_reports or []) == len(cfg.model.get("pretrained") or [])  # the paper's starts
        trainer.fit(module, datamodule=datamodule)
        assert trainer.global_step == 1


#: The command that measured the long recipe (docs/training_recipe.md, row D10X128-24R), as overrides.
LONG_RECIPE = ["experiment=synthcrowd", "task=regressor", "model.context_source=gt", "data.splits.train=8000",
               "trainer.max_epochs=24", "data.crop_size=128", "data.map_size=32", "data.augment.flip_prob=0.5",
               "data.augment.scale=0.25", "data.augment.translation=0.05",
               "data.augment.geometric_ramp_epochs=12"]


def test_long_preset_is_the_measured_recipe():
    """``experiment=synthcrowd_long`` trains exactly what the documented run trained: same data, model, trainer."""
    with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
        preset = compose(config_name="fit", overrides=["experiment=synthcrowd_long"])
        measured = compose(config_name="fit", overrides=LONG_RECIPE)
    preset, measured = OmegaConf.to_container(preset), OmegaConf.to_container(measured)
    for key in ("task", "data", "model", "trainer", "callbacks", "seed"):
        assert preset[key] == measured[key], key
    assert preset["context_stage"] is None and preset["data"]["splits"]["train"] == 8000
