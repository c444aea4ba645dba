"""After cropping and augmentation, every keypoint of the real fixtures is still on its person.

The COCO, CrowdPose and OCHuman fixtures load through their DataModules with augmentation on (rotation, scale,
translation, flip). Each labelled keypoint of a crop, mapped back through the inverse crop affine, equals the
annotated keypoint of the same joint in the raw JSON (flip permutes left and right), and visible ones (v 2) lie
inside the person's annotated box and segmentation. (3D labels under augmentation: test_augmentation_labels.py.)
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from pycocotools.coco import COCO
from scipy import ndimage

from ochmr_lit.body.keypoints import get_convention
from ochmr_lit.data.datamodules import CrowdPoseDataModule, KeypointDataModule, OCHumanDataModule
from ochmr_lit.geometry import apply_affine, invert_affine

CROP = 64
AUGMENT = {"rotation_deg": 30.0, "rotation_prob": 0.7, "scale": 0.25, "translation": 0.05, "flip_prob": 0.5,
           "brightness_contrast": 0.0, "noise_prob": 0.0}
#: dataset -> (DataModule, annotation file, image folder, keypoint convention of the file)
CASES = {
    "coco": (KeypointDataModule, "coco/test_coco.json", "coco", "coco17"),
    "crowdpose": (CrowdPoseDataModule, "crowdpose/test_crowdpose.json", "crowdpose", "crowdpose14"),
    "ochuman": (OCHumanDataModule, "ochuman/test_ochuman.json", "ochuman", "coco17"),
}
#: OCHuman marks self-occluded keypoints visible (v 2); one fixture keypoint lies 5 px off its silhouette.
MASK_TOLERANCE_PX = 6.0


def _module(name: str, fixtures_dir, seed: int):
    cls, ann, folder, _ = CASES[name]
    kwargs = {"ann_files": {"train": str(fixtures_dir / ann)}, "image_roots": {"train": str(fixtures_dir / folder)},
              "crop_size": CROP, "map_size": 16, "num_workers": 0, "seed": seed, "augment": AUGMENT,
              "min_keypoints": 1}
    return cls(name=name, **kwargs)


def _annotations(fixtures_dir, name: str) -> tuple[COCO, dict[int, np.ndarray]]:
    _, ann, _, convention = CASES[name]
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(fixtures_dir / ann))
    raw = {i: np.asarray(a["keypoints"], np.float64).reshape(-1, 3) for i, a in coco.anns.items()}
    # each COCO-17 joint of the samples, in the file's own convention (-1: the file has no such joint)
    names = get_convention(convention).joint_names
    source = np.array([names.index(n) if n in names else -1 for n in get_convention("coco17").joint_names])
    return coco, {i: np.where(source[:, None] >= 0, kp[np.maximum(source, 0)], 0.0) for i, kp in raw.items()}


@pytest.mark.parametrize("name", sorted(CASES))
def test_augmented_keypoints_map_back_onto_their_person(name, fixtures_dir):
    coco, annotated = _annotations(fixtures_dir, name)
    flip_perm = get_convention("coco17").flip_perm
    distance_to_mask = {}
    for ann_id, ann in coco.anns.items():
        if ann.get("segmentation"):
            distance_to_mask[ann_id] = ndimage.distance_transform_edt(~coco.annToMask(ann).astype(bool))
    seen = {"flipped": 0, "rotated": 0, "keypoints": 0, "in_mask": 0}
    for seed in (0, 1, 2, 3):
        dataset = _module(name, fixtures_dir, seed).dataset("train")
        for index, record in enumerate(dataset.records):
            sample = dataset[(seed, index)]
            affine = sample["crop_affine"].double().numpy()
            linear = affine[:, :2]
            flipped = np.linalg.det(linear) < 0
            seen["flipped"] += int(flipped)
            seen["rotated"] += int(abs(linear[0, 1]) > 1e-6)
            kp = sample["keypoints_2d"].double().numpy()
            inside = (kp[:, 2] > 0) & (kp[:, :2] >= 0).all(1) & (kp[:, :2] <= CROP - 1).all(1)
            back = apply_affine(invert_affine(affine), kp[:, :2])
            source = flip_perm if flipped else np.arange(17)  # joint j of a flipped crop is the mirrored joint
            truth = annotated[record.ann_id][source]
            labelled = kp[:, 2] > 0
            np.testing.assert_array_equal(labelled, truth[:, 2] > 0)
            np.testing.assert_array_equal(sample["visibility"].numpy()[labelled], truth[labelled, 2])
            np.testing.assert_allclose(back[inside], truth[inside, :2], atol=0.5)
            visible = inside & (truth[:, 2] == 2)
            x, y, w, h = coco.anns[record.ann_id]["bbox"]
            assert ((back[visible] >= [x - 0.5, y - 0.5]) & (back[visible] <= [x + w + 0.5, y + h + 0.5])).all()
            if record.ann_id in distance_to_mask:
                dist = distance_to_mask[record.ann_id]
                cols = np.clip(np.floor(back[visible, 0]).astype(int), 0, dist.shape[1] - 1)
                rows = np.clip(np.floor(back[visible, 1]).astype(int), 0, dist.shape[0] - 1)
                assert (dist[rows, cols] <= MASK_TOLERANCE_PX).all()
                seen["in_mask"] += int(visible.sum())
            seen["keypoints"] += int(inside.sum())
    assert seen["flipped"] > 0 and seen["rotated"] > 0 and seen["keypoints"] > 50
    assert (seen["in_mask"] > 0) == (name != "crowdpose")  # CrowdPose has no segmentation


@pytest.mark.parametrize("name", sorted(CASES))
def test_flip_mirrors_the_crop_and_swaps_left_and_right(name, fixtures_dir):
    coco17 = get_convention("coco17")
    dataset = _module(name, fixtures_dir, seed=0).dataset("train")
    transform = dataset.transform
    index = next(i for i, r in enumerate(dataset.records)
                 if r.keypoints[[coco17.index("left_wrist"), coco17.index("right_wrist")], 2].all())
    samples = {}
    for flip in (False, True):  # the same rotation, scale and shift, without and with the flip
        transform._sample_augmentation = lambda rng, epoch=None, flip=flip: (20.0, 1.1, np.array([0.02, -0.03]), flip)
        samples[flip] = dataset[(0, index)]
    plain, mirrored = samples[False]["keypoints_2d"].numpy(), samples[True]["keypoints_2d"].numpy()
    for side, other in (("left", "right"), ("right", "left")):
        for joint in ("wrist", "shoulder", "hip", "ankle", "eye"):
            a, b = coco17.index(f"{side}_{joint}"), coco17.index(f"{other}_{joint}")
            assert mirrored[a, 2] == plain[b, 2]
            if plain[b, 2] > 0:  # the left joint of the flipped crop sits where the right one was, mirrored
                np.testing.assert_allclose(mirrored[a, :2], [CROP - 1 - plain[b, 0], plain[b, 1]], atol=1e-3)
    np.testing.assert_allclose(mirrored[coco17.index("nose"), :2],
                               [CROP - 1 - plain[coco17.index("nose"), 0], plain[coco17.index("nose"), 1]], atol=1e-3)
    image_plain, image_mirrored = samples[False]["image"].numpy(), samples[True]["image"].numpy()
    assert np.abs(image_mirrored - image_plain[:, :, ::-1]).mean() < 0.02  # the pixels are mirrored too
    assert np.abs(image_mirrored - image_plain).mean() > 0.2  # ... and the crop is not symmetric
    centermaps = samples[True]["centermaps"].numpy()
    np.testing.assert_allclose(centermaps, samples[False]["centermaps"].numpy()[:, :, ::-1], atol=0.05)
