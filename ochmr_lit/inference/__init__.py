"""Inference on real images: person boxes, the batched top-down pipeline, result files (``ochmr_lit.predict``).

Names are imported on first use, so that ``ochmr_lit.inference.camera`` (torch and geometry only) can be imported
by the training code without importing the pipeline, which imports the training code.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BoxReport": "boxes", "ImageBoxes": "boxes", "PersonDetector": "boxes", "list_images": "boxes",
    "load_json_boxes": "boxes", "crop_focal_length": "camera", "crop_to_image_camera": "camera",
    "image_focal_length": "camera", "ImagePrediction": "pipeline", "Predictor": "pipeline",
    "load_regressor": "pipeline",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
