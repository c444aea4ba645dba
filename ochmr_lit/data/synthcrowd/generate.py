"""SynthCrowd splits: generation across worker processes, the files, and the cache of ready splits.

Each image ``i`` of a split with seed ``s`` depends on ``(s, i)`` only (see
:mod:`ochmr_lit.data.synthcrowd.builder`), so the output is the same whatever the number of worker
processes. Workers (``spawn``) each hold their own body model and EGL context, write their images, and
send the annotations back; the main process collects them in image order and writes the annotation
files (:mod:`ochmr_lit.data.synthcrowd.writer`). :func:`ensure_synthcrowd` regenerates a split only when
its ``DONE`` marker is missing or records other parameters, one process at a time per split (a file lock).
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing as mp
import os
import re
import shutil
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ochmr_lit.body import GENDERS, resolve_body_model_dir
from ochmr_lit.body.mean_params import mean_params_of_synthcrowd_split, save_mean_params
from ochmr_lit.body.synthetic import MEAN_PARAMS_FILE
from ochmr_lit.command_choices import DEFAULT_SPLITS
from ochmr_lit.data.synthcrowd import writer
from ochmr_lit.data.synthcrowd.annotate import occlusion_bucket
from ochmr_lit.data.synthcrowd.builder import GeneratorConfig, SynthCrowdGenerator
from ochmr_lit.data.synthcrowd.scene import load_user_poses
from ochmr_lit.paths import cache_entry_lock
from ochmr_lit.progress import ProgressLog

log = logging.getLogger(__name__)

#: Bumped whenever the generated content changes, so cached splits are regenerated.
GENERATOR_VERSION = 2

#: Least image side (px) SynthCrowd renders.
MIN_IMAGE_SIDE = 16


def split_seed(seed: int, split: str) -> int:
    """Seed of a named split, derived from the dataset seed and the split name (stable across runs)."""
    return int(np.random.SeedSequence([int(seed), zlib.crc32(split.encode("utf-8"))]).generate_state(1)[0])


# -- writing ----------------------------------------------------------------------------------------------


def _image_name(index: int, ext: str) -> str:
    return f"images/{index:06d}.{ext}"


def _annotation_record(person: dict[str, Any]) -> dict[str, Any]:
    """COCO annotation fields of one person (floats rounded; ids filled in by the caller)."""
    px, m = writer.PIXEL_DECIMALS, writer.METRIC_DECIMALS
    kp = person["keypoints"]
    flat = []
    for x, y, v in kp:
        v = int(v)
        flat += [
            writer.rounded(float(x), px) if v > 0 else 0,
            writer.rounded(float(y), px) if v > 0 else 0,
            v,
        ]
    return {
        "category_id": 1,
        "iscrowd": 0,
        "bbox": writer.rounded(person["bbox"], px),
        "bbox_amodal": writer.rounded(person["bbox_amodal"], px),
        "area": int(person["area"]),
        "segmentation": person["segmentation"],
        "keypoints": flat,
        "num_keypoints": int(person["num_keypoints"]),
        "visibility_code": [int(c) for c in person["visibility_code"]],
        "occlusion_ratio": writer.rounded(person["occlusion_ratio"], m),
        # From the written (rounded) ratio, so the file agrees with occlusion_bucket() of its own value.
        "occlusion_bucket": occlusion_bucket(writer.rounded(person["occlusion_ratio"], m)),
        "body_center": writer.rounded(person["body_center"], px),
        "smpl_pose": writer.rounded(person["pose"], m),
        "smpl_betas": writer.rounded(person["betas"], m),
        "transl": writer.rounded(person["transl"], m),
        "gender": GENDERS[int(person["gender"])],
        "joints_3d": writer.rounded(person["joints_3d"], m),
        "user_pose": bool(person["user_pose"]),
        # SPIN-format extras carried to the npz (dropped from the JSON by the collector).
        "_part": writer.rounded(person["part"], px),
        "_S": writer.rounded(person["S"], m),
        "_openpose": writer.rounded(person["openpose"], px),
        "_center": writer.rounded(person["center"], px),
        "_scale": writer.rounded(person["scale"], m),
    }


_WORKER: dict[str, Any] = {}


def _init_worker(config: GeneratorConfig, out_dir: str, worker_process: bool = False) -> None:
    torch.set_num_threads(1)
    if worker_process:
        # One thread per worker for the software rasteriser too (read when the EGL context is created):
        # K workers then use K cores instead of oversubscribing them. Results do not depend on it.
        os.environ.setdefault("LP_NUM_THREADS", "1")
    _WORKER.clear()
    try:
        _WORKER["generator"] = SynthCrowdGenerator(config)
    except Exception as exc:
        if not worker_process:
            raise
        # A pool restarts workers whose initializer fails, forever: keep the error and raise it from
        # the first task instead, so it reaches the caller.
        _WORKER["error"] = f"{type(exc).__name__}: {exc}"
    _WORKER["out_dir"] = Path(out_dir)


def _work(task: tuple[int, int]) -> dict[str, Any]:
    seed, index = task
    if "error" in _WORKER:
        raise RuntimeError(f"a SynthCrowd worker could not start: {_WORKER['error']}")
    gen: SynthCrowdGenerator = _WORKER["generator"]
    result = gen.generate(seed, index)
    name = _image_name(index, gen.config.image_ext)
    writer.write_image(_WORKER["out_dir"] / name, result.image)
    h, w = gen.config.image_size
    return {
        "index": index,
        "file_name": name,
        "width": w,
        "height": h,
        "camera": {
            "focal": writer.rounded([result.K[0, 0], result.K[1, 1]], writer.METRIC_DECIMALS),
            "principal_point": writer.rounded([result.K[0, 2], result.K[1, 2]], writer.METRIC_DECIMALS),
        },
        "people": [_annotation_record(p) for p in result.people],
    }


@contextmanager
def _single_thread_torch() -> Iterator[None]:
    """Generation runs torch on one thread in every process, so results do not depend on the worker count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def iter_images(
    config: GeneratorConfig, seed: int, num_images: int, out_dir: Path, num_workers: int = 0
) -> Iterator[dict[str, Any]]:
    """Generates images ``0 .. num_images - 1`` (writing each image file); yields their records in order."""
    tasks = [(int(seed), i) for i in range(num_images)]
    if num_workers <= 0:
        with _single_thread_torch():
            _init_worker(config, str(out_dir))
            try:
                for task in tasks:
                    yield _work(task)
            finally:
                _WORKER.clear()
        return
    ctx = mp.get_context("spawn")
    chunk = max(1, min(8, num_images // (4 * num_workers)))
    with ctx.Pool(num_workers, initializer=_init_worker, initargs=(config, str(out_dir), True)) as pool:
        yield from pool.imap(_work, tasks, chunksize=chunk)


def _file_digest(paths: Sequence[Path]) -> str:
    digest = hashlib.sha1()
    for path in paths:
        if path.is_file():
            digest.update(path.name.encode())
            with open(path, "rb") as f:
                for block in iter(lambda f=f: f.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def generation_params(config: GeneratorConfig, num_images: int, seed: int) -> dict[str, Any]:
    """What a split's DONE marker records: equal parameters mean the split need not be regenerated."""
    model_dir = resolve_body_model_dir(config.body_model_dir)
    model_files = sorted(p for p in Path(model_dir).iterdir() if p.suffix in (".pkl", ".npy", ".npz"))
    return {
        "generator_version": GENERATOR_VERSION,
        "num_images": int(num_images),
        "seed": int(seed),
        "image_size": [int(v) for v in config.image_size],
        "people": [int(v) for v in config.people],
        "image_ext": config.image_ext,
        "body_model_sha1": _file_digest(model_files),
        "poses_sha1": _file_digest([Path(config.poses_npz)]) if config.poses_npz else None,
    }


def _collect(records: Iterator[dict[str, Any]], num_images: int,
             progress: ProgressLog | None = None) -> tuple[list[dict], list[dict], dict]:
    images, annotations = [], []
    npz: dict[str, list] = {k: [] for k in writer.NPZ_FIELDS}
    ann_id = 0
    for rec in records:
        if progress is not None:
            progress.update()
        image_id = rec["index"] + 1  # COCO ids start at 1 (COCOeval treats id 0 as "unmatched")
        images.append(
            {
                "id": image_id,
                "file_name": rec["file_name"],
                "width": rec["width"],
                "height": rec["height"],
                "camera": rec["camera"],
            }
        )
        for person in rec["people"]:
            ann_id += 1
            spin = {k: person.pop(k) for k in ("_part", "_S", "_openpose", "_center", "_scale")}
            annotations.append({"id": ann_id, "image_id": image_id, **person})
            npz["imgname"].append(rec["file_name"])
            npz["center"].append(spin["_center"])
            npz["scale"].append(spin["_scale"])
            npz["part"].append(spin["_part"])
            npz["S"].append(spin["_S"])
            npz["pose"].append(person["smpl_pose"])
            npz["shape"].append(person["smpl_betas"])
            npz["has_smpl"].append(1)
            npz["openpose"].append(spin["_openpose"])
            npz["gender"].append(person["gender"][0])
            npz["ann_id"].append(ann_id)
            npz["image_id"].append(image_id)
            npz["transl"].append(person["transl"])
            npz["focal"].append(rec["camera"]["focal"])
            npz["principal_point"].append(rec["camera"]["principal_point"])
            npz["occlusion_ratio"].append(person["occlusion_ratio"])
    if len(images) != num_images:
        raise RuntimeError(f"generation produced {len(images)} of {num_images} images")
    shapes = {
        "center": (2,),
        "part": (24, 3),
        "S": (24, 4),
        "pose": (72,),
        "shape": (10,),
        "openpose": (25, 3),
        "transl": (3,),
        "focal": (2,),
        "principal_point": (2,),
    }
    arrays: dict[str, np.ndarray] = {}
    for key, values in npz.items():
        if key in ("imgname", "gender"):
            arrays[key] = np.array(values, dtype=str) if values else np.zeros(0, dtype="<U1")
        elif key in ("has_smpl", "ann_id", "image_id"):
            arrays[key] = np.array(values, dtype=np.int64)
        else:
            arrays[key] = np.array(values, dtype=np.float64).reshape((len(values),) + shapes.get(key, ()))
    return images, annotations, arrays


def generate_synthcrowd(
    out_dir: str | Path,
    num_images: int,
    seed: int,
    image_size: tuple[int, int] = (256, 256),
    num_workers: int = 0,
    max_people: int = 6,
    poses_npz: str | Path | None = None,
    body_model_dir: str | Path | None = None,
    min_people: int = 1,
) -> Path:
    """Generates a SynthCrowd split into ``out_dir`` (see :mod:`ochmr_lit.data.synthcrowd.writer`).

    Args:
        out_dir: split folder (created; files this function owns are replaced).
        num_images: images to generate.
        seed: split seed; image ``i`` depends only on ``(seed, i)``.
        image_size: (H, W) pixels.
        num_workers: worker processes (0 = in this process); the output does not depend on it.
        max_people, min_people: people per scene, uniform in ``[min_people, max_people]``.
        poses_npz: optional SMPL poses to mix in (key ``poses`` (N, 72) or ``pose``).
        body_model_dir: body model folder; None = the synthetic model.
    Returns:
        ``out_dir`` as a Path.
    """
    if num_images < 1:
        raise ValueError(f"num_images must be at least 1, got {num_images}")
    if not 1 <= min_people <= max_people:
        raise ValueError(f"need 1 <= min_people <= max_people, got {min_people}, {max_people}")
    h, w = (int(v) for v in image_size)
    if h < MIN_IMAGE_SIDE or w < MIN_IMAGE_SIDE:
        raise ValueError(f"image_size (H, W) must be at least {MIN_IMAGE_SIDE} x {MIN_IMAGE_SIDE}, got {image_size}")
    if poses_npz is not None:
        load_user_poses(str(poses_npz))  # fail early with the file's error
    config = GeneratorConfig(
        image_size=(h, w),
        people=(int(min_people), int(max_people)),
        body_model_dir=str(body_model_dir) if body_model_dir is not None else None,
        poses_npz=str(poses_npz) if poses_npz is not None else None,
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    done = out_dir / "DONE"
    done.unlink(missing_ok=True)  # the split is incomplete until the end
    images_dir = out_dir / "images"
    images_dir.mkdir(exist_ok=True)
    params = generation_params(config, num_images, seed)

    records = iter_images(config, seed, num_images, out_dir, num_workers)
    progress = ProgressLog(log, f"generating SynthCrowd {out_dir.name}", num_images, "images")
    images, annotations, arrays = _collect(records, num_images, progress)
    # Remove images of an earlier, larger generation into the same folder (only files named like ours).
    wanted = {Path(im["file_name"]).name for im in images}
    for path in images_dir.iterdir():
        if re.fullmatch(r"\d{6}\.(jpg|png)", path.name) and path.name not in wanted:
            path.unlink()
    info = {
        "description": "SynthCrowd: synthetic crowds rendered from an SMPL-format body model",
        "version": str(GENERATOR_VERSION),
        "seed": int(seed),
    }
    writer.write_json(out_dir / "annotations.json", writer.coco_document(images, annotations, info))
    writer.write_npz(out_dir / "smpl_gt.npz", arrays)
    write_split_mean_params(out_dir)
    writer.write_json(done, params)
    return out_dir


def write_split_mean_params(split_dir: Path) -> Path:
    """The split's own SPIN-format mean parameters (``smpl_mean_params.npz``): the regressor's IEF start."""
    params, people = mean_params_of_synthcrowd_split(split_dir)
    return save_mean_params(Path(split_dir) / MEAN_PARAMS_FILE, params, source=f"synthcrowd:{Path(split_dir).name}",
                            num_people=people)


def is_complete(split_dir: Path, params: Mapping[str, Any]) -> bool:
    """Whether ``split_dir`` holds a finished generation with exactly these parameters."""
    import json

    done = Path(split_dir) / "DONE"
    if not done.is_file():
        return False
    try:
        recorded = json.loads(done.read_text())
    except (OSError, ValueError):
        return False
    return (
        recorded == dict(params)
        and (split_dir / "annotations.json").is_file()
        and (split_dir / "smpl_gt.npz").is_file()
    )


def ensure_synthcrowd(
    root: str | Path,
    splits: Mapping[str, int] | None = None,
    seed: int = 0,
    image_size: tuple[int, int] = (256, 256),
    body_model_dir: str | Path | None = None,
    num_workers: int = 0,
    max_people: int = 6,
) -> dict[str, Path]:
    """Generates each split into ``root/<split>`` unless a complete one with the same parameters exists.

    Args:
        root: folder of the splits.
        splits: images per split (default :data:`DEFAULT_SPLITS`); each split's seed is
            :func:`split_seed` ``(seed, name)``.
        seed: dataset seed.
        image_size: (H, W) pixels.
        body_model_dir: body model folder; None = the synthetic model.
        num_workers: worker processes for generation.
        max_people: people per scene at most.
    Returns:
        ``{split: folder}``.
    Concurrent calls for the same split wait for each other (:func:`~ochmr_lit.paths.cache_entry_lock`): the split
    is generated once.
    """
    root = Path(root)
    splits = dict(DEFAULT_SPLITS if splits is None else splits)
    out: dict[str, Path] = {}
    for name, count in splits.items():
        if not re.fullmatch(r"[A-Za-z0-9_\-]+", name):
            raise ValueError(f"split name {name!r} must be letters, digits, '_' or '-'")
        s = split_seed(seed, name)
        split_dir = root / name
        config = GeneratorConfig(
            image_size=tuple(int(v) for v in image_size),
            people=(1, int(max_people)),
            body_model_dir=str(body_model_dir) if body_model_dir is not None else None,
        )
        params = generation_params(config, int(count), s)
        with cache_entry_lock(split_dir, f"generating SynthCrowd {split_dir}"):
            if not is_complete(split_dir, params):
                if split_dir.exists():
                    # A stale or interrupted split: clear the files generation owns, then regenerate.
                    for item in ("annotations.json", "smpl_gt.npz", "DONE"):
                        (split_dir / item).unlink(missing_ok=True)
                    if (split_dir / "images").is_dir():
                        shutil.rmtree(split_dir / "images")
                generate_synthcrowd(
                    split_dir,
                    int(count),
                    s,
                    image_size=image_size,
                    num_workers=num_workers,
                    max_people=max_people,
                    body_model_dir=body_model_dir,
                )
        out[name] = split_dir
    return out
