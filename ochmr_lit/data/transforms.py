"""Record -> sample: the top-down crop, augmentation, label transforms and centermaps.

Geometric augmentation (rotation, scale, translation jitter, flip) is composed into one affine matrix
here rather than delegated to albumentations, because the same matrix must also move the centermaps,
rotate the 3D joints and SMPL global orientation, and be stored in the sample for mapping predictions
back to the image. Photometric augmentation (brightness/contrast, noise) is albumentations'.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import torch

from ochmr_lit.body.keypoints import get_convention
from ochmr_lit.data.centermaps import render_centermaps
from ochmr_lit.data.schema import NUM_KEYPOINTS, PersonRecord
from ochmr_lit.errors import ConfigError, DataError
from ochmr_lit.geometry import (
    apply_affine,
    axis_angle_to_rotmat,
    box_to_center_size,
    crop_affine,
    rotmat_to_axis_angle,
)
from ochmr_lit.setting_types import is_number

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


class BadSampleError(DataError):
    """A sample that cannot be built (unreadable image, degenerate box, ...); the message names the file."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


#: Valid range and meaning of each numeric augmentation setting: probabilities in [0, 1]; a scale range of 1 or more
#: would shrink the box to nothing; rotations are in degrees.
_AUGMENTATION_RANGES = {
    "rotation_deg": (0.0, 180.0, "the rotation's standard deviation in degrees"),
    "rotation_prob": (0.0, 1.0, "the probability of a rotation"),
    "scale": (0.0, 0.9, "the scale jitter's range as a share of the box side"),
    "translation": (0.0, 1.0, "the centre jitter as a share of the box side"),
    "flip_prob": (0.0, 1.0, "the probability of a horizontal flip"),
    "brightness_contrast": (0.0, 1.0, "the brightness and contrast limits"),
    "noise_prob": (0.0, 1.0, "the probability of Gaussian noise"),
}


@dataclass
class AugmentationConfig:
    """SPIN-style augmentation; every factor 0 disables that part."""

    rotation_deg: float = 30.0  # rotation ~ clip(N(0, 1) * rotation_deg, +-2 rotation_deg) ...
    rotation_prob: float = 0.4  # ... applied with this probability (SPIN: 0.4)
    scale: float = 0.25  # box side x clip(1 + N(0, 1) * scale, 1 - scale, 1 + scale)
    translation: float = 0.05  # centre jitter, fraction of the box side
    flip_prob: float = 0.5
    brightness_contrast: float = 0.3  # albumentations RandomBrightnessContrast limits
    noise_prob: float = 0.3  # albumentations GaussNoise probability
    # Geometric augmentation (rotation probability, scale and shift ranges, flip probability) grows linearly
    # from none in epoch 0 to full in this epoch; 0 = full from the start (SPIN). Photometric is never ramped.
    geometric_ramp_epochs: int = 0

    def __post_init__(self) -> None:
        for name, (low, high, meaning) in _AUGMENTATION_RANGES.items():
            value = getattr(self, name)
            if not is_number(value) or not low <= value <= high:
                raise ConfigError(f"data.augment.{name}={value!r}: {meaning}, a number in [{low}, {high}] (0 = off)")
        if not isinstance(self.geometric_ramp_epochs, int) or self.geometric_ramp_epochs < 0:
            raise ConfigError(f"data.augment.geometric_ramp_epochs={self.geometric_ramp_epochs!r}: use a whole number "
                              "of epochs >= 0 (0 = full geometric augmentation from the first epoch)")

    def geometric_strength(self, epoch: int | None) -> float:
        """Share of the geometric augmentation applied in ``epoch`` (0-based; None = full), in [0, 1]."""
        if self.geometric_ramp_epochs == 0 or epoch is None:
            return 1.0
        return min(1.0, max(0, int(epoch)) / self.geometric_ramp_epochs)


