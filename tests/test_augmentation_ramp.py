"""``data.augment.geometric_ramp_epochs``: geometric augmentation grows from none in epoch 0 to full at the ramp's
end; the epoch reaches the transform through the sampler's ``(epoch, index)`` keys, so workers and resumed runs
see the same strength; a bad value stops the run at start-up naming the key."""

import dataclasses

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module

from ochmr_lit.config_checks import check_augmentation, check_run_config
from ochmr_lit.data.dataset import TopDownDataset
from ochmr_lit.data.readers.synthcrowd import load_synthcrowd_records
from ochmr_lit.data.transforms import AugmentationConfig, TopDownTransform
from ochmr_lit.errors import ConfigError

FULL = AugmentationConfig(rotation_deg=30.0, rotation_prob=0.6, scale=0.25, translation=0.05, flip_prob=0.5,
                          brightness_contrast=0.3, noise_prob=0.3)
RAMPED = dataclasses.replace(FULL, geometric_ramp_epochs=4)
NO_GEOMETRY = dataclasses.replace(FULL, rotation_prob=0.0, scale=0.0, translation=0.0, flip_prob=0.0)


@pytest.mark.parametrize(("ramp", "epoch", "strength"), [
    (0, 0, 1.0), (0, 7, 1.0), (4, 0, 0.0), (4, 1, 0.25), (4, 2, 0.5), (4, 4, 1.0), (4, 30, 1.0), (4, None, 1.0),
])
def test_strength_grows_linearly_to_full(ramp, epoch, strength):
    assert dataclasses.replace(FULL, geometric_ramp_epochs=ramp).geometric_strength(epoch) == strength


def _draws(augment: AugmentationConfig, epoch: int, n: int = 4000) -> tuple[np.ndarray, ...]:
    transform = TopDownTransform(crop_size=64, map_size=16, augment=augment)
    rows = [transform._sample_augmentation(np.random.default_rng([3, i]), epoch) for i in range(n)]
    rotation, scale, shift, flip = (np.array(column) for column in zip(*rows, strict=True))
    return rotation, scale, np.stack(shift), flip


def test_half_way_the_probabilities_and_ranges_are_halved():
    rotation, scale, shift, flip = _draws(RAMPED, epoch=2)
    assert abs(flip.mean() - 0.25) < 0.03  # flip_prob 0.5 x 0.5
    assert abs((rotation != 0).mean() - 0.30) < 0.03  # rotation_prob 0.6 x 0.5
    assert scale.min() >= 1 - 0.125 - 1e-12 and scale.max() <= 1 + 0.125 + 1e-12
    assert scale.max() > 1.1 and scale.min() < 0.9
    assert np.abs(shift).max() <= 0.025 + 1e-12 and np.abs(shift).max() > 0.02


def _samples(tiny_synthcrowd, augment: AugmentationConfig, epoch: int) -> list[dict]:
    records = load_synthcrowd_records(tiny_synthcrowd / "train")[0][:6]
    dataset = TopDownDataset(records, TopDownTransform(crop_size=64, map_size=16, augment=augment), seed=5)
    return [dataset[(epoch, index)] for index in range(len(records))]


def _assert_same(samples_a: list[dict], samples_b: list[dict]) -> None:
    for a, b in zip(samples_a, samples_b, strict=True):
        for key in ("image", "crop_affine", "keypoints_2d", "keypoints_3d", "smpl_pose", "centermaps"):
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_epoch_zero_of_the_ramp_is_photometric_only_and_its_end_is_the_full_augmentation(tiny_synthcrowd):
    # same seeds, same draws: the ramp changes only how far the geometric draws reach
    _assert_same(_samples(tiny_synthcrowd, RAMPED, epoch=0), _samples(tiny_synthcrowd, NO_GEOMETRY, epoch=0))
    _assert_same(_samples(tiny_synthcrowd, RAMPED, epoch=4), _samples(tiny_synthcrowd, FULL, epoch=4))
    unramped = _samples(tiny_synthcrowd, FULL, epoch=0)
    assert any(not torch.equal(a["crop_affine"], b["crop_affine"])
               for a, b in zip(unramped, _samples(tiny_synthcrowd, RAMPED, epoch=0), strict=True))


@pytest.mark.parametrize(("augment", "message"), [
    ({"geometric_ramp_epochs": -2}, "data.augment.geometric_ramp_epochs=-2: use a whole number of epochs >= 0"),
    ({"geometric_ramp_epochs": 2.5}, "data.augment.geometric_ramp_epochs=2.5: use a whole number of epochs >= 0"),
    ({"flip_prob": 2}, "data.augment.flip_prob=2: the probability of a horizontal flip, a number in [0.0, 1.0]"),
    ({"rotation_prob": -0.1}, "data.augment.rotation_prob=-0.1: the probability of a rotation, a number in [0.0, 1.0]"),
    ({"scale": 1.0}, "data.augment.scale=1.0: the scale jitter's range as a share of the box side, a number in "
                     "[0.0, 0.9]"),
    ({"rotation_deg": "30"}, "data.augment.rotation_deg='30': the rotation's standard deviation in degrees"),
    ({"noise_prob": True}, "data.augment.noise_prob=True: the probability of Gaussian noise"),
    ({"rotaton_prob": 0.1}, "data.augment: AugmentationConfig.__init__() got an unexpected keyword argument "
                            "'rotaton_prob'; the keys are those of ochmr_lit.data.transforms.AugmentationConfig"),
])
def test_a_bad_augmentation_setting_names_its_key(augment, message):
    with pytest.raises(ConfigError) as error:
        check_augmentation(augment)
    assert str(error.value).startswith(message)


def test_the_settings_ranges_hold_their_edges_and_every_shipped_config():
    check_augmentation({"rotation_deg": 0, "rotation_prob": 1, "scale": 0.9, "translation": 0.0, "flip_prob": 0.0,
                        "brightness_contrast": 1.0, "noise_prob": 0.5})
    with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
        for experiment in ("synthcrowd", "synthcrowd_long", "ochmr_r50", "spin_r50"):
            check_augmentation(compose(config_name="fit", overrides=[f"experiment={experiment}",
                                                                     "run_dir=/tmp/unused"]).data.augment)


def test_the_run_config_check_reads_the_augmentation_before_work_starts():
    with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
        cfg = compose(config_name="fit", overrides=["experiment=synthcrowd", "task=regressor",
                                                    "data.augment.geometric_ramp_epochs=-1", "run_dir=/tmp/unused"])
    with pytest.raises(ConfigError, match=r"^data\.augment\.geometric_ramp_epochs=-1"):
        check_run_config(cfg, [("", cfg)])
