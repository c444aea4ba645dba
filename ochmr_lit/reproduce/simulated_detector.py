"""A simulated person detector for SynthCrowd (supplementary table 4 in miniature).

SynthCrowd has no detector of its own, and a real one (Faster R-CNN) cannot be trained or downloaded here,
so table 4 on SynthCrowd uses detections *simulated* from the ground truth, with the three faults that
make a detector's score threshold matter:

* **jittered boxes**: every detected person's box is the annotated box with its centre shifted and its
  sides rescaled by Gaussian noise; the noise level differs per box (some boxes are sloppy), and
  people hidden by others get sloppier boxes;
* **missed people**: a person is missed with probability ``miss_base + miss_occlusion x occlusion_ratio``
  (occluded people are missed more often, as real detectors do);
* **false positives**: Poisson-many boxes per image, person-shaped, either anywhere in the image or
  straddling two neighbouring people (the typical crowd false positive);
* **scores that fall with box quality**: a true detection scores ``iou ** 2`` (its IoU with the annotated
  box) lowered by occlusion, plus noise; false positives draw low scores from a Beta distribution.

The output is a COCO detection-results list (``image_id``, ``category_id``, ``bbox`` xywh px, ``score``),
the format every detector-box path of the framework reads. Everything is seeded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ochmr_lit.errors import MissingFileError
from ochmr_lit.eval.results_files import atomic_write_text

PERSON_CATEGORY = 1


@dataclass(frozen=True)
class DetectorModel:
    """Fault rates of the simulated detector (fractions, or px-free fractions of the box side).

    Attributes:
        miss_base, miss_occlusion: miss probability = ``miss_base + miss_occlusion x occlusion_ratio``.
        jitter_min, jitter_max: per-box noise level drawn uniformly in this range, as a fraction of the
            box side (centre shift and log-scale change of each side).
        jitter_occlusion: extra noise level per unit of occlusion ratio.
        score_noise: standard deviation of the Gaussian noise on true-detection scores.
        score_occlusion: true-detection scores are multiplied by ``1 - score_occlusion x occlusion_ratio``.
        false_positives_per_image: mean of the Poisson number of false positives per image.
        false_positive_beta: (a, b) of the Beta distribution of false-positive scores.
    """

    miss_base: float = 0.03
    miss_occlusion: float = 0.5
    jitter_min: float = 0.02
    jitter_max: float = 0.15
    jitter_occlusion: float = 0.1
    score_noise: float = 0.05
    score_occlusion: float = 0.3
    false_positives_per_image: float = 1.0
    false_positive_beta: tuple[float, float] = (1.5, 5.0)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of matching rows of two (N, 4) xywh box arrays; (N,)."""
    x0 = np.maximum(a[:, 0], b[:, 0])
    y0 = np.maximum(a[:, 1], b[:, 1])
    x1 = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2])
    y1 = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def _clip_box(box: np.ndarray, width: int, height: int) -> np.ndarray | None:
    """An xywh box clipped to the image; None when less than 2 px remain on a side."""
    x0, y0 = max(box[0], 0.0), max(box[1], 0.0)
    x1, y1 = min(box[0] + box[2], width - 1.0), min(box[1] + box[3], height - 1.0)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return np.array([x0, y0, x1 - x0, y1 - y0])