#: A labelled keypoint farther outside its image than this share of the longer image side is an annotation
#: error (keypoints of another image or resolution); nearer ones are kept (extrapolated labels of cut-off limbs).
KEYPOINT_OUTSIDE_MARGIN = 0.1

_JPEG_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7]")  # a marker after entropy-coded data (not a stuffed 0xff)


def jpeg_is_complete(data: bytes) -> bool:
    """True when a JPEG file reaches its end-of-image marker after its last scan; False for a cut-off file.

    Walks the marker segments from the start (so an EXIF thumbnail's markers or bytes appended after the
    image cannot fool it), skipping each scan's entropy-coded data up to the next marker. OpenCV decodes a
    truncated JPEG without an error (the missing rows grey), so this is how truncation is found.
    """
    pos, end = 2, len(data)
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            return False
        marker = data[pos + 1]
        if marker == 0xD9:  # end of image
            return True
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            pos += 2
            continue
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
        if marker == 0xDA:  # start of scan: the entropy-coded data runs to the next marker
            found = _JPEG_NEXT_MARKER.search(data, pos)
            if found is None:
                return False
            pos = found.start()
    return data[pos:pos + 2] == b"\xff\xd9"


def read_image_rgb(path: Path) -> np.ndarray:
    """Decode an image file to (H, W, 3) uint8 RGB; raises BadSampleError naming the file.

    Reasons: ``missing_image`` (no such file), ``bad_image`` (empty or not decodable), ``truncated_image``
    (a JPEG cut off before its end-of-image marker).
    """
    if not Path(path).is_file():
        raise BadSampleError(f"image file not found: {path} (check the dataset root in the data config)",
                             reason="missing_image")
    data = Path(path).read_bytes()
    if data[:2] == b"\xff\xd8" and not jpeg_is_complete(data):
        raise BadSampleError(f"image file is truncated (its JPEG data stops before the end-of-image marker): {path}"
                             " (copy or download it again)", reason="truncated_image")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is None:
        raise BadSampleError(f"image file cannot be decoded (corrupt, truncated or not an image): {path} "
                             "(copy or download it again)", reason="bad_image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def check_keypoints_in_image(record: PersonRecord, height: int, width: int) -> None:
    """Raise BadSampleError when a labelled keypoint of ``record`` is non-finite or far outside the image.

    Args:
        record: its ``keypoints`` (17, 3) are ``[x, y, v]`` in image px; only ``v > 0`` points are checked.
        height, width: image size in px.
    """
    kp = np.asarray(record.keypoints, np.float64).reshape(NUM_KEYPOINTS, 3)
    labelled = kp[:, 2] > 0
    if not np.all(np.isfinite(kp[labelled, :2])):
        raise BadSampleError(f"{record.sample_id} ({record.image_path}): labelled keypoints with non-finite "
                             "coordinates; fix them or set their visibility v to 0", reason="bad_keypoints")
    margin = KEYPOINT_OUTSIDE_MARGIN * max(height, width)
    outside = labelled & ((kp[:, 0] < -margin) | (kp[:, 0] > width - 1 + margin) | (kp[:, 1] < -margin)
                          | (kp[:, 1] > height - 1 + margin))
    if outside.any():
        first = int(np.argmax(outside))
        raise BadSampleError(
            f"{record.sample_id} ({record.image_path}): {int(outside.sum())} labelled keypoints lie outside the "
            f"{width}x{height} image (keypoint {first} at x={kp[first, 0]:.1f}, y={kp[first, 1]:.1f}); the "
            "annotation belongs to another image or resolution: fix it or set those keypoints' v to 0",
            reason="keypoints_outside_image")


def flip_smpl_pose(pose: np.ndarray) -> np.ndarray:
    """Mirror an axis-angle SMPL pose (72,) left-right: swap left/right joints, negate the y and z axes."""
    perm = get_convention("smpl24").flip_perm
    flipped = np.asarray(pose, dtype=np.float64).reshape(24, 3)[perm].copy()
    flipped[:, 1:] *= -1.0
    return flipped.reshape(72)


class TopDownTransform:
    """Builds a sample from a :class:`PersonRecord`.

    Args:
        crop_size: side of the square crop in px (224 for the regressor, 256 for the context estimator).
        map_size: side of the centermaps in px.
        scale_factor: crop side = scale_factor x max(box w, h) (1.2 as SPIN).
        sigma: centermap Gaussian sigma in map px.
        augment: an AugmentationConfig to train with, or None for evaluation.
    """

    def __init__(self, crop_size: int = 224, map_size: int = 56, scale_factor: float = 1.2,
                 sigma: float = 2.0, augment: AugmentationConfig | None = None):
        self.crop_size = crop_size
        self.map_size = map_size
        self.scale_factor = scale_factor
        self.sigma = sigma
        self.augment = augment
        self._coco_flip = get_convention("coco17").flip_perm
        self._photometric = None
        if augment is not None and (augment.brightness_contrast > 0 or augment.noise_prob > 0):
            self._photometric = A.Compose([
                A.RandomBrightnessContrast(brightness_limit=augment.brightness_contrast,
                                           contrast_limit=augment.brightness_contrast, p=0.8),
                A.GaussNoise(std_range=(0.02, 0.08), p=augment.noise_prob),
            ])

    def _sample_augmentation(self, rng: np.random.Generator,
                             epoch: int | None = None) -> tuple[float, float, np.ndarray, bool]:
        """(rotation degrees, box scale, centre shift (2,) in box sides, flip) of one sample in ``epoch``.

        ``epoch`` (0-based; None = full strength) sets the share of the geometric ramp
        (``AugmentationConfig.geometric_ramp_epochs``): it scales the probabilities and ranges.
        """
        aug = self.augment
        if aug is None:
            return 0.0, 1.0, np.zeros(2), False
        strength = aug.geometric_strength(epoch)
        rotation = 0.0
        if aug.rotation_deg > 0 and rng.random() < aug.rotation_prob * strength:
            rotation = float(np.clip(rng.standard_normal() * aug.rotation_deg, -2 * aug.rotation_deg,
                                     2 * aug.rotation_deg))
        scale_range = aug.scale * strength
        scale = float(np.clip(1.0 + rng.standard_normal() * scale_range, 1.0 - scale_range, 1.0 + scale_range))
        shift = rng.uniform(-aug.translation, aug.translation, size=2) * strength
        flip = bool(rng.random() < aug.flip_prob * strength)
        return rotation, scale, shift, flip

    def __call__(self, record: PersonRecord, rng: np.random.Generator | None = None,
                 image: np.ndarray | None = None, epoch: int | None = None) -> dict:
        box = np.asarray(record.box, dtype=np.float64)
        if box.shape != (4,) or not np.all(np.isfinite(box)) or box[2] <= 0 or box[3] <= 0:
            raise BadSampleError(f"{record.sample_id}: box {box.tolist()} is not a finite xywh box with positive "
                                 "size; fix or drop this annotation", reason="bad_box")
        if image is None:
            image = read_image_rgb(record.image_path)
        if record.keypoints is not None:
            check_keypoints_in_image(record, *image.shape[:2])
        rng = rng if rng is not None else np.random.default_rng(0)
        rotation, scale, shift, flip = self._sample_augmentation(rng, epoch)

        center, size = box_to_center_size(box, self.scale_factor)
        size = float(size) * scale
        center = np.asarray(center, np.float64) + shift * size
        affine = np.asarray(crop_affine(center, size, self.crop_size, rotation), dtype=np.float64)
        if flip:  # mirror the crop: x -> S - 1 - x, composed after the crop
            mirror = np.array([[-1.0, 0.0, self.crop_size - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
            affine = (mirror @ np.vstack([affine, [0.0, 0.0, 1.0]]))[:2]

        crop = cv2.warpAffine(image, affine, (self.crop_size, self.crop_size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
        if self._photometric is not None:
            # albumentations draws from its own generator: seed it from this sample's rng (reproducible)
            self._photometric.set_random_seed(int(rng.integers(2**31 - 1)))
            crop = self._photometric(image=crop)["image"]
        pixels = (crop.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD

        # In-plane rotation of the crop, as a 3D rotation about the camera's optical axis.
        linear = affine[:, :2] / np.sqrt(abs(np.linalg.det(affine[:, :2])))
        if flip:
            linear = np.diag([-1.0, 1.0]) @ linear
        rot3 = np.eye(3)
        rot3[:2, :2] = linear

        keypoints_2d = np.zeros((NUM_KEYPOINTS, 3), np.float32)
        visibility = np.zeros(NUM_KEYPOINTS, np.int64)
        if record.keypoints is not None:
            kp = np.asarray(record.keypoints, np.float64).reshape(NUM_KEYPOINTS, 3)
            keypoints_2d[:, :2] = apply_affine(affine, kp[:, :2])
            keypoints_2d[:, 2] = kp[:, 2] > 0
            visibility[:] = kp[:, 2].astype(np.int64)
            if flip:
                keypoints_2d, visibility = keypoints_2d[self._coco_flip], visibility[self._coco_flip]

        keypoints_3d = np.zeros((NUM_KEYPOINTS, 4), np.float32)
        if record.keypoints_3d is not None:
            kp3 = np.asarray(record.keypoints_3d, np.float64).reshape(NUM_KEYPOINTS, 4)
            keypoints_3d[:, :3] = kp3[:, :3] @ rot3.T  # rotate, then mirror (the order of the crop affine)
            keypoints_3d[:, 3] = kp3[:, 3]
            if flip:
                keypoints_3d[:, 0] *= -1.0
                keypoints_3d = keypoints_3d[self._coco_flip]

        smpl_pose = np.zeros(72, np.float32)
        smpl_betas = np.zeros(10, np.float32)
        if record.smpl_pose is not None:
            pose = np.asarray(record.smpl_pose, np.float64).reshape(72).copy()
            root = axis_angle_to_rotmat(torch.from_numpy(pose[:3]))
            pose[:3] = rotmat_to_axis_angle(torch.from_numpy(rot3) @ root).numpy()
            if flip:
                pose = flip_smpl_pose(pose)
            smpl_pose = pose.astype(np.float32)
            smpl_betas = np.asarray(record.smpl_betas, np.float32).reshape(10)

        centermaps = render_centermaps(record.center, record.image_centers, affine, self.crop_size,
                                       self.map_size, self.sigma)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1))),
            "centermaps": centermaps,
            "box": torch.tensor(box, dtype=torch.float32),
            "box_score": torch.tensor(record.box_score, dtype=torch.float32),
            "crop_affine": torch.tensor(affine, dtype=torch.float32),
            "keypoints_2d": torch.from_numpy(keypoints_2d),
            "visibility": torch.from_numpy(visibility),
            "keypoints_3d": torch.from_numpy(keypoints_3d),
            "has_keypoints_3d": torch.tensor(record.keypoints_3d is not None),
            "smpl_pose": torch.from_numpy(smpl_pose),
            "smpl_betas": torch.from_numpy(smpl_betas),
            "has_smpl": torch.tensor(record.smpl_pose is not None),
            "gender": torch.tensor(int(record.gender), dtype=torch.int64),
            "occlusion_ratio": torch.tensor(record.occlusion_ratio, dtype=torch.float32),
            "distractor": torch.tensor(record.distractor, dtype=torch.float32),
            "image_id": torch.tensor(int(record.image_id), dtype=torch.int64),
            "ann_id": torch.tensor(int(record.ann_id), dtype=torch.int64),
            "dataset": record.dataset,
            "sample_id": record.sample_id,
        }
