"""Where the people of an image are: person boxes from a COCO-format JSON or from a Faster R-CNN detector.

Every source yields :class:`ImageBoxes` (one per input image, possibly with no people), with each
person's box (xywh, image px), score and body centre; :meth:`ImageBoxes.records` turns them into the
:class:`~ochmr_lit.data.schema.PersonRecord` objects the top-down transform crops from. Boxes that are
left out (below the score threshold, invalid, crowd regions, images not in the input) are counted in a
:class:`BoxReport`, never dropped silently.

* COCO keypoint annotations (``{"images", "annotations", ...}``): GT boxes (score 1); body centres from
  the annotated shoulders and hips (box centres where none is labelled), as in training.
* COCO detection results (``[{"image_id", "bbox", "score", "category_id"}, ...]``): detector boxes with
  their scores; body centres are box centres. Image ids are matched to files through an ``images`` list
  (``image_info``: any COCO JSON of the same images) or, without one, through numeric file names
  (COCO's ``000000000785.jpg`` is image 785).
* ``detector``: torchvision's ``fasterrcnn_resnet50_fpn`` with weights from a local file.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ochmr_lit.body.keypoints import available_conventions, convert_keypoints, get_convention
from ochmr_lit.data.centermaps import TORSO_KEYPOINTS, body_centers
from ochmr_lit.data.schema import KEYPOINT_CONVENTION, PersonRecord
from ochmr_lit.data.transforms import read_image_rgb
from ochmr_lit.errors import ConfigError, DataError, MissingFileError, WeightsError
from ochmr_lit.inference.inputs import box_file, detector_weights_file

#: COCO's category id of "person" (also the Faster R-CNN label of COCO-trained torchvision detectors).
PERSON_CATEGORY = 1


@dataclass
class ImageBoxes:
    """The people of one image.

    Attributes:
        image_path: the image file.
        image_id: the dataset's image id (the input order for detector boxes).
        boxes: (N, 4) xywh pixels.
        scores: (N,) box scores (1 for GT boxes).
        centers: (N, 2) body centres in pixels.
        ann_ids: (N,) annotation ids (-1 for detections).
        source: ``gt``, ``detections`` or ``detector``.
    """

    image_path: Path
    image_id: int
    boxes: np.ndarray
    scores: np.ndarray
    centers: np.ndarray
    ann_ids: np.ndarray
    source: str

    def __len__(self) -> int:
        return len(self.boxes)

    def records(self, dataset: str = "predict") -> list[PersonRecord]:
        """One :class:`PersonRecord` per person; every person's centre feeds the global centermaps."""
        return [PersonRecord(image_path=self.image_path, image_id=int(self.image_id), ann_id=int(self.ann_ids[i]),
                             box=self.boxes[i], center=self.centers[i], image_centers=self.centers,
                             dataset=dataset, box_score=float(self.scores[i]))
                for i in range(len(self))]


@dataclass
class BoxReport:
    """What a box source used and left out (``skipped`` counts by reason)."""

    source: str
    images: int = 0
    people: int = 0
    images_without_people: int = 0
    skipped: Counter = field(default_factory=Counter)

    def add(self, item: ImageBoxes) -> None:
        self.images += 1
        self.people += len(item)
        self.images_without_people += int(len(item) == 0)

    def skipped_counts(self) -> dict[str, int]:
        """Skipped boxes by reason (reasons that occurred only)."""
        return {why: int(n) for why, n in sorted(self.skipped.items()) if n}

    def summary(self) -> str:
        """One line: images, people, and what was skipped and why."""
        line = f"boxes ({self.source}): {self.people} people in {self.images} images"
        if self.images_without_people:
            line += f", {self.images_without_people} images without people"
        skipped = self.skipped_counts()
        if skipped:
            reasons = ", ".join(f"{n} {why}" for why, n in skipped.items())
            line += f"; skipped {sum(skipped.values())} boxes ({reasons})"
        return line

    def to_dict(self) -> dict:
        return {"source": self.source, "images": self.images, "people": self.people,
                "images_without_people": self.images_without_people, "skipped": self.skipped_counts()}


