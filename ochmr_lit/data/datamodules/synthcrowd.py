"""The SynthCrowd DataModule: generates the benchmark into the cache on first use, then reads it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ochmr_lit.body.synthetic import MEAN_PARAMS_FILE
from ochmr_lit.data.datamodules.base import TopDownDataModule
from ochmr_lit.data.readers.synthcrowd import load_synthcrowd_records
from ochmr_lit.data.schema import PersonRecord
from ochmr_lit.data.synthcrowd.generate import (
    DEFAULT_SPLITS,
    MIN_IMAGE_SIDE,
    ensure_synthcrowd,
    write_split_mean_params,
)
from ochmr_lit.errors import ConfigError
from ochmr_lit.paths import cache_dir
from ochmr_lit.setting_types import is_whole


def check_splits(splits: dict[str, Any], key: str = "data.splits") -> dict[str, int]:
    """``data.splits`` (split name -> images to generate) with each count a whole number >= 1.

    Raises:
        ConfigError naming the key (``<key>.<split>``) and a valid value: the generator makes every split it names.
    """
    for name, count in splits.items():
        if not is_whole(count, 1):
            example = DEFAULT_SPLITS.get(str(name), 100)
            raise ConfigError(f"{key}.{name}={count!r}: the number of SynthCrowd images generated for the {name} "
                              f"split, a whole number >= 1 (e.g. {key}.{name}={example})")
    return {str(name): int(count) for name, count in splits.items()}


def check_generation_settings(values: Mapping[str, Any], key: str = "data") -> None:
    """SynthCrowd's generation settings of a data config (``values``: its keys), each named with a valid value:
    ``splits`` (:func:`check_splits`), ``generation_seed`` a whole number >= 0, ``image_size`` two whole numbers of
    at least :data:`MIN_IMAGE_SIDE` px, ``generation_workers`` a whole number >= 0."""
    if values.get("splits") is not None:
        check_splits(values["splits"], f"{key}.splits")
    seed = values.get("generation_seed", 0)
    if not is_whole(seed, 0):
        raise ConfigError(f"{key}.generation_seed={seed!r}: the seed SynthCrowd's scenes are drawn with, a whole "
                          "number >= 0 (each seed has a cache folder of its own)")
    size = values.get("image_size", (256, 256))
    if (not isinstance(size, (list, tuple)) or len(size) != 2
            or any(not is_whole(v, MIN_IMAGE_SIDE) for v in size)):
        raise ConfigError(f"{key}.image_size={size!r}: the generated images' [H, W] in px, each at least "
                          f"{MIN_IMAGE_SIDE} (e.g. {key}.image_size=[256,256])")
    workers = values.get("generation_workers", 2)
    if not is_whole(workers, 0):
        raise ConfigError(f"{key}.generation_workers={workers!r}: processes that generate the images (0 = this "
                          "one), a whole number >= 0")


def default_root(generation_seed: int, image_size: tuple[int, int], splits: dict[str, int]) -> Path:
    """The cache folder of a SynthCrowd dataset: ``<cache>/synthcrowd/s{seed}_{H}x{W}``, followed by
    ``_{split}{images}`` for every split whose size differs from the default (800 / 60 / 80 images).

    Datasets of other sizes get folders of their own: a run with ``data.splits.train=8000`` neither replaces the
    default training split nor has its own replaced by the next default run (a split of another size in the
    same folder would be regenerated in place, under any run still reading it).
    """
    h, w = (int(v) for v in image_size)
    sized = "".join(f"_{name}{int(count)}" for name, count in sorted(splits.items())
                    if DEFAULT_SPLITS.get(name) != int(count))
    return cache_dir() / "synthcrowd" / f"s{int(generation_seed)}_{h}x{w}{sized}"


class SynthCrowdDataModule(TopDownDataModule):
    """SynthCrowd train/val/test splits.

    Args:
        root: folder of the generated splits; None = :func:`default_root` (``<cache>/synthcrowd/s{seed}_{H}x{W}``
            for the default split sizes).
        splits: number of images per split.
        generation_seed: seed of the scene generator (independent of the augmentation seed).
        image_size: (H, W) of the generated images.
        generation_workers: processes used to generate.
        body_model_dir: body model the scenes are posed with (None = the synthetic model).
        eval_split: a split that the validation and test loaders read instead of their own (``train``:
            evaluate on the training people, for the overfit check of the whole pipeline); None = their own.
        **kwargs: :class:`TopDownDataModule` settings.
    """

    name = "synthcrowd"

    def __init__(self, root: str | None = None, splits: dict | None = None, generation_seed: int = 0,
                 image_size: tuple[int, int] = (256, 256), generation_workers: int = 2,
                 body_model_dir: str | None = None, eval_split: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.splits = check_splits(dict(splits or DEFAULT_SPLITS))
        self.generation_seed = generation_seed
        self.image_size = tuple(int(v) for v in image_size)
        self.generation_workers = generation_workers
        self.body_model_dir = body_model_dir
        if eval_split is not None and eval_split not in self.splits:
            raise ConfigError(f"data.eval_split={eval_split!r} is not one of data.splits {sorted(self.splits)}; "
                              "name a generated split (e.g. train) or null")
        self.eval_split = eval_split
        self.root = Path(root) if root else default_root(generation_seed, self.image_size, self.splits)
        self._split_dirs: dict[str, Path] | None = None

    def prepare_data(self) -> None:
        """Generate any missing or incomplete split (runs on one process per node)."""
        self._ensure()

    def _ensure(self) -> dict[str, Path]:
        if self._split_dirs is None:
            self._split_dirs = ensure_synthcrowd(self.root, self.splits, seed=self.generation_seed,
                                                 image_size=self.image_size, body_model_dir=self.body_model_dir,
                                                 num_workers=self.generation_workers)
        return self._split_dirs

    def split_dir(self, split: str) -> Path:
        dirs = self._ensure()
        if self.eval_split is not None and split in ("val", "test"):
            split = self.eval_split
        if split not in dirs:
            raise KeyError(f"SynthCrowd has no split '{split}'; data.splits defines {sorted(dirs)}")
        return Path(dirs[split])

    def load_records(self, split: str) -> tuple[list[PersonRecord], Counter]:
        min_kp = self.min_keypoints if split == "train" else 0
        return load_synthcrowd_records(self.split_dir(split), min_keypoints=min_kp)

    def mean_params_path(self, split: str = "train") -> Path:
        """The split's SPIN-format mean parameters (``smpl_mean_params.npz``), written at generation.

        Splits generated before the file existed get it computed here from their annotations, once.
        """
        split_dir = self.split_dir(split)
        path = split_dir / MEAN_PARAMS_FILE
        if not path.is_file():
            write_split_mean_params(split_dir)
        return path

    def keypoint_ground_truth(self, split: str) -> Path | None:
        return self.split_dir(split) / "annotations.json"
