"""Inference on real images: person boxes, the batched top-down pipeline, result files (``ochmr_lit.predict``)."""

from ochmr_lit.inference.boxes import BoxReport, ImageBoxes, PersonDetector, list_images, load_json_boxes
from ochmr_lit.inference.camera import crop_focal_length, crop_to_image_camera, image_focal_length
from ochmr_lit.inference.pipeline import ImagePrediction, Predictor, load_regressor

__all__ = ["BoxReport", "ImageBoxes", "ImagePrediction", "PersonDetector", "Predictor", "crop_focal_length",
           "crop_to_image_camera", "image_focal_length", "list_images", "load_json_boxes", "load_regressor"]
