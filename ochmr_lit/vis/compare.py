"""Predicted meshes next to the ground truth on SynthCrowd images.

::

    python -m ochmr_lit.vis.compare ckpt_path=<file.ckpt> [split=val] [num_images=4] [out=<dir>]

writes one PNG per image, ``<out>/<image stem>.png``: the image with its people's boxes | the predicted
meshes of all people over it | the ground-truth meshes over it | the predicted and the ground-truth scene
seen from the left (``side_view=false`` leaves the side views out). Every panel is depth-composited and
person ``k`` has the same colour in all of them; ``summary.json`` lists the images and people drawn.

The checkpoint says everything else: its stored run config (``run_config``) names the SynthCrowd data (folder,
seed, image size; generated into the cache if it is missing) and the model holds its context source (a
``predicted``-context model carries its context estimator). Predictions come from the same top-down pipeline
as ``python -m ochmr_lit.predict`` on the split's ground-truth boxes; the ground-truth meshes are the
annotations' SMPL pose, betas and gender through the body model the split was generated with, moved by the
annotated translation and seen through the image's annotated camera (``images[].camera``). People annotated
without a usable box (fully hidden) are drawn in the ground-truth panels only, after the others.
The default ``out`` is ``compare_<split>`` in the checkpoint's run folder.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from ochmr_lit.errors import user_errors  # noqa: E402
from ochmr_lit.runner.command_line import check_command_line  # noqa: E402
from ochmr_lit.vis.compare_settings import check_compare_settings  # noqa: E402


@hydra.main(version_base="1.3", config_path="../configs", config_name="compare")
def main(cfg: DictConfig) -> None:
    with user_errors():
        check_compare_settings(cfg)  # before the model code is imported: a mistaken setting is named at once
        from ochmr_lit.vis.comparison_run import run_compare  # after the settings' check: the models load here

        run_compare(cfg)


if __name__ == "__main__":
    check_command_line("compare", sys.argv[1:])  # an unknown key or a malformed argument: one line
    main()
