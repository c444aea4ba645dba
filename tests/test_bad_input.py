"""Bad input of every kind gets one line naming the file or key and the fix (issue 10, "bad input")."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module

from ochmr_lit.body import BodyModel
from ochmr_lit.body.synthetic import ensure_synthetic_body_model
from ochmr_lit.data.datamodules.coco_keypoints import CocoKeypointDataModule
from ochmr_lit.data.dataset import report_skipped
from ochmr_lit.data.readers.coco_format import load_coco_keypoint_records
from ochmr_lit.data.readers.spin_npz import load_spin_npz_records
from ochmr_lit.data.readers.threedpw import read_sequence
from ochmr_lit.data.transforms import BadSampleError, TopDownTransform, jpeg_is_complete, read_image_rgb


def _one_line(message: str) -> str:
    assert "\n" not in message, message
    return message


@pytest.fixture
def coco_records(fixtures_dir):
    records, _ = load_coco_keypoint_records(fixtures_dir / "coco" / "test_coco.json", fixtures_dir / "coco", "coco")
    return records


@pytest.fixture
def jpeg(fixtures_dir) -> bytes:
    return (fixtures_dir / "coco" / "000000000785.jpg").read_bytes()


# -- images ----------------------------------------------------------------------------------------------------
def test_missing_image_file_is_named_with_the_config_to_check(tmp_path):
    path = tmp_path / "gone.jpg"
    with pytest.raises(BadSampleError) as error:
        read_image_rgb(path)
    assert _one_line(str(error.value)) == f"image file not found: {path} (check the dataset root in the data config)"
    assert error.value.reason == "missing_image"


@pytest.mark.parametrize("content", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20])
def test_unreadable_image_file_is_named(tmp_path, content):
    path = tmp_path / "broken.png"
    path.write_bytes(content)
    with pytest.raises(BadSampleError) as error:
        read_image_rgb(path)
    assert _one_line(str(error.value)) == (f"image file cannot be decoded (corrupt, truncated or not an image): {path} "
                                           "(copy or download it again)")
    assert error.value.reason == "bad_image"


@pytest.mark.parametrize("keep", [0.5, 0.9, -2])
def test_truncated_jpeg_is_refused_although_opencv_decodes_it(tmp_path, jpeg, keep):
    """libjpeg fills a cut-off JPEG with grey and only warns: the reader checks the end-of-image marker."""
    cut = jpeg[: int(len(jpeg) * keep)] if keep > 0 else jpeg[:keep]
    path = tmp_path / "cut.jpg"
    path.write_bytes(cut)
    with pytest.raises(BadSampleError) as error:
        read_image_rgb(path)
    assert _one_line(str(error.value)) == ("image file is truncated (its JPEG data stops before the end-of-image "
                                           f"marker): {path} (copy or download it again)")
    assert error.value.reason == "truncated_image"


def test_complete_jpegs_pass_the_truncation_check(tmp_path, jpeg):
    assert jpeg_is_complete(jpeg)
    # bytes some cameras append after the image (even marker-like ones) are not a truncation
    assert jpeg_is_complete(jpeg + b"\x00" * 64 + b"\xff\xda\x00\x08trailer")

    image = (np.arange(48 * 64 * 3) % 251).astype(np.uint8).reshape(48, 64, 3)
    ok, progressive = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    assert ok and jpeg_is_complete(progressive.tobytes())
    assert not jpeg_is_complete(progressive.tobytes()[:-50])
    (tmp_path / "ok.jpg").write_bytes(jpeg)
    assert read_image_rgb(tmp_path / "ok.jpg").shape == (425, 640, 3)


# -- boxes, keypoints ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("box", [[10.0, 20.0, float("nan"), 50.0], [10.0, 20.0, -30.0, 50.0], [10.0, 20.0, 40.0, 0.0]])
def test_box_with_nan_negative_or_zero_size_is_refused_with_the_sample_named(coco_records, box):
    record = coco_records[0]
    record.box = np.array(box)
    with pytest.raises(BadSampleError) as error:
        TopDownTransform(crop_size=64, map_size=16)(record)
    assert _one_line(str(error.value)) == (f"coco/785/{record.ann_id}: box {box} is not a finite xywh box with "
                                           "positive size; fix or drop this annotation")
    assert error.value.reason == "bad_box"


def test_bad_boxes_in_an_annotation_file_are_skipped_and_counted(fixtures_dir, tmp_path):
    data = json.loads((fixtures_dir / "coco" / "test_coco.json").read_text())
    data["annotations"][0]["bbox"] = [1.0, 2.0, 0.0, 10.0]
    data["annotations"][1]["bbox"] = [1.0, 2.0, -5.0, 10.0]
    data["annotations"][2]["bbox"] = [1.0, 2.0, 3.0]
    (tmp_path / "boxes.json").write_text(json.dumps(data).replace('"bbox": [1.0, 2.0, 0.0, 10.0]',
                                                                  '"bbox": [1.0, NaN, 4.0, 10.0]'))
    records, skipped = load_coco_keypoint_records(tmp_path / "boxes.json", fixtures_dir / "coco", "coco")
    assert len(records) == 14 - 3
    assert report_skipped("val", skipped) == "val: skipped 3 annotations (3 invalid_box)"


def test_people_without_keypoints_are_skipped_for_training_and_counted(fixtures_dir, tmp_path):
    ann = fixtures_dir / "coco" / "test_coco.json"
    records, skipped = load_coco_keypoint_records(ann, fixtures_dir / "coco", "coco", min_keypoints=1)
    assert len(records) == 12
    assert report_skipped("train", skipped) == "train: skipped 2 annotations (2 too_few_keypoints)"
    # evaluation keeps them (min_keypoints 0): the box is still a person to reconstruct, keypoints masked
    kept, _ = load_coco_keypoint_records(ann, fixtures_dir / "coco", "coco")
    empty = [r for r in kept if not (r.keypoints[:, 2] > 0).any()]
    assert len(empty) == 2
    sample = TopDownTransform(crop_size=64, map_size=16)(empty[0])
    assert int(sample["visibility"].sum()) == 0 and float(sample["keypoints_2d"][:, 2].sum()) == 0.0
    # a split where nobody has keypoints stops with the count and the setting to look at
    data = json.loads(ann.read_text())
    data["annotations"] = [a for a in data["annotations"] if a["num_keypoints"] == 0]
    (tmp_path / "nobody.json").write_text(json.dumps(data))
    module = CocoKeypointDataModule(name="coco", ann_files={"train": str(tmp_path / "nobody.json")},
                                    image_roots={"train": str(fixtures_dir / "coco")}, min_keypoints=1)
    with pytest.raises(ValueError) as error:
        module.dataset("train")
    assert _one_line(str(error.value)) == ("coco split 'train' has no usable people (train: skipped 2 annotations "
                                           "(2 too_few_keypoints)); check the split's annotation file "
                                           "(data.min_keypoints=1)")


def test_keypoints_outside_the_image_are_refused_with_the_sample_named(coco_records):
    record = coco_records[0]  # 640 x 425 image, all 17 keypoints labelled
    record.keypoints = record.keypoints.copy()
    record.keypoints[3, :2] = [639.0 + 63.0, 100.0]  # within 10 % of the longer side: kept
    TopDownTransform(crop_size=64, map_size=16)(record)
    record.keypoints[3, :2] = [1280.0, 100.0]  # far outside: the labels belong to another image or resolution
    record.keypoints[5, :2] = [50.0, -200.0]
    with pytest.raises(BadSampleError) as error:
        TopDownTransform(crop_size=64, map_size=16)(record)
    assert _one_line(str(error.value)) == (
        f"coco/785/{record.ann_id} ({record.image_path}): 2 labelled keypoints lie outside the 640x425 image "
        "(keypoint 3 at x=1280.0, y=100.0); the annotation belongs to another image or resolution: fix it or set "
        "those keypoints' v to 0")
    assert error.value.reason == "keypoints_outside_image"
    record.keypoints[:, 2] = np.where(np.arange(17) < 6, 0, record.keypoints[:, 2])  # unlabelled: not checked
    TopDownTransform(crop_size=64, map_size=16)(record)
    record.keypoints[8, 0] = np.nan
    with pytest.raises(BadSampleError, match=re.escape("labelled keypoints with non-finite coordinates; fix them "
                                                       "or set their visibility v to 0")):
        TopDownTransform(crop_size=64, map_size=16)(record)


# -- array files -----------------------------------------------------------------------------------------------
def _spin_npz(path: Path, n: int = 3, **replace) -> Path:
    arrays = {"imgname": np.array([f"im{i}.jpg" for i in range(n)]), "center": np.full((n, 2), 50.0),
              "scale": np.ones(n), "part": np.zeros((n, 24, 3)), "pose": np.zeros((n, 72)),
              "shape": np.zeros((n, 10)), "has_smpl": np.ones(n), "gender": np.array(["m"] * n)}
    arrays.update(replace)
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(("key", "value", "found", "expected"), [
    ("part", np.zeros((3, 17, 3)), "(3, 17, 3)", "(3, 24, 3)"),
    ("pose", np.zeros((3, 69)), "(3, 69)", "(3, 72)"),
    ("scale", np.ones((2,)), "(2,)", "(3,)"),
    ("scale", np.float64(1.0), "()", "(3,)"),
    ("has_smpl", np.ones(4), "(4,)", "(3,)"),
    ("gender", np.array(["m"]), "(1,)", "(3,)"),
])
def test_spin_npz_with_wrong_array_shapes_names_file_key_and_shape(tmp_path, key, value, found, expected):
    path = _spin_npz(tmp_path / "h36m_train.npz", **{key: value})
    with pytest.raises(ValueError) as error:
        load_spin_npz_records(path, tmp_path, "h36m")
    assert _one_line(str(error.value)) == (f"{path}: key '{key}' has shape {found}, expected {expected} (one row per "
                                           "person of 'imgname') as in SPIN's preprocessed files")


def test_spin_npz_with_2d_image_names_is_refused(tmp_path):
    path = _spin_npz(tmp_path / "lsp.npz", imgname=np.array([["a.jpg", "b.jpg", "c.jpg"]]))
    with pytest.raises(ValueError, match=re.escape(f"{path}: key 'imgname' has shape (1, 3), expected (N,)")):
        load_spin_npz_records(path, tmp_path, "lsp")


def _pw3d_sequence(frames: int = 4, people: int = 2) -> dict:
    return {"sequence": "courtyard_box_00", "genders": ["m", "f"][:people],
            "betas": [np.zeros(10) for _ in range(people)],
            "poses": [np.zeros((frames, 72)) for _ in range(people)],
            "trans": [np.zeros((frames, 3)) for _ in range(people)],
            "jointPositions": [np.zeros((frames, 72)) for _ in range(people)],
            "poses2d": [np.zeros((frames, 3, 18)) for _ in range(people)],
            "cam_poses": np.tile(np.eye(4), (frames, 1, 1)),
            "campose_valid": [np.ones(frames, bool) for _ in range(people)]}


@pytest.mark.parametrize(("key", "value", "message"), [
    ("poses", [np.zeros((4, 69))] * 2, "key 'poses' has shape (2, 4, 69), expected (P, 4, 72)"),
    ("poses2d", [np.zeros((4, 18, 3))] * 2, "key 'poses2d' has shape (2, 4, 18, 3), expected (P, 4, 3, 18)"),
    ("trans", [np.zeros((3, 3))] * 2, "key 'trans' has shape (2, 3, 3), expected (P, 4, 3)"),
    ("cam_poses", np.zeros((4, 3, 4)), "key 'cam_poses' has shape (4, 3, 4), expected (N, 4, 4)"),
    ("betas", [np.zeros(8)] * 2, "key 'betas' has shape (2, 8), expected (P, >= 10)"),
    ("jointPositions", [np.zeros((4, 72)), np.zeros((3, 72))],
     "key 'jointPositions' holds arrays of different shapes"),
    ("genders", ["m"], "2 actors in 'poses' but 1 in 'genders'"),
])
def test_3dpw_pickle_with_wrong_array_shapes_names_file_and_key(tmp_path, key, value, message):
    sequence = _pw3d_sequence()
    assert read_sequence(_dump(tmp_path / "good.pkl", sequence))["poses"].shape == (2, 4, 72)
    sequence[key] = value
    path = _dump(tmp_path / "courtyard_box_00.pkl", sequence)
    with pytest.raises(ValueError) as error:
        read_sequence(path)
    assert _one_line(str(error.value)).startswith(f"{path}: {message}")


def _dump(path: Path, obj) -> Path:
    with path.open("wb") as f:
        pickle.dump(obj, f, protocol=2)
    return path


# -- body model ------------------------------------------------------------------------------------------------
def test_body_model_folder_missing_a_gender_names_it_in_one_line(tmp_path):
    source = ensure_synthetic_body_model()
    for name in ("SMPL_NEUTRAL.pkl", "SMPL_MALE.pkl", "J_regressor_h36m.npy", "J_regressor_extra.npy",
                 "smpl_mean_params.npz"):
        (tmp_path / name).symlink_to(source / name)
    with pytest.raises(FileNotFoundError) as error:
        BodyModel(tmp_path)
    assert _one_line(str(error.value)) == (
        f"body model folder {tmp_path} lacks SMPL_FEMALE.pkl (or .npz) (the female model: every gender is needed, "
        "e.g. for 3DPW's gendered ground truth). Expected files: SMPL_NEUTRAL.pkl (or .npz), SMPL_MALE.pkl (or .npz), "
        "SMPL_FEMALE.pkl (or .npz), J_regressor_h36m.npy, J_regressor_extra.npy, smpl_mean_params.npz; set "
        "paths.body_model_dir (or OCHMR_BODY_MODEL_DIR) to a folder with these files (SMPL models from "
        "smpl.is.tue.mpg.de, regressors and mean parameters from SPIN's data), or paths.body_model_dir=null to use "
        "the synthetic body model generated into the cache")
    (tmp_path / "SMPL_MALE.pkl").unlink()
    with pytest.raises(FileNotFoundError, match=re.escape("(the male and female models: every gender is needed")):
        BodyModel(tmp_path)


# -- checkpoints -----------------------------------------------------------------------------------------------
def _evaluate(ckpt: Path, tmp_path: Path) -> str:
    from ochmr_lit.runner import run_evaluate

    with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
        cfg = compose(config_name="evaluate", overrides=["experiment=synthcrowd", f"ckpt_path={ckpt}",
                                                         f"run_dir={tmp_path}"])
    with pytest.raises(ValueError) as error:
        run_evaluate(cfg)
    return _one_line(str(error.value))


@pytest.fixture(scope="module")
def spin_checkpoint(tmp_path_factory) -> Path:
    """A SPIN-baseline (no CoNorm, no context) ResNet-18 regressor checkpoint, as Lightning writes it."""
    from ochmr_lit.lit import MeshRegressorModule

    module = MeshRegressorModule(backbone="resnet18", conorm_depths=[], context_source="none")
    path = tmp_path_factory.mktemp("ckpt") / "spin.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams), "epoch": 0,
                "run_config": {"task": "regressor"}}, path)
    return path


@pytest.mark.parametrize("override, message", [
    ("trainer.max_epochs=-2", "trainer.max_epochs=-2: `max_epochs` must be a non-negative integer or -1."),
    ("trainer.precision=17", "trainer.precision=17: lightning.Trainer takes "),
    ("tags=abc", "tags='abc': a list of the run's W&B tags"),
    ("allow_other_architecture=maybe", "allow_other_architecture='maybe': use true (evaluate a checkpoint of another "
                                       "architecture than the experiment's) or false"),
])
def test_evaluate_names_a_bad_setting_before_reading_the_checkpoint(override, message, spin_checkpoint, tmp_path):
    from ochmr_lit.errors import ConfigError
    from ochmr_lit.runner import run_evaluate

    with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
        cfg = compose(config_name="evaluate", overrides=["experiment=synthcrowd_spin", f"ckpt_path={spin_checkpoint}",
                                                         f"run_dir={tmp_path}", override])
    with pytest.raises(ConfigError) as error:  # Hydra's instantiate of the Trainer reported it in several lines
        run_evaluate(cfg)
    assert str(error.value).startswith(message)
    assert not any(tmp_path.iterdir())


def _with_hparams(source: Path, target: Path, **hparams) -> Path:
    state = torch.load(source, map_location="cpu", weights_only=True)
    state["hyper_parameters"].update(hparams)
    torch.save(state, target)
    return target


def test_regressor_checkpoint_loads_with_its_own_architecture(spin_checkpoint):
    from ochmr_lit.lit.checkpoints import load_regressor_checkpoint

    module = load_regressor_checkpoint(str(spin_checkpoint), {"protocol": "synthcrowd"})
    stored = torch.load(spin_checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    assert all(torch.equal(v, stored[k]) for k, v in module.state_dict().items())
    assert module.hparams.backbone == "resnet18" and module.run_config == {"task": "regressor"}


def test_spin_checkpoint_described_as_ochmr_names_checkpoint_keys_and_fix(spin_checkpoint, tmp_path):
    ckpt = _with_hparams(spin_checkpoint, tmp_path / "ochmr.ckpt", conorm_depths=[2], context_source="gt")
    message = _evaluate(ckpt, tmp_path)
    assert message.startswith(
        f"{ckpt}: its weights are not those of the architecture its hyper-parameters name (backbone=resnet18, "
        "conorm_depths=[2], context_source=gt): 6 missing (model.conorm.2.phi_bias.bias, "
        "model.conorm.2.phi_bias.weight, model.conorm.2.phi_latent.0.bias, ...); it was written by another model")
    assert message.endswith("evaluate the checkpoint of the run that trained this architecture, or retrain it")


def test_resnet18_checkpoint_described_as_resnet50_names_the_shapes(spin_checkpoint, tmp_path):
    ckpt = _with_hparams(spin_checkpoint, tmp_path / "r50.ckpt", backbone="resnet50")
    message = _evaluate(ckpt, tmp_path)
    assert f"{ckpt}: its weights are not those of the architecture its hyper-parameters name (backbone=resnet50" \
           in message
    assert ("198 missing (model.layer1.0.bn3.bias, model.layer1.0.bn3.num_batches_tracked, "
            "model.layer1.0.bn3.running_mean, ...), 24 of another shape (model.fc1.weight: checkpoint (1024, 669) vs "
            "model (1024, 2205), model.layer1.0.conv1.weight: checkpoint (64, 64, 3, 3) vs model (64, 64, 1, 1), ...)"
            in message)


def test_context_estimator_or_foreign_files_given_to_evaluate_are_named(tmp_path):
    context = tmp_path / "context.ckpt"
    torch.save({"state_dict": {"model.w": torch.zeros(1)}, "run_config": {"task": "context"},
                "hyper_parameters": {"width": 32, "optim": None, "pck_threshold": 0.05, "channels_last": True}},
               context)
    assert _evaluate(context, tmp_path) == (
        f"{context} is a context-estimator checkpoint, not a mesh regressor's (hyper-parameters pck_threshold, width)"
        "; evaluate, predict and compare take the checkpoints/*.ckpt of task=regressor or task=pipeline runs, "
        "not context/checkpoints/")
    spin_weights = tmp_path / "model_checkpoint.pt"
    torch.save({"model": {"fc1.weight": torch.zeros(2, 2)}, "optimizer": {}}, spin_weights)
    assert _evaluate(spin_weights, tmp_path) == (
        f"{spin_weights} is not a checkpoint of this framework (top-level ['model', 'optimizer'], no state_dict "
        "with hyper_parameters); evaluate, predict and compare take the checkpoints/*.ckpt of task=regressor or "
        "task=pipeline runs "
        "(SPIN or torchvision weight files start a training run through model.pretrained)")
    text = tmp_path / "notes.ckpt"
    text.write_text("not a checkpoint")
    assert _evaluate(text, tmp_path).startswith(f"{text} cannot be read as a checkpoint (not a torch.save archive: "
                                                "those are zip files, this one starts with b'not ')")
    cut = tmp_path / "cut.ckpt"  # an interrupted copy of a real checkpoint
    cut.write_bytes(spin_weights.read_bytes()[:200])
    assert _evaluate(cut, tmp_path).startswith(f"{cut} cannot be read as a checkpoint (the file is cut short or "
                                               "damaged (200 bytes, its zip archive has no end): an interrupted copy")


def test_a_checkpoint_of_another_experiments_architecture_is_refused_unless_allowed(spin_checkpoint, tmp_path):
    from ochmr_lit.lit.checkpoints import load_regressor_checkpoint
    from ochmr_lit.runner import check_same_architecture

    state = torch.load(spin_checkpoint, map_location="cpu", weights_only=True)
    state["run_config"] = {"task": "regressor", "experiment_name": "synthcrowd_spin"}
    ckpt = tmp_path / "spin.ckpt"
    torch.save(state, ckpt)
    assert _evaluate(ckpt, tmp_path) == (
        f"{ckpt} is a SPIN (no CoNorm) resnet18 checkpoint of experiment synthcrowd_spin, but experiment=synthcrowd "
        "is a OCHMR (CoNorm after layer 2) resnet18: evaluate it with experiment=synthcrowd_spin, or add "
        "allow_other_architecture=true to evaluate it anyway (its results are then filed under synthcrowd_spin)")
    module = load_regressor_checkpoint(str(ckpt))
    with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
        allowed = compose(config_name="evaluate", overrides=["experiment=synthcrowd", f"ckpt_path={ckpt}",
                                                              "allow_other_architecture=true"])
        own = compose(config_name="evaluate", overrides=["experiment=synthcrowd_spin", f"ckpt_path={ckpt}"])
    check_same_architecture(allowed, module, str(ckpt))  # asked for: no error
    check_same_architecture(own, module, str(ckpt))  # its own experiment

    from ochmr_lit.evaluate import own_experiment_override

    assert own_experiment_override([f"ckpt_path={ckpt}", "allow_other_architecture=true"]) == [
        "experiment_name=synthcrowd_spin"]
    assert own_experiment_override([f"ckpt_path={ckpt}"]) == []