def _jitter(box: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    w, h = box[2], box[3]
    cx, cy = box[0] + w / 2 + rng.normal(0, level) * w, box[1] + h / 2 + rng.normal(0, level) * h
    w, h = w * np.exp(rng.normal(0, level)), h * np.exp(rng.normal(0, level))
    return np.array([cx - w / 2, cy - h / 2, w, h])


def _false_positive(people: np.ndarray, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A person-shaped box: between two people of the image (when it has two), else anywhere."""
    if len(people) >= 2 and rng.random() < 0.5:
        i, j = rng.choice(len(people), size=2, replace=False)
        a, b = people[i], people[j]
        centre = (a[:2] + a[2:] / 2 + b[:2] + b[2:] / 2) / 2
        size = (a[2:] + b[2:]) / 2
    else:
        size = people[:, 2:].mean(axis=0) if len(people) else np.array([0.15 * width, 0.4 * height])
        size = size * np.exp(rng.normal(0, 0.3, 2))
        centre = rng.uniform([0, 0], [width, height])
    return np.array([centre[0] - size[0] / 2, centre[1] - size[1] / 2, size[0], size[1]])


def simulate_detections(annotations: Mapping[str, Any], seed: int = 0,
                        model: DetectorModel | None = None) -> list[dict[str, Any]]:
    """Detections for every image of a COCO-format keypoint file (SynthCrowd's ``annotations.json``).

    Args:
        annotations: the parsed JSON (``images`` with ``width``/``height``; ``annotations`` with ``bbox``
            xywh px and, for SynthCrowd, ``occlusion_ratio``; others count as unoccluded).
        seed: seed of every random draw.
        model: fault rates (defaults: :class:`DetectorModel`).

    Returns:
        COCO detection results, sorted by image id then score (descending). Each entry also carries
        ``simulated`` (``true`` for a jittered annotated box with its ``ann_id``, ``false_positive``
        otherwise) and, for true detections, ``iou`` with the annotated box.
    """
    model = model or DetectorModel()
    rng = np.random.default_rng([int(seed), 4049])
    people: dict[int, list[dict]] = {}
    for ann in annotations["annotations"]:
        if ann.get("iscrowd", 0) or ann.get("category_id", PERSON_CATEGORY) != PERSON_CATEGORY:
            continue
        box = np.asarray(ann["bbox"], np.float64)
        if box.shape == (4,) and box[2] > 0 and box[3] > 0:
            people.setdefault(int(ann["image_id"]), []).append(ann)
    results: list[dict[str, Any]] = []
    for image in sorted(annotations["images"], key=lambda im: int(im["id"])):
        image_id, width, height = int(image["id"]), int(image["width"]), int(image["height"])
        anns = people.get(image_id, [])
        boxes = np.array([a["bbox"] for a in anns], np.float64).reshape(-1, 4)
        found: list[dict[str, Any]] = []
        for ann, box in zip(anns, boxes, strict=True):
            occlusion = float(np.clip(ann.get("occlusion_ratio", 0.0), 0.0, 1.0))
            if rng.random() < model.miss_base + model.miss_occlusion * occlusion:
                continue
            level = rng.uniform(model.jitter_min, model.jitter_max) + model.jitter_occlusion * occlusion
            detected = _clip_box(_jitter(box, level, rng), width, height)
            if detected is None:
                continue
            iou = float(box_iou(detected[None], box[None])[0])
            score = iou ** 2 * (1.0 - model.score_occlusion * occlusion) + rng.normal(0, model.score_noise)
            found.append({"bbox": detected, "score": score, "simulated": "true", "ann_id": int(ann["id"]),
                          "iou": iou})
        for _ in range(rng.poisson(model.false_positives_per_image)):
            detected = _clip_box(_false_positive(boxes, width, height, rng), width, height)
            if detected is not None:
                found.append({"bbox": detected, "score": rng.beta(*model.false_positive_beta),
                              "simulated": "false_positive"})
        for det in sorted(found, key=lambda d: -d["score"]):
            det["score"] = round(float(np.clip(det["score"], 0.001, 0.999)), 4)
            det["bbox"] = [round(float(v), 2) for v in det["bbox"]]
            results.append({"image_id": image_id, "category_id": PERSON_CATEGORY, **det})
    return results


def write_simulated_detections(ann_file: str | Path, out_file: str | Path, seed: int = 0,
                               model: DetectorModel | None = None) -> dict[str, Any]:
    """Simulate detections for ``ann_file`` and write them to ``out_file`` (JSON list); returns a summary."""
    ann_file, out_file = Path(ann_file), Path(out_file)
    if not ann_file.is_file():
        raise MissingFileError(f"{ann_file}: no such annotation file (a COCO-format keypoint JSON)")
    annotations = json.loads(ann_file.read_text())
    detections = simulate_detections(annotations, seed=seed, model=model)
    atomic_write_text(out_file, json.dumps(detections))
    people = sum(1 for a in annotations["annotations"] if not a.get("iscrowd", 0))
    true = [d for d in detections if d["simulated"] == "true"]
    return {"file": str(out_file), "seed": int(seed), "model": asdict(model or DetectorModel()),
            "people": people, "detections": len(detections), "true_detections": len(true),
            "false_positives": len(detections) - len(true), "missed": people - len(true)}


def mean_score_by_quality(detections: Sequence[Mapping[str, Any]], edges: Sequence[float] = (0.5, 0.75)
                          ) -> list[float]:
    """Mean score of true detections per IoU band (below, between and above ``edges``): a check that
    scores fall with box quality."""
    ious = np.array([d["iou"] for d in detections if d.get("simulated") == "true"])
    scores = np.array([d["score"] for d in detections if d.get("simulated") == "true"])
    bands = np.digitize(ious, edges)
    return [float(scores[bands == k].mean()) if np.any(bands == k) else float("nan") for k in range(len(edges) + 1)]