def _valid_boxes(boxes: np.ndarray) -> np.ndarray:
    return np.all(np.isfinite(boxes), axis=1) & (boxes[:, 2] > 1) & (boxes[:, 3] > 1)


def _box_centers(boxes: np.ndarray) -> np.ndarray:
    return boxes[:, :2] + boxes[:, 2:] / 2.0


def _keypoint_convention(names: Sequence[str], count: int, json_path: Path) -> str | None:
    """The registered convention of a category's keypoints (most names in common, same count)."""
    best, best_common = None, -1
    for name in available_conventions():
        conv = get_convention(name)
        if conv.num_joints != count:
            continue
        common = len(set(conv.joint_names) & set(names)) if names else 0
        if common > best_common:
            best, best_common = name, common
    if best is None:
        raise DataError(f"{json_path}: annotations have {count} keypoints, which no registered keypoint convention "
                        f"has ({', '.join(available_conventions())}); register it in ochmr_lit/body/keypoints.py")
    return best


def _annotation_centers(anns: list[dict], boxes: np.ndarray, convention: str) -> np.ndarray:
    """Body centres of annotated people: COCO-17 torso keypoints after conversion, box centres as fallback."""
    count = get_convention(convention).num_joints
    keypoints = np.zeros((len(anns), count, 3))
    for i, ann in enumerate(anns):
        if len(ann.get("keypoints", ())) == count * 3:
            keypoints[i] = np.asarray(ann["keypoints"], np.float64).reshape(count, 3)
    coco, present = convert_keypoints(keypoints, convention, KEYPOINT_CONVENTION)
    if not present[list(TORSO_KEYPOINTS)].all():
        return _box_centers(boxes)
    return body_centers(coco, boxes)


def _match_images(images: list[Path], file_names: dict[int, str], json_path: Path) -> dict[int, Path]:
    """image id -> input file, matched by file name (folders in ``file_name`` ignored)."""
    by_name = {p.name: p for p in images}
    matched = {}
    for image_id, file_name in file_names.items():
        path = by_name.get(Path(file_name).name)
        if path is not None:
            matched[image_id] = path
    if not matched:
        raise DataError(f"{json_path}: none of its {len(file_names)} images is among the {len(images)} input "
                        f"images (e.g. {sorted(by_name)[:3]}); point input= at the images this file describes")
    return matched


def _items_from_boxes(images: list[Path], per_image: dict[Path, tuple[int, list]], source: str) -> list[ImageBoxes]:
    items = []
    for order, path in enumerate(images):
        image_id, rows = per_image.get(path, (order, []))
        boxes = np.array([r[0] for r in rows], np.float64).reshape(-1, 4)
        items.append(ImageBoxes(
            image_path=path, image_id=image_id, boxes=boxes,
            scores=np.array([r[1] for r in rows], np.float64), centers=np.array([r[2] for r in rows],
                                                                                 np.float64).reshape(-1, 2),
            ann_ids=np.array([r[3] for r in rows], np.int64), source=source))
    return items


