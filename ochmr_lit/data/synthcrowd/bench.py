"""Generation speed: ``python -m ochmr_lit.data.synthcrowd.bench [--images N] [--workers K]``."""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from ochmr_lit.data.synthcrowd.builder import GeneratorConfig
from ochmr_lit.data.synthcrowd.generate import iter_images


def benchmark(
    num_images: int = 96,
    image_size: tuple[int, int] = (256, 256),
    num_people: int = 4,
    num_workers: int = 2,
    seed: int = 0,
    out_dir: str | Path | None = None,
) -> float:
    """Images per second of SynthCrowd generation (scene, body model, render, annotation, JPEG written).

    The rate is taken over the second half of the images, after the workers have started and warmed up
    (start-up, a few seconds per process, is a one-off cost per split).

    Args:
        num_images: images to generate (at least 4).
        image_size: (H, W) pixels.
        num_people: people in every scene.
        num_workers: worker processes (0 = this process).
        seed: split seed.
        out_dir: where the images go; a temporary folder (deleted afterwards) when None.
    Returns:
        images per second.
    """
    if num_images < 4:
        raise ValueError(f"num_images must be at least 4 for a steady-state rate, got {num_images}")
    config = GeneratorConfig(image_size=tuple(int(v) for v in image_size), people=(num_people, num_people))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(out_dir) if out_dir is not None else Path(tmp)
        (folder / "images").mkdir(parents=True, exist_ok=True)
        stamps = [time.perf_counter() for _ in iter_images(config, seed, num_images, folder, num_workers)]
    half = num_images // 2
    return (num_images - half) / (stamps[-1] - stamps[half - 1])


def main(argv: Sequence[str] | None = None) -> int:
    """Prints the generation rate."""
    p = argparse.ArgumentParser(prog="python -m ochmr_lit.data.synthcrowd.bench", description=__doc__)
    p.add_argument("--images", type=int, default=96)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--people", type=int, default=4)
    p.add_argument("--image-size", type=int, nargs=2, default=(256, 256), metavar=("H", "W"))
    args = p.parse_args(argv)
    load = os.getloadavg()[0]
    rate = benchmark(args.images, tuple(args.image_size), args.people, args.workers)
    h, w = args.image_size
    print(
        f"SynthCrowd generation: {rate:.1f} images/s at {h}x{w}, {args.people} people, {args.workers} workers "
        f"({os.cpu_count()} CPUs, load average {load:.1f} before the run)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
