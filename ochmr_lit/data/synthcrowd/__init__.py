"""SynthCrowd: the built-in occlusion benchmark of synthetic crowds rendered from the body model.

``generate_synthcrowd`` writes one split (COCO keypoint JSON + SPIN-style npz + images);
``ensure_synthcrowd`` generates train/val/test into a cache folder on first use. Modules: ``scene.py``
samples scenes (joint limits, layout, camera, backgrounds), ``builder.py`` makes one image (body model,
render, ground truth), ``annotate.py`` derives the ground truth from the render's buffers, ``writer.py``
writes the files and ``generate.py`` runs the workers and keeps the cache of splits.

Command line (a split, and a PNG grid of its first images with boxes and keypoints coloured by
visibility: green visible, yellow self-occluded, red occluded by another person)::

    python -m ochmr_lit.data.synthcrowd --out DIR --num-images 8 --seed 0 --preview grid.png

Generation speed::

    python -m ochmr_lit.data.synthcrowd.bench --images 160 --workers 2
"""

from ochmr_lit.data.synthcrowd.annotate import OCCLUSION_BUCKETS, VISIBILITY_CODES, occlusion_bucket
from ochmr_lit.data.synthcrowd.builder import GeneratorConfig, SceneResult, SynthCrowdGenerator, image_rng
from ochmr_lit.data.synthcrowd.generate import DEFAULT_SPLITS, ensure_synthcrowd, generate_synthcrowd, split_seed

__all__ = [
    "DEFAULT_SPLITS",
    "OCCLUSION_BUCKETS",
    "VISIBILITY_CODES",
    "GeneratorConfig",
    "SceneResult",
    "SynthCrowdGenerator",
    "ensure_synthcrowd",
    "generate_synthcrowd",
    "image_rng",
    "occlusion_bucket",
    "split_seed",
]