def load_gt_boxes(data: dict, json_path: Path, images: list[Path]) -> tuple[list[ImageBoxes], BoxReport]:
    """GT boxes of a COCO-format keypoint annotation dict (already parsed from ``json_path``)."""
    report = BoxReport("gt")
    try:
        file_names = {int(im["id"]): str(im["file_name"]) for im in data["images"]}
        annotations = data["annotations"]
    except (KeyError, TypeError, ValueError) as error:
        raise DataError(f"{json_path}: not a COCO annotation file (needs images[].id/file_name and "
                        f"annotations[]): {error}") from error
    matched = _match_images(images, file_names, json_path)
    categories = data.get("categories") or []
    person = next((c for c in categories if c.get("id") == PERSON_CATEGORY), {})
    names = list(person.get("keypoints", []))
    by_image: dict[int, list[dict]] = {}
    for ann in annotations:
        if ann.get("category_id", PERSON_CATEGORY) != PERSON_CATEGORY:
            report.skipped["not_a_person"] += 1
        elif int(ann["image_id"]) not in matched:
            report.skipped["image_not_in_input"] += 1
        elif ann.get("iscrowd", 0):
            report.skipped["crowd_region"] += 1
        else:
            by_image.setdefault(int(ann["image_id"]), []).append(ann)
    per_image: dict[Path, tuple[int, list]] = {path: (image_id, []) for image_id, path in matched.items()}
    for image_id, anns in by_image.items():
        boxes = np.array([a.get("bbox", [np.nan] * 4) for a in anns], np.float64).reshape(-1, 4)
        valid = _valid_boxes(boxes)
        report.skipped["invalid_box"] += int((~valid).sum())
        anns = [a for a, ok in zip(anns, valid, strict=True) if ok]
        boxes = boxes[valid]
        if not anns:
            continue
        counts = {len(a["keypoints"]) // 3 for a in anns if a.get("keypoints")}
        if len(counts) > 1:
            raise DataError(f"{json_path}: image {image_id} mixes keypoint counts {sorted(counts)}")
        if counts:
            convention = _keypoint_convention(names, counts.pop(), json_path)
            centers = _annotation_centers(anns, boxes, convention)
        else:
            centers = _box_centers(boxes)
        per_image[matched[image_id]] = (image_id, [(boxes[i], 1.0, centers[i], int(a["id"]))
                                                   for i, a in enumerate(anns)])
    items = _items_from_boxes(images, per_image, "gt")
    for item in items:
        report.add(item)
    return items, report


def _image_ids_from_names(images: list[Path], json_path: Path) -> dict[int, Path]:
    ids = {}
    for path in images:
        if not path.stem.isdigit():
            raise ConfigError(f"{json_path} holds detection results, which name images by id, and {path.name} has no "
                              "numeric name to match; pass image_info=<COCO JSON with an 'images' list>")
        ids[int(path.stem)] = path
    return ids


def load_detection_boxes(results: list, json_path: Path, images: list[Path], score_threshold: float,
                         image_info: str | Path | None = None) -> tuple[list[ImageBoxes], BoxReport]:
    """Detector boxes from COCO results (a parsed list) with ``score >= score_threshold``."""
    report = BoxReport("detections")
    if image_info is not None:
        info_path = Path(image_info)
        if not info_path.is_file():
            raise MissingFileError(f"image_info={info_path}: no such file (a COCO JSON with an 'images' list)")
        info = json.loads(info_path.read_text())
        if not isinstance(info, dict) or "images" not in info:
            raise DataError(f"image_info={info_path}: no 'images' list of {{id, file_name}}")
        matched = _match_images(images, {int(im["id"]): str(im["file_name"]) for im in info["images"]},
                                info_path)
    else:
        matched = _image_ids_from_names(images, json_path)
    per_image: dict[Path, tuple[int, list]] = {path: (image_id, []) for image_id, path in matched.items()}
    for k, det in enumerate(results):
        if not isinstance(det, dict) or not {"image_id", "bbox", "score"} <= set(det):
            raise DataError(f"{json_path}: entry {k} is not a COCO detection result "
                            "({'image_id', 'bbox', 'score', 'category_id'})")
        box = np.asarray(det["bbox"], np.float64).reshape(-1)
        if det.get("category_id", PERSON_CATEGORY) != PERSON_CATEGORY:
            report.skipped["not_a_person"] += 1
        elif int(det["image_id"]) not in matched:
            report.skipped["image_not_in_input"] += 1
        elif box.shape != (4,) or not _valid_boxes(box[None])[0]:
            report.skipped["invalid_box"] += 1
        elif float(det["score"]) < score_threshold:
            report.skipped["below_score_threshold"] += 1
        else:
            per_image[matched[int(det["image_id"])]][1].append(
                (box, float(det["score"]), _box_centers(box[None])[0], -1))
    items = _items_from_boxes(images, per_image, "detections")
    for item in items:
        report.add(item)
    return items, report


def load_json_boxes(json_path: str | Path, images: list[Path], score_threshold: float = 0.0,
                    image_info: str | Path | None = None) -> tuple[list[ImageBoxes], BoxReport]:
    """Boxes of a COCO-format JSON: keypoint annotations (GT) or detection results, told apart by shape.

    Args:
        json_path: the JSON file.
        images: the input images (result order).
        score_threshold: detections with a lower score are skipped (GT boxes have score 1).
        image_info: for detection results, a COCO JSON whose ``images`` list maps ids to file names.
    Returns:
        One :class:`ImageBoxes` per input image (in ``images`` order) and the :class:`BoxReport`.
    """
    json_path = box_file(json_path)
    try:
        data = json.loads(json_path.read_text())
    except json.JSONDecodeError as error:
        raise DataError(f"boxes={json_path}: not valid JSON ({error})") from error
    if isinstance(data, list):
        return load_detection_boxes(data, json_path, images, score_threshold, image_info)
    if isinstance(data, dict) and "annotations" in data:
        return load_gt_boxes(data, json_path, images)
    raise DataError(f"boxes={json_path}: neither COCO annotations (a dict with 'images' and 'annotations') nor "
                    "COCO detection results (a list of {image_id, bbox, score})")


class PersonDetector:
    """torchvision's Faster R-CNN (ResNet-50 FPN) with COCO weights from a local file; keeps person boxes.

    Args:
        weights: a ``fasterrcnn_resnet50_fpn`` state dict file (torchvision's
            ``fasterrcnn_resnet50_fpn_coco-258fb6c6.pth``, or a training checkpoint with the state dict
            under ``model``), loaded with ``weights_only=True`` and strict key matching.
        score_threshold: boxes scoring lower are not returned.
        device: torch device.
        min_size, max_size: torchvision's resize of the input (shorter side, longest side cap), px.
    """

    def __init__(self, weights: str | Path | None, score_threshold: float = 0.5, device: str | torch.device = "cpu",
                 min_size: int = 800, max_size: int = 1333):
        from torchvision.models.detection import fasterrcnn_resnet50_fpn

        path = detector_weights_file(weights)
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
            state = state["model"]
        self.model = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91,
                                             box_score_thresh=score_threshold, min_size=min_size, max_size=max_size)
        try:
            self.model.load_state_dict(state)
        except (RuntimeError, AttributeError) as error:
            raise WeightsError(f"detector_weights={path}: not a fasterrcnn_resnet50_fpn (COCO, 91 classes) state dict "
                               f"({str(error).splitlines()[0]})") from error
        self.model.eval().to(device)
        self.device = torch.device(device)
        self.score_threshold = float(score_threshold)

    @torch.inference_mode()
    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Person boxes of one (H, W, 3) uint8 RGB image: (N, 4) xywh pixels and (N,) scores, best first."""
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div(255).to(self.device)
        out = self.model([tensor])[0]
        keep = (out["labels"] == PERSON_CATEGORY) & (out["scores"] >= self.score_threshold)
        xyxy = out["boxes"][keep].double().cpu().numpy()
        boxes = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)
        return boxes, out["scores"][keep].double().cpu().numpy()


def detector_boxes(images: list[Path], detector: PersonDetector, report: BoxReport | None = None,
                   ) -> Iterator[tuple[ImageBoxes, np.ndarray]]:
    """Detects the people of each image; yields each image's :class:`ImageBoxes` and its decoded RGB array.

    Body centres are box centres; image ids are the input order; degenerate boxes are counted and skipped.
    """
    for order, path in enumerate(images):
        image = read_image_rgb(path)
        boxes, scores = detector(image)
        valid = _valid_boxes(boxes) if len(boxes) else np.zeros(0, bool)
        if report is not None:
            report.skipped["invalid_box"] += int((~valid).sum())
        boxes, scores = boxes[valid], scores[valid]
        item = ImageBoxes(image_path=path, image_id=order, boxes=boxes, scores=scores, centers=_box_centers(boxes),
                          ann_ids=np.full(len(boxes), -1, np.int64), source="detector")
        if report is not None:
            report.add(item)
        yield item, image
