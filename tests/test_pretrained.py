"""model.pretrained: sources applied in order, strict by default, one line for a file that does not fit."""

import logging

import pytest
import torch
import torchvision
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from ochmr_lit.lit import ContextEstimatorModule, MeshRegressorModule
from ochmr_lit.models import ContextEstimator, MeshRegressor
from ochmr_lit.models.hrnet import HRNet
from ochmr_lit.models.pretrained import TORCHVISION_FILES, apply_pretrained, parse_sources


@pytest.fixture(scope="module")
def resnet50_file(tmp_path_factory):
    """An ImageNet ResNet-50 state dict in torchvision's format (random values), under torchvision's file name."""
    path = tmp_path_factory.mktemp("weights") / TORCHVISION_FILES["resnet50"]
    torch.save(torchvision.models.resnet50().state_dict(), path)
    return path


def test_a_torchvision_resnet50_loads_strictly_into_the_backbone(resnet50_file):
    model = MeshRegressor("resnet50", conorm_depths=(2,), hidden_channels=8)
    (report,) = apply_pretrained(model, [{"source": "torchvision", "path": str(resnet50_file)}])
    stored = torch.load(resnet50_file, weights_only=True)
    assert report.ok and len(report.loaded) == len(stored) - 2 and report.not_used == ["fc.weight", "fc.bias"]
    assert torch.equal(model.layer3[2].conv2.weight, stored["layer3.2.conv2.weight"])
    assert all(k.startswith(("conorm.", "fc1.", "fc2.", "dec", "init_")) for k in report.new)


def test_a_file_of_another_backbone_stops_with_one_line_and_loads_nothing(resnet50_file):
    model = MeshRegressor("resnet18", conorm_depths=(), hidden_channels=8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError) as error:
        apply_pretrained(model, [{"source": "torchvision", "path": str(resnet50_file)}])
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"model.pretrained[0] (torchvision): {resnet50_file} does not fit this MeshRegressor "
                              "(resnet18): ")
    assert "of another shape (layer1.0.conv1.weight file [64, 64, 1, 1] vs model [64, 64, 3, 3]" in message
    assert "unexpected (layer1.0.conv3.weight" in message and "set model.pretrained[0].strict=false" in message
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_strict_false_loads_what_fits_and_reports_the_rest(resnet50_file, caplog):
    model = MeshRegressor("resnet18", conorm_depths=(), hidden_channels=8)
    with caplog.at_level(logging.WARNING):
        (report,) = apply_pretrained(model, [{"source": "torchvision", "path": str(resnet50_file), "strict": False}])
    assert not report.ok and report.loaded and report.shape_mismatched and report.unexpected
    assert "model.pretrained[0] (torchvision, strict=false): " in caplog.text
    assert torch.equal(model.conv1.weight, torch.load(resnet50_file, weights_only=True)["conv1.weight"])


def test_sources_apply_in_order_and_the_reports_go_into_the_checkpoint(tmp_path):
    imagenet = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), imagenet)
    spin_like = MeshRegressor("resnet18", conorm_depths=(), hidden_channels=8)
    spin = tmp_path / "model_checkpoint.pt"
    torch.save({"model": spin_like.state_dict()}, spin)
    module = MeshRegressorModule(backbone="resnet18", conorm_depths=(), context_source="none", crop_size=64,
                                 pretrained=[{"source": "torchvision", "path": str(imagenet)},
                                             {"source": "spin", "path": str(spin)}])
    assert torch.equal(module.model.conv1.weight, spin_like.conv1.weight)  # the later source wins
    assert torch.equal(module.model.fc1.weight, spin_like.fc1.weight)
    checkpoint = {}
    module.on_save_checkpoint(checkpoint)
    assert [line.split(" -> ")[0] for line in checkpoint["pretrained"]] == [str(imagenet), str(spin)]


