"""Command line: generate a SynthCrowd split, optionally with a preview grid.

python -m ochmr_lit.data.synthcrowd --out DIR --num-images N --seed S [--image-size H W]
    [--num-workers K] [--max-people M] [--poses POSES.npz] [--body-model-dir DIR]
    [--preview GRID.png] [--preview-count 8]
"""

from __future__ import annotations

import argparse
import json
import zipfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from ochmr_lit.body.files import resolve_body_model_dir
from ochmr_lit.data.synthcrowd.generate import MIN_IMAGE_SIDE, generate_synthcrowd
from ochmr_lit.data.synthcrowd.preview import write_preview
from ochmr_lit.data.synthcrowd.scene import load_user_poses
from ochmr_lit.errors import ConfigError, DataError, MissingFileError, OneLineArgumentParser, user_errors


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser (a mistake raises a one-line ConfigError)."""
    p = OneLineArgumentParser(prog="python -m ochmr_lit.data.synthcrowd", description=__doc__.split("\n")[0])
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


def check_numbers(args: argparse.Namespace) -> None:
    """Counts and sizes that cannot make a split are refused naming the argument."""
    least = {"--num-images": (args.num_images, 1), "--max-people": (args.max_people, 1),
             "--num-workers": (args.num_workers, 0), "--preview-count": (args.preview_count, 1),
             "--image-size": (min(args.image_size), MIN_IMAGE_SIDE)}
    for name, (value, minimum) in least.items():
        if value < minimum:
            shown = " ".join(map(str, args.image_size)) if name == "--image-size" else value
            raise ConfigError(f"{name} {shown}: must be at least {minimum}")


def check_poses(path: str) -> None:
    """``--poses`` must be an .npz of SMPL pose vectors; read once here so a bad file stops before generation."""
    if not Path(path).is_file():
        raise MissingFileError(f"--poses {path}: no such file; pass an .npz with SMPL poses under 'poses' (N, 72)")
    try:
        load_user_poses(path)
    except (ValueError, zipfile.BadZipFile) as error:
        named = str(error) if path in str(error) else f"{path}: {error}"  # the reader names the file it rejects
        raise DataError(f"--poses {named}") from error


def check_arguments(args: argparse.Namespace) -> None:
    """Every user mistake in the arguments, found before anything is generated."""
    check_numbers(args)
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise ConfigError(f"--out {args.out} is a file; pass a folder for the split")
    if args.poses is not None:
        check_poses(args.poses)
    if args.body_model_dir is not None:
        try:
            resolve_body_model_dir(args.body_model_dir)
        except FileNotFoundError as error:
            raise MissingFileError(f"--body-model-dir: {error}") from error


def generate(argv: Sequence[str] | None) -> None:
    """Generate the split (and the preview) the arguments describe and print what was made."""
    args = build_parser().parse_args(argv)
    check_arguments(args)
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


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the CLI; returns the exit status. A user mistake prints one line ``error: ...`` and exits with
    status 2 (the traceback with ``HYDRA_FULL_ERROR=1``)."""
    with user_errors():
        generate(argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
