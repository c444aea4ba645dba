"""Command line: generate a SynthCrowd split, optionally with a preview grid.

python -m ochmr_lit.data.synthcrowd --out DIR --num-images N --seed S [--image-size H W]
    [--num-workers K] [--max-people M] [--poses POSES.npz] [--body-model-dir DIR]
    [--preview GRID.png] [--preview-count 8]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Sequence

from ochmr_lit.data.synthcrowd.generate import generate_synthcrowd
from ochmr_lit.data.synthcrowd.preview import write_preview


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser."""
    p = argparse.ArgumentParser(prog="python -m ochmr_lit.data.synthcrowd", description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="split folder to write (images/, annotations.json, smpl_gt.npz)")
    p.add_argument("--num-images", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--image-size", type=int, nargs=2, default=(256, 256), metavar=("H", "W"))
    p.add_argument("--num-workers", type=int, default=0, help="worker processes (output does not depend on it)")
    p.add_argument("--max-people", type=int, default=6)
    p.add_argument("--poses", default=None, help=".npz with SMPL poses under 'poses' (N, 72) or 'pose'")
    p.add_argument("--body-model-dir", default=None, help="SMPL model folder (default: the synthetic model)")
    p.add_argument("--preview", default=None, help="write a grid of the first images with keypoints here")
    p.add_argument("--preview-count", type=int, default=8)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the CLI; returns the exit status."""
    args = build_parser().parse_args(argv)
    out = generate_synthcrowd(
        args.out,
        args.num_images,
        args.seed,
        image_size=tuple(args.image_size),
        num_workers=args.num_workers,
        max_people=args.max_people,
        poses_npz=args.poses,
        body_model_dir=args.body_model_dir,
    )
    doc = json.loads((out / "annotations.json").read_text())
    buckets = Counter(a["occlusion_bucket"] for a in doc["annotations"])
    print(
        f"SynthCrowd: {len(doc['images'])} images, {len(doc['annotations'])} people in {out} "
        f"(occlusion none {buckets['none']}, partial {buckets['partial']}, heavy {buckets['heavy']})"
    )
    if args.preview:
        path = write_preview(out, args.preview, count=args.preview_count)
        print(f"preview: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
