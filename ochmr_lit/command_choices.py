"""Names that commands check their arguments against before they import torch or Lightning.

A mistaken ``split=`` of ``vis.compare`` or dataset of ``prepare`` is named in one line within a second; the code
that does the work (:mod:`ochmr_lit.data.synthcrowd.generate`, :mod:`ochmr_lit.data.preparation`) reads the same
names from here.
"""

from __future__ import annotations

#: SynthCrowd's named splits and their images when ``data.splits`` does not say.
DEFAULT_SPLITS: dict[str, int] = {"train": 800, "val": 60, "test": 80}

#: Datasets whose official files ``python -m ochmr_lit.prepare`` converts or indexes.
PREPARED_DATASETS: tuple[str, ...] = ("3dpw", "panoptic", "ochuman")
#: Datasets read from their official files directly, and what ``prepare`` says of them.
DIRECT_DATASETS: dict[str, str] = {
    "3doh": "3DOH's annots.json is read directly (data.ann_files); nothing to prepare",
    "coco": "COCO keypoint JSONs are read directly; nothing to prepare",
    "crowdpose": "CrowdPose keypoint JSONs are read directly; nothing to prepare",
}
