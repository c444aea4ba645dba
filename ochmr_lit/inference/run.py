"""What ``python -m ochmr_lit.predict`` does with its composed config: boxes, pipeline, result files, figures."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from ochmr_lit.errors import ConfigError
from ochmr_lit.inference.boxes import (
    BoxReport,
    ImageBoxes,
    PersonDetector,
    detector_boxes,
    load_json_boxes,
)
from ochmr_lit.inference.camera import FOCAL_FROM_DIAGONAL
from ochmr_lit.inference.pipeline import ImagePrediction, Predictor, load_regressor
from ochmr_lit.inference.predict_settings import PredictSettings, check_predict_settings
from ochmr_lit.inference.writers import write_json, write_meshes, write_npz
from ochmr_lit.progress import ProgressLog
from ochmr_lit.vis.draw import save_image
from ochmr_lit.vis.figure_people import figure_people
from ochmr_lit.vis.paper_figure import paper_figure

log = logging.getLogger(__name__)


def resolve_device(name: str | None, key: str = "device") -> torch.device:
    """``auto`` (or None): CUDA when available, else CPU; otherwise the named device (``cpu``, ``cuda``,
    ``cuda:1``, ...). A :class:`~ochmr_lit.errors.ConfigError` naming ``key`` for a name torch does not know or a
    CUDA device this machine does not have."""
    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(str(name))
    except RuntimeError:
        raise ConfigError(f"{key}={name}: not a device; use auto, cpu, cuda or cuda:<index>") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"{key}={name}: this machine has no CUDA GPU; use {key}=cpu (or auto)")
        if device.index is not None and device.index >= count:
            raise ConfigError(f"{key}={name}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
    return device


def box_items(cfg: DictConfig, images: list[Path], box_file: Path | None, device: torch.device,
              ) -> tuple[Iterator[ImageBoxes | tuple[ImageBoxes, np.ndarray]], BoxReport]:
    """The box source: the detector (``box_file`` None, ``boxes=detector``) or the COCO-format JSON ``box_file``."""
    threshold = float(cfg.score_threshold)
    if box_file is None:
        detector = PersonDetector(cfg.get("detector_weights"), score_threshold=threshold, device=device,
                                  min_size=int(cfg.detector.min_size), max_size=int(cfg.detector.max_size))
        report = BoxReport("detector")
        return detector_boxes(images, detector, report), report
    items, report = load_json_boxes(box_file, images, score_threshold=threshold, image_info=cfg.get("image_info"))
    return iter(items), report


def write_figure(pred: ImagePrediction, path: Path, faces: np.ndarray) -> tuple[Path, dict[int, str]]:
    """The paper figure of one image (:func:`~ochmr_lit.vis.paper_figure.paper_figure`) written to ``path``.

    Returns the path and the people the figure leaves out of all its panels (person index -> reason, see
    :data:`~ochmr_lit.vis.figure_people.LEFT_OUT_REASONS`); every other person is in every panel.
    """
    maps = pred.context[:, 1] if pred.context is not None else None
    vertices = pred.vertices + pred.translation[:, None]
    people = figure_people(pred.boxes.boxes, vertices, pred.focal_length, pred.principal_point, pred.image_size)
    for k, reason in people.left_out.items():
        log.warning("%s: person %d is left out of the figure: %s", pred.boxes.image_path.name, k, reason)
    figure, _ = paper_figure(pred.image, pred.boxes.boxes, vertices, faces, pred.focal_length, pred.principal_point,
                             global_maps=maps, crop_affine=pred.crop_affine, crop_size=pred.crop_size, people=people)
    return save_image(path, figure), people.left_out


def write_outputs(pred: ImagePrediction, out_dir: Path, faces: np.ndarray, save_meshes: bool,
                  save_figures: bool, mesh_format: str = "obj", figure_left_out: Counter | None = None) -> list[Path]:
    """``<stem>.json``, ``<stem>.npz``, optionally ``<stem>.png`` (paper figure) and one mesh per person,
    ``<stem>_person<k>.<mesh_format>`` (``obj`` or ``ply``, camera frame, metres).

    ``figure_left_out`` counts, by reason, the people the figure leaves out of all its panels (see
    :func:`write_figure`).
    """
    stem = pred.boxes.image_path.stem
    written = [write_json(pred, out_dir / f"{stem}.json"), write_npz(pred, out_dir / f"{stem}.npz")]
    if save_figures:
        path, left_out = write_figure(pred, out_dir / f"{stem}.png", faces)
        written.append(path)
        if figure_left_out is not None:
            figure_left_out.update(left_out.values())
    if save_meshes:
        written += write_meshes(pred, faces, out_dir, stem, mesh_format)
    return written


def run_predict(cfg: DictConfig, settings: PredictSettings | None = None) -> dict[str, Any]:
    """Predict meshes for every input image and write the result files into ``cfg.out``.

    ``settings``: what :func:`~ochmr_lit.inference.predict_settings.check_predict_settings` returned for ``cfg``
    (the entry point checks before it imports this module); None: checked here.

    ``cfg.focal_length`` (px, optional) sets the focal length of every image's camera; null = each image's
    diagonal. Returns a summary dict (also written to ``<out>/summary.json``): images, people, the box report,
    the crop settings with the crop camera's focal length (px), the image camera's focal length (px, or
    ``image_diagonal``), the checkpoint, the files written and ``figures.left_out``: how many people, by reason,
    the figures left out of all their panels (also printed).
    """
    settings = settings or check_predict_settings(cfg)
    focal_length, images = settings.focal_length, settings.images
    mesh_format = str(cfg.get("mesh_format") or "obj")
    device = resolve_device(cfg.get("device"))
    out_dir = Path(cfg.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    items, report = box_items(cfg, images, settings.box_file, device)  # before the model: a bad box source fails fast
    module = load_regressor(cfg.ckpt_path, device)
    predictor = Predictor(module, batch_size=int(cfg.batch_size), keep_context=bool(cfg.save_figures),
                          focal_length=focal_length)
    faces = predictor.faces
    files: list[str] = []
    people = 0
    on_bad_sample = str(cfg.get("on_bad_sample") or "raise")
    skipped: list[dict] = []
    figure_left_out: Counter = Counter()
    progress = ProgressLog(log, "predict", len(images), "images")  # predicted and skipped images alike
    counted_skips = 0
    for pred in predictor.predict(items, on_bad_image=on_bad_sample, skipped=skipped):
        files += [p.name for p in write_outputs(pred, out_dir, faces, bool(cfg.save_meshes), bool(cfg.save_figures),
                                                mesh_format, figure_left_out)]
        people += pred.num_people
        log.info("%s: %d people", pred.boxes.image_path.name, pred.num_people)
        progress.update(1 + len(skipped) - counted_skips)
        counted_skips = len(skipped)
    if len(skipped) > counted_skips:
        progress.update(len(skipped) - counted_skips)
    summary = {"checkpoint": str(cfg.ckpt_path), "input": str(cfg.input), "images": len(images), "people": people,
               "boxes": report.to_dict(), "crop": {**predictor.settings, "focal_length": predictor.crop_focal_length},
               "image_focal_length": FOCAL_FROM_DIAGONAL if focal_length is None else focal_length,
               "context_source": module.hparams.context_source, "skipped_images": skipped,
               "figures": {"left_out": dict(sorted(figure_left_out.items()))}, "files": files}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    print(report.summary())
    if skipped:
        print(f"predict: skipped {len(skipped)} unreadable image(s) (on_bad_sample=skip): "
              + ", ".join(f"{Path(s['image']).name} ({s['reason']})" for s in skipped))
    if figure_left_out:
        print(f"predict: figures left out {sum(figure_left_out.values())} people, from every panel: "
              + ", ".join(f"{n} {why}" for why, n in sorted(figure_left_out.items())))
    print(f"predict: {people} people in {len(images) - len(skipped)} images -> {out_dir}")
    return summary
