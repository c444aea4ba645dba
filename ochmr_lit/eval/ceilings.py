"""What a crop can tell: the PA-MPJPE of predictions that know the 2D articulation and guess the depth.

PA-MPJPE removes the global orientation, so it measures the articulation alone; the ``constant`` and
``oracle`` references of :mod:`ochmr_lit.eval.references` score the same there. A model that reads a crop
perfectly still has to guess each joint's depth. This module scores such readers on a split's SMPL ground
truth, with the evaluation's own joints (SPIN's 14 LSP joints, pelvis-relative, mm):

* ``true 2D, mean depth``: every joint's root-relative camera-frame x and y are the true ones, its depth that
  of the ``oracle`` (the training mean pose under the true orientation);
* the same with Gaussian noise on x and y of ``sigma`` crop pixels, converted per person to metres at the
  person's depth (``depth / focal * box side / crop side``): how precisely a reader must localise joints in
  a crop of a given size to reach a PA-MPJPE;
* ``true 2D + foreshortened depth``: the same x and y, and each bone's change in depth of the size that its
  true length and its length in x and y give (foreshortening), but not which way it points: with the sign of
  the ``oracle``'s bone, or a random one; also from the noisy x and y. Between these rows and the exact pose
  lies what only the sign cues (shading, which limb hides which) can give.

Each row gives MPJPE, PA-MPJPE and PA-MPJPE's depth and image-plane parts, as the evaluation reports them.
These are diagnostics, not bounds: a model can know some depth (shading, occlusion order, the pose prior).

    python -m ochmr_lit.eval.ceilings --gt <split>/smpl_gt.npz --mean-params <train split>/smpl_mean_params.npz
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ochmr_lit.body import BodyModel
from ochmr_lit.errors import MissingFileError, OneLineArgumentParser, user_errors
from ochmr_lit.eval.joints import mesh_vs_mesh
from ochmr_lit.geometry import axis_angle_to_rotmat, rot6d_to_rotmat
from ochmr_lit.metrics.mesh_errors import MPJPE, PAMPJPE, PAMPJPEDepth, PAMPJPEPlane

#: Codes of the ground truth's gender letters (the body model's GENDER_CODES).
GENDER_LETTERS = {"n": 0, "m": 1, "f": 2}
#: SPIN's box convention: ``scale`` is the box side / 200 px.
SCALE_UNIT_PX = 200.0


def errors_mm(pred: torch.Tensor, target: torch.Tensor) -> tuple[float, float, float, float]:
    """MPJPE, PA-MPJPE and PA-MPJPE's depth and image-plane parts (mm) of root-relative joints (B, J, 3) metres,
    by the evaluation's own metrics."""
    values = []
    for cls in (MPJPE, PAMPJPE, PAMPJPEDepth, PAMPJPEPlane):
        metric = cls(pred.shape[1])
        metric.update(pred, target)
        values.append(float(metric.compute()))
    return values[0], values[1], values[2], values[3]