def test_torchvision_weights_come_from_the_hub_cache_and_are_never_downloaded_unasked(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    model = MeshRegressor("resnet18", conorm_depths=(), hidden_channels=8)
    expected = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    with pytest.raises(FileNotFoundError) as error:
        apply_pretrained(model, [{"source": "torchvision"}])
    assert str(error.value) == (
        f"model.pretrained[0]: ImageNet weights for resnet18 not found at {expected}; put resnet18-f37072fd.pth "
        "(https://download.pytorch.org/models/resnet18-f37072fd.pth) there, give model.pretrained[0].path, or set "
        "model.pretrained[0].download=true")
    expected.parent.mkdir(parents=True)
    torch.save(torchvision.models.resnet18().state_dict(), expected)
    assert apply_pretrained(model, [{"source": "torchvision"}])[0].ok


def test_hrnet_coco_starts_the_context_estimator(tmp_path):
    coco = HRNet(width=16, num_joints=17)
    path = tmp_path / "pose_hrnet_w16.pth"
    torch.save(coco.state_dict(), path)
    module = ContextEstimatorModule(width=16, pretrained=[{"source": "hrnet_coco", "path": str(path)}])
    assert torch.equal(module.model.backbone.conv1.weight, coco.conv1.weight)
    with pytest.raises(ValueError, match=r"model.pretrained\[0\].source='torchvision': this model takes one of "
                                         r"\['hrnet_coco', 'ochmr'\]"):
        apply_pretrained(ContextEstimator(width=16), [{"source": "torchvision", "path": str(path)}])


@pytest.mark.parametrize("value, message", [
    ([{"source": "imagenet"}], r"model.pretrained\[0\].source='imagenet': this model takes one of"),
    ([{"source": "spin", "file": "x"}], r"model.pretrained\[0\].file: not a setting of a weight source"),
    ([{"source": "spin", "path": "x", "download": True}], r"model.pretrained\[0\].download: only torchvision"),
    ("weights.pth", r"model.pretrained='weights.pth': give a list of \{source, path\} entries"),
    ([{"source": "spin"}], r"model.pretrained\[0\] \(spin\) needs a path"),
    ([{"source": "spin", "path": "/nowhere/model_checkpoint.pt"}],
     r"model.pretrained\[0\].path=/nowhere/model_checkpoint.pt: no such file"),
])
def test_malformed_entries_are_one_line_naming_the_key(value, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        apply_pretrained(MeshRegressor("resnet18", conorm_depths=(), hidden_channels=8), value)


def test_the_short_form_and_none_still_work():
    assert parse_sources(None, ["spin"]) == [] and parse_sources({"spin": None}, ["spin"]) == []
    assert parse_sources({"spin": "a.pt"}, ["spin"])[0].path == "a.pt"


def test_the_paper_presets_name_their_starting_weights():
    with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
        ochmr = compose(config_name="fit", overrides=["experiment=ochmr_r50"])
        spin = compose(config_name="fit", overrides=["experiment=spin_r50"])
        context = compose(config_name="fit", overrides=["experiment=context_hrnet_w32_coco", "paths.weights_dir=/w"])
    assert [dict(s) for s in ochmr.model.pretrained] == [{"source": "torchvision"}] == [
        dict(s) for s in spin.model.pretrained]
    assert [dict(s) for s in context.model.pretrained] == [
        {"source": "hrnet_coco", "path": "/w/pose_hrnet_w32_256x192.pth"}]


def test_a_missing_weight_file_stops_fit_before_any_stage(tmp_path, monkeypatch):
    """A pipeline builds its regressor after the context stage trained: its weight files are looked for first."""
    from ochmr_lit.errors import MissingFileError
    from ochmr_lit.runner import check_fit_config

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
        pipeline = compose(config_name="fit", overrides=["experiment=synthcrowd", "run_dir=/tmp/unused",
                                                         "model.pretrained=[{source:torchvision}]"])
        context = compose(config_name="fit", overrides=[
            "experiment=context_hrnet_w32_coco", "trainer=cpu", f"paths.weights_dir={tmp_path}", "run_dir=/tmp/unused"])
    expected = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    with pytest.raises(MissingFileError, match=rf"^model.pretrained\[0\]: ImageNet weights for resnet18 not found at "
                                               rf"{expected}; put resnet18-f37072fd.pth"):
        check_fit_config(pipeline)
    expected.parent.mkdir(parents=True)
    expected.write_bytes(b"")  # only looked for, never read before the run builds its model
    check_fit_config(pipeline)
    with pytest.raises(MissingFileError, match=rf"^model.pretrained\[0\].path={tmp_path}/pose_hrnet_w32_256x192.pth: "
                                               "no such file; put the hrnet_coco weights there"):
        check_fit_config(context)
    downloads = OmegaConf.merge(pipeline, {"model": {"pretrained": [{"source": "torchvision", "download": True}]}})
    expected.unlink()
    check_fit_config(downloads)  # fetched when the model is built, as asked: nothing to look for yet


def test_a_user_error_raised_inside_instantiate_is_one_line(tmp_path, monkeypatch, capsys):
    """Hydra's instantiate wraps what a class raises in several lines (target, error, full_key): the entry points
    print the user error it was raised from."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    from ochmr_lit.errors import user_errors

    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    node = {"_target_": "ochmr_lit.lit.MeshRegressorModule", "backbone": "resnet18", "conorm_depths": [],
            "context_source": "none", "pretrained": [{"source": "spin", "path": str(tmp_path / "nope.pt")}]}
    with pytest.raises(SystemExit) as exit_, user_errors():
        instantiate(node)
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: model.pretrained[0].path={tmp_path / 'nope.pt'}: no such file; put the spin weights there or correct "
        "model.pretrained[0].path"]
    with pytest.raises(InstantiationException) as error, user_errors():  # anything else keeps its traceback
        instantiate({"_target_": "operator.truediv", "_args_": [1, 0]})
    assert isinstance(error.value.__cause__, ZeroDivisionError)
