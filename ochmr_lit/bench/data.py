"""Benchmark section ``data``: crops per second of one data-loading worker against the training step's need.

A SynthCrowd split is generated into a temporary folder (:func:`ensure_synthcrowd`), read with the
SynthCrowd reader, and served by the real :class:`TopDownDataset` + :class:`TopDownTransform` with the
default training augmentation: JPEG decode, affine crop, photometric augmentation, label transforms and
centermaps for every sample. One worker is one process with one thread (as a DataLoader worker: torch
and OpenCV limited to one thread while timing). The baseline is the OCHMR training step's consumption
(img/s at bf16-mixed + channels_last, same crop size), measured in the same run; the note says how many
workers keep the step fed.
"""

from __future__ import annotations

import contextlib
import math
import tempfile
import time
from collections.abc import Iterator

import cv2
import torch

from ochmr_lit.bench import PerfRow
from ochmr_lit.bench.workloads import build_training_models, synthetic_batch, training_throughput
from ochmr_lit.data.dataset import TopDownDataset
from ochmr_lit.data.readers.synthcrowd import load_synthcrowd_records
from ochmr_lit.data.synthcrowd import ensure_synthcrowd
from ochmr_lit.data.transforms import AugmentationConfig, TopDownTransform

SECTION = "data"


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """torch and OpenCV limited to one thread inside the block (a DataLoader worker's setting)."""
    torch_threads, cv2_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        torch.set_num_threads(torch_threads)
        cv2.setNumThreads(cv2_threads)


def crops_per_second(dataset: torch.utils.data.Dataset, num_crops: int) -> float:
    """Samples per second of ``dataset[(epoch, index)]`` over ``num_crops`` keys, cycling over the records
    (each pass is a new epoch, so every sample draws a new augmentation), in one thread."""
    n = len(dataset)
    if n == 0:
        raise ValueError("the benchmark dataset has no samples; generate more SynthCrowd images")
    keys = [(i // n, i % n) for i in range(num_crops)]
    with single_thread():
        dataset[keys[0]]  # first call: imports and one-off allocations, untimed
        start = time.perf_counter()
        for key in keys:
            dataset[key]
        return num_crops / (time.perf_counter() - start)


def run(
    quick: bool = False,
    device: str = "cpu",
    *,
    num_images: int | None = None,
    image_size: tuple[int, int] = (256, 256),
    crop_size: int | None = None,
    num_crops: int | None = None,
    backbone: str | None = None,
    batch_size: int | None = None,
    rounds: int | None = None,
) -> list[PerfRow]:
    """Data pipeline crops/s per worker and the OCHMR training step's img/s.

    Args:
        quick: 4 images, 32 crops, 128 px crops; training consumption with ResNet-18, batch 2.
        device: where the training step whose consumption is the baseline runs.
        num_images, image_size: SynthCrowd images generated (full: 16 at 256 x 256).
        crop_size: crop side, px (full: 224). num_crops: crops timed (full: 200).
        backbone, batch_size, rounds: the training step's settings (full: resnet50, batch 16, 5 rounds).
    """
    num_images = num_images or (4 if quick else 16)
    crop_size = crop_size or (128 if quick else 224)
    num_crops = num_crops or (32 if quick else 200)
    backbone = backbone or ("resnet18" if quick else "resnet50")
    batch_size = batch_size or (2 if quick else 16)
    rounds = rounds or (2 if quick else 5)

    with tempfile.TemporaryDirectory() as tmp:
        split = ensure_synthcrowd(tmp, {"train": num_images}, seed=0, image_size=image_size)["train"]
        records, skipped = load_synthcrowd_records(split)
        transform = TopDownTransform(crop_size, crop_size // 4, augment=AugmentationConfig())
        dataset = TopDownDataset(records, transform, seed=0)
        rate = crops_per_second(dataset, num_crops)

    batch = synthetic_batch(batch_size, crop_size, device)
    models = build_training_models(backbone, batch, device, channels_last=True, bf16=True, include=("ochmr",))
    consumption = training_throughput(models, batch_size, device, rounds)[models[0].name]
    workers = math.ceil(consumption / rate)
    skipped_note = f", {sum(skipped.values())} annotations skipped ({dict(skipped)})" if skipped else ""
    return [
        PerfRow(
            SECTION,
            f"TopDownTransform decode + crop + augmentation, 1 worker, {crop_size}px crops from "
            f"{len(records)} people in {num_images} SynthCrowd images {image_size[0]}x{image_size[1]}",
            rate,
            "crops/s",
            baseline=f"{models[0].name} training step consumption, batch {batch_size}, bf16-mixed, channels_last",
            baseline_value=consumption,
            note=f"{workers} worker(s) keep the training step fed{skipped_note}",
        )
    ]