def true_2d_mean_depth(target: torch.Tensor, oracle: torch.Tensor, noise_m: torch.Tensor | None = None,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """``target``'s x, y (plus N(0, noise_m) per person) with ``oracle``'s z; all (B, J, 3) root-relative metres.

    Args:
        noise_m: (B,) standard deviation of the x/y noise in metres per person; None = no noise.
    """
    out = target.clone()
    out[..., 2] = oracle[..., 2]
    if noise_m is not None:
        noise = torch.randn(out[..., :2].shape, generator=generator, dtype=out.dtype)
        out[..., :2] += noise * noise_m.to(out.dtype)[:, None, None]
    return out


#: SPIN's 14 LSP joints as a tree, (child, parent) in an order where every parent comes before its children;
#: parent -1 is the mid-point of the hips. Indices follow ``ochmr_lit.eval.joints.JOINT_SETS["lsp14"]``.
LSP14_BONES: tuple[tuple[int, int], ...] = (
    (2, -1), (3, -1), (12, -1),  # right hip, left hip, neck
    (13, 12), (8, 12), (9, 12),  # head, right shoulder, left shoulder
    (7, 8), (6, 7), (10, 9), (11, 10),  # right elbow and wrist, left elbow and wrist
    (1, 2), (0, 1), (4, 3), (5, 4),  # right knee and ankle, left knee and ankle
)


def foreshortened_depth(target: torch.Tensor, oracle: torch.Tensor, signs: torch.Tensor | None = None,
                        xy: torch.Tensor | None = None) -> torch.Tensor:
    """A reader that knows each bone's length and sees its joints' x and y: the bone's change in depth follows.

    Each bone's depth change has the size ``sqrt(L^2 - d_xy^2)`` (``L``: the bone's true length, ``d_xy``: its
    length in the reader's x, y; 0 where the seen length exceeds ``L``) and ``oracle``'s sign (or ``signs``').
    With the true x and y the size is the true one.

    Args:
        target, oracle: (B, 14, 3) root-relative metres, SPIN's LSP-14 joints (:data:`LSP14_BONES`).
        signs: (B, 14) +1 / -1 per bone, indexed by the bone's child joint; None = the sign of ``oracle``'s
            bone (+1 where it has no depth change).
        xy: (B, 14, 2) the x, y the reader sees (e.g. with noise); None = ``target``'s.
    Returns:
        (B, 14, 3): x, y as seen; z chained from the hips' mid-point (z = 0; PA-MPJPE ignores the offset).
    """
    if target.shape[1:] != (14, 3) or oracle.shape != target.shape:
        raise ValueError(f"expected target and oracle of shape (B, 14, 3), got {tuple(target.shape)} and "
                         f"{tuple(oracle.shape)}")

    def joint(points: torch.Tensor, index: int) -> torch.Tensor:
        return (points[:, 2] + points[:, 3]) / 2 if index < 0 else points[:, index]

    out = target.clone()
    if xy is not None:
        out[..., :2] = xy
    for child, parent in LSP14_BONES:
        length2 = (target[:, child] - joint(target, parent)).square().sum(-1)
        seen2 = (out[:, child, :2] - joint(out, parent)[:, :2]).square().sum(-1)
        size = (length2 - seen2).clamp(min=0).sqrt()
        if signs is None:
            sign = torch.sign(oracle[:, child, 2] - joint(oracle, parent)[:, 2])
            sign = torch.where(sign == 0, torch.ones_like(sign), sign)
        else:
            sign = signs[:, child].to(target.dtype)
        base = torch.zeros_like(size) if parent < 0 else out[:, parent, 2]
        out[:, child, 2] = base + sign * size
    return out


def ceiling_table(gt_file: str | Path, mean_params_file: str | Path, crop_sizes: Sequence[int] = (64, 224),
                  noise_px: Sequence[float] = (0.5, 1.0, 2.0), seed: int = 0,
                  body: BodyModel | None = None) -> list[tuple[str, float, float, float, float]]:
    """Rows (name, MPJPE, PA-MPJPE, its depth part, its image-plane part; mm) of the oracle and the 2D readers
    on a split's ground truth.

    Args:
        gt_file: a split's ``smpl_gt.npz`` (SPIN's npz fields: ``pose`` (N, 72), ``shape`` (N, 10), ``gender``
            letters, ``transl`` (N, 3) camera-frame metres, ``scale`` (N,) box side / 200, ``focal`` (N, 2) px).
        mean_params_file: the training split's SPIN-format ``smpl_mean_params.npz`` (``pose`` 24 x 6D, ``shape``).
        crop_sizes: crop sides (px) the noise is stated in.
        noise_px: x/y noise levels, crop px.
        body: the body model (default: the synthetic SMPL-format model).
    """
    for path in (gt_file, mean_params_file):
        if not Path(path).is_file():
            raise MissingFileError(f"{path}: no such file; give a split's smpl_gt.npz and the training split's "
                                   "smpl_mean_params.npz (both are written by SynthCrowd generation)")
    body = body or BodyModel(None)
    with np.load(gt_file) as gt, np.load(mean_params_file) as mean:
        pose = torch.tensor(gt["pose"], dtype=torch.float32)
        betas = torch.tensor(gt["shape"], dtype=torch.float32)
        gender = torch.tensor([GENDER_LETTERS.get(str(g)[:1].lower(), 0) for g in gt["gender"]])
        transl = torch.tensor(gt["transl"], dtype=torch.float32)
        box_px = torch.tensor(gt["scale"], dtype=torch.float32) * SCALE_UNIT_PX
        focal = torch.tensor(gt["focal"], dtype=torch.float32).mean(dim=-1)
        mean_pose = torch.tensor(mean["pose"], dtype=torch.float32).view(1, 24, 6)
        mean_betas = torch.tensor(mean["shape"], dtype=torch.float32).view(1, 10)
    n = len(pose)
    rotmat = axis_angle_to_rotmat(pose.view(n, 24, 3))
    with torch.no_grad():
        truth = body(rotmat, betas, gender=gender)
        oracle_rotmat = rot6d_to_rotmat(mean_pose).expand(n, -1, -1, -1).clone()
        oracle_rotmat[:, 0] = rotmat[:, 0]
        oracle = body(oracle_rotmat, mean_betas.expand(n, -1))
    joints = mesh_vs_mesh(oracle.vertices, truth.vertices, body.J_regressor_h36m, "lsp14")
    depth = transl[:, 2] + truth.joints_h36m[:, 0, 2]  # the pelvis, metres from the camera
    metres_per_image_px = depth / focal
    rows = [("oracle: mean pose + true orientation", *errors_mm(joints.pred, joints.target)),
            ("true 2D, mean depth", *errors_mm(true_2d_mean_depth(joints.target, joints.pred), joints.target))]
    generator = torch.Generator().manual_seed(seed)
    # the coin has a generator of its own, so the noisy rows draw the same noise as without it
    coin_generator = torch.Generator().manual_seed(seed + 1)
    coin = torch.randint(0, 2, joints.target.shape[:2], generator=coin_generator).to(joints.target.dtype) * 2 - 1
    rows += [("true 2D + foreshortened depth, signs of the mean pose",
              *errors_mm(foreshortened_depth(joints.target, joints.pred), joints.target)),
             ("true 2D + foreshortened depth, random signs",
              *errors_mm(foreshortened_depth(joints.target, joints.pred, coin), joints.target))]
    for crop in crop_sizes:
        for sigma in noise_px:
            noise_m = sigma * metres_per_image_px * box_px / crop
            reader = true_2d_mean_depth(joints.target, joints.pred, noise_m, generator)
            rows.append((f"true 2D + N(0, {sigma:g} px) in a {crop} px crop, mean depth",
                         *errors_mm(reader, joints.target)))
            rows.append((f"true 2D + N(0, {sigma:g} px) in a {crop} px crop, foreshortened depth, signs of the "
                         "mean pose", *errors_mm(foreshortened_depth(joints.target, joints.pred, xy=reader[..., :2]),
                                                 joints.target)))
    return rows


def format_table(rows: Sequence[tuple[str, float, float, float, float]]) -> str:
    """A Markdown table of :func:`ceiling_table`'s rows."""
    lines = ["| prediction | MPJPE | PA-MPJPE | depth | image plane |", "|---|---|---|---|---|"]
    lines += [f"| {name} | " + " | ".join(f"{v:.1f}" for v in values) + " |" for name, *values in rows]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = OneLineArgumentParser(prog="python -m ochmr_lit.eval.ceilings", description=__doc__.split("\n\n")[0])
    parser.add_argument("--gt", required=True, help="a split's smpl_gt.npz")
    parser.add_argument("--mean-params", required=True, help="the training split's smpl_mean_params.npz")
    parser.add_argument("--crop-sizes", type=int, nargs="+", default=[64, 224])
    parser.add_argument("--noise-px", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    with user_errors():
        args = parser.parse_args(argv)
        print(format_table(ceiling_table(args.gt, args.mean_params, args.crop_sizes, args.noise_px)))


if __name__ == "__main__":
    main()
