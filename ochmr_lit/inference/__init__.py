"""Inference on real images: person boxes, the batched top-down pipeline, result files (``ochmr_lit.predict``).

Its public names are imported on first use (:mod:`ochmr_lit.lazy_exports`): ``predict`` checks its settings
(``inference.predict_settings``) before the model code is imported."""

from ochmr_lit.lazy_exports import lazy_exports

_PUBLIC = {
    "BoxReport": "boxes", "ImageBoxes": "boxes", "PersonDetector": "boxes", "list_images": "inputs",
    "load_json_boxes": "boxes",
    "crop_focal_length": "camera", "crop_to_image_camera": "camera", "image_focal_length": "camera",
    "ImagePrediction": "pipeline", "Predictor": "pipeline", "load_regressor": "pipeline",
}
__all__ = sorted(_PUBLIC)
__getattr__, __dir__ = lazy_exports(__name__, _PUBLIC, globals())
