"""The mesh regressor: SPIN's HMR (torchvision ResNet + iterative error feedback) with CoNorm blocks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torchvision
from torch import nn

from ochmr_lit.errors import MissingFileError
from ochmr_lit.geometry import rot6d_to_rotmat, rotmat_to_rot6d
from ochmr_lit.models.conorm import CoNorm
from ochmr_lit.models.keypoint_heatmaps import KeypointHeatmapHead

NUM_JOINTS = 24
NPOSE = NUM_JOINTS * 6
NUM_BETAS = 10
NUM_CAM = 3
BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101")
DEFAULT_CAM = (0.9, 0.0, 0.0)


class IterationEstimate(NamedTuple):
    """One iteration of the IEF head: pose (B, 144) as 24 x 6D, betas (B, 10), camera (B, 3) [s, tx, ty]."""

    pose6d: torch.Tensor
    betas: torch.Tensor
    cam: torch.Tensor


@dataclass
class RegressorOutput:
    """What :class:`MeshRegressor` predicts.

    Attributes:
        rotmat: (B, 24, 3, 3) SMPL joint rotations (global orientation first) from the last iteration.
        betas: (B, 10) SMPL shape coefficients.
        cam: (B, 3) weak-perspective camera [s, tx, ty] in normalised crop coordinates ([-1, 1]).
        iterations: every iteration's estimate, first to last (the last equals the fields above).
        heatmaps: (B, K, H/4, W/4) keypoint logits of the auxiliary head, None without one
            (:mod:`ochmr_lit.models.keypoint_heatmaps`).
    """

    rotmat: torch.Tensor
    betas: torch.Tensor
    cam: torch.Tensor
    iterations: list[IterationEstimate] = field(default_factory=list)
    heatmaps: torch.Tensor | None = None


def load_mean_params(
    mean_params: str | Path | Mapping[str, np.ndarray | torch.Tensor] | None,
) -> dict[str, torch.Tensor]:
    """The IEF starting point as float32 tensors: ``pose`` (144,) 6D, ``shape`` (10,), ``cam`` (3,).

    Args:
        mean_params: a path to SPIN's ``smpl_mean_params.npz``, a mapping with the same three keys, or
            None for a neutral start: identity rotations for all 24 joints, zero shape, cam [0.9, 0, 0].
    """
    if mean_params is None:
        pose = rotmat_to_rot6d(torch.eye(3).expand(NUM_JOINTS, 3, 3)).reshape(NPOSE)
        return {
            "pose": pose.float(),
            "shape": torch.zeros(NUM_BETAS),
            "cam": torch.tensor(DEFAULT_CAM, dtype=torch.float32),
        }
    if isinstance(mean_params, str | Path):
        source = str(mean_params)
        path = Path(mean_params)
        if not path.is_file():
            raise MissingFileError(
                f"mean parameter file {source} not found; point mean_params at SPIN's smpl_mean_params.npz "
                "(or the body model folder's copy), or pass None for the neutral start"
            )
        with np.load(path) as npz:
            arrays: Mapping[str, np.ndarray | torch.Tensor] = {k: npz[k] for k in npz.files}
    else:
        source = "the mean_params mapping"
        arrays = mean_params
    expected = {"pose": NPOSE, "shape": NUM_BETAS, "cam": NUM_CAM}
    out: dict[str, torch.Tensor] = {}
    for key, size in expected.items():
        if key not in arrays:
            raise KeyError(
                f"{source} has no '{key}' (keys: {sorted(arrays)}); "
                "it needs pose (144,) 6D, shape (10,) and cam (3,)"
            )
        value = torch.as_tensor(np.asarray(arrays[key]), dtype=torch.float32).reshape(-1)
        if value.numel() != size:
            raise ValueError(f"{source}: '{key}' has {value.numel()} values, expected {size}")
        out[key] = value
    return out


def check_architecture(backbone: str, conorm_depths: Sequence[int], iterations: int = 3, dropout: float = 0.5,
                       pooling_grid: int = 1, heatmap_keypoints: int = 0) -> list[int]:
    """The checks :class:`MeshRegressor` makes of its arguments (a ValueError naming the argument); the sorted
    CoNorm depths. Callable on a config before any work starts."""
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {BACKBONES}, got {backbone!r}")
    depths = sorted(set(int(d) for d in conorm_depths))
    if len(depths) != len(list(conorm_depths)) or any(d not in (1, 2, 3, 4) for d in depths):
        raise ValueError(f"conorm_depths must be distinct ResNet layer numbers in 1..4, got {list(conorm_depths)}")
    if iterations < 1:
        raise ValueError(f"iterations must be at least 1, got {iterations}")
    if pooling_grid < 1:
        raise ValueError(f"pooling_grid must be at least 1 (1 = SPIN's global average), got {pooling_grid}")
    if heatmap_keypoints not in (0, 17):  # its loss reads the data's COCO-17 keypoints_2d
        raise ValueError(f"heatmap_keypoints must be 0 (no heatmap head) or 17 (the COCO-17 keypoints the data "
                         f"supervises it with), got {heatmap_keypoints}")
    return depths


class MeshRegressor(nn.Module):
    """SPIN's HMR regressor with CoNorm blocks after any subset of ResNet layers 1-4.

    The module names match SPIN's ``models/hmr.py`` (``conv1, bn1, relu, maxpool, layer1..layer4, avgpool,
    fc1, drop1, fc2, drop2, decpose, decshape, deccam`` and buffers ``init_pose, init_shape, init_cam``), so
    a SPIN checkpoint's ``model`` state dict loads key-for-key into ``conorm_depths=[]``. CoNorm blocks
    live under ``conorm`` keyed by depth ("1".."4"). The backbone modules are taken from torchvision's
    ResNet constructors (no weights); the classifier ``fc`` is dropped.

    Input images are expected already normalised with the ImageNet mean/std (the data pipeline does
    that, not the model).

    Args:
        backbone: one of resnet18, resnet34, resnet50 (default, as SPIN and OCHMR), resnet101.
        conorm_depths: ResNet layers after which a CoNorm block modulates the features; ``[]`` is the
            SPIN baseline, ``[2]`` the paper's best placement.
        hidden_channels: K, the latent width of each CoNorm block.
        mean_params: IEF starting point, see :func:`load_mean_params` (path to ``smpl_mean_params.npz``,
            a mapping with pose/shape/cam, or None for identity rotations, zero shape, cam [0.9, 0, 0]).
        iterations: number of IEF iterations (3 in SPIN).
        dropout: drop probability of ``drop1``/``drop2`` (SPIN: 0.5, made for a pretrained backbone and
            long schedules; short from-scratch runs learn faster with less).
        pooling_grid: the last feature map is average-pooled to ``g x g`` cells and flattened, so the head
            sees where in the crop a feature fired. 1 is SPIN's global average (and the only setting a SPIN
            checkpoint fits); 2 keeps the whole 2 x 2 map of a 64 px crop.
        heatmap_keypoints: K > 0 adds the auxiliary :class:`KeypointHeatmapHead` (K maps, under ``heatmap_head``)
            whose logits come back in :attr:`RegressorOutput.heatmaps`; 0 (SPIN, OCHMR) has none.
    """

    def __init__(
        self,
        backbone: str = "resnet50",
        conorm_depths: Sequence[int] = (2,),
        hidden_channels: int = 128,
        mean_params: str | Path | Mapping[str, np.ndarray | torch.Tensor] | None = None,
        iterations: int = 3,
        dropout: float = 0.5,
        pooling_grid: int = 1,
        heatmap_keypoints: int = 0,
    ) -> None:
        super().__init__()
        depths = check_architecture(backbone, conorm_depths, iterations, dropout, pooling_grid, heatmap_keypoints)
        self.backbone_name = backbone
        self.conorm_depths = tuple(depths)
        self.iterations = iterations

        resnet = getattr(torchvision.models, backbone)(weights=None)
        self.conv1 = resnet.conv1
        self.bn1 = resnet.bn1
        self.relu = resnet.relu
        self.maxpool = resnet.maxpool
        self.layer1 = resnet.layer1
        self.layer2 = resnet.layer2
        self.layer3 = resnet.layer3
        self.layer4 = resnet.layer4
        # torchvision's adaptive pooling equals SPIN's AvgPool2d(7) at 224x224 and works at other sizes too.
        self.avgpool = resnet.avgpool if pooling_grid == 1 else nn.AdaptiveAvgPool2d(pooling_grid)
        self.num_features = resnet.fc.in_features  # 512 (resnet18/34) or 2048 (resnet50/101)
        self.pooling_grid = pooling_grid

        self.conorm = nn.ModuleDict(
            {
                str(d): CoNorm(self.num_features // 2 ** (4 - d), hidden_channels=hidden_channels)
                for d in depths
            }
        )

        self.fc1 = nn.Linear(self.num_features * pooling_grid**2 + NPOSE + NUM_BETAS + NUM_CAM, 1024)
        self.drop1 = nn.Dropout(dropout)
        self.fc2 = nn.Linear(1024, 1024)
        self.drop2 = nn.Dropout(dropout)
        self.decpose = nn.Linear(1024, NPOSE)
        self.decshape = nn.Linear(1024, NUM_BETAS)
        self.deccam = nn.Linear(1024, NUM_CAM)
        for layer in (self.decpose, self.decshape, self.deccam):
            nn.init.xavier_uniform_(layer.weight, gain=0.01)
        stage_channels = [self.num_features // 2 ** (4 - d) for d in (1, 2, 3, 4)]
        self.heatmap_head = (KeypointHeatmapHead(stage_channels, heatmap_keypoints) if heatmap_keypoints
                             else None)

        mean = load_mean_params(mean_params)
        self.register_buffer("init_pose", mean["pose"].unsqueeze(0))
        self.register_buffer("init_shape", mean["shape"].unsqueeze(0))
        self.register_buffer("init_cam", mean["cam"].unsqueeze(0))

    def head_parameters(self) -> list[nn.Parameter]:
        """Parameters of the IEF regression head (``fc1``, ``fc2``, ``decpose``, ``decshape``, ``deccam``)."""
        layers = (self.fc1, self.fc2, self.decpose, self.decshape, self.deccam)
        return [p for layer in layers for p in layer.parameters()]

    def _check_context(self, images: torch.Tensor, context: torch.Tensor | None) -> None:
        if not self.conorm_depths:
            if context is not None:
                raise ValueError(
                    "this MeshRegressor has no CoNorm blocks (conorm_depths=[]) and cannot use a context; "
                    "pass context=None or build it with conorm_depths, e.g. [2]"
                )
            return
        if context is None:
            raise ValueError(
                f"this MeshRegressor has CoNorm blocks at depths {list(self.conorm_depths)} and needs a "
                "context: a (B, 2, h, w) tensor of local and global centermaps"
            )
        if context.ndim != 4 or context.shape[1] != 2 or context.shape[0] != images.shape[0]:
            raise ValueError(
                f"context must be (B, 2, h, w) with B = {images.shape[0]} (the image batch), channel 0 the "
                f"local and 1 the global centermap; got {tuple(context.shape)}"
            )

    def stage_features(self, images: torch.Tensor, context: torch.Tensor | None = None) -> list[torch.Tensor]:
        """The outputs of ``layer1..layer4``, each after its CoNorm block where configured.

        Args:
            images: (B, 3, H, W) ImageNet-normalised crops (224 x 224 in training).
            context: (B, 2, h, w) centermaps [local, global], required iff the model has CoNorm blocks.

        Returns:
            four maps (B, C_i, H / 2^(i+1), W / 2^(i+1)), C_4 = F = 2048 for resnet50/101, 512 for resnet18/34.
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
        self._check_context(images, context)
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))
        stages = []
        for depth, layer in enumerate((self.layer1, self.layer2, self.layer3, self.layer4), start=1):
            x = layer(x)
            key = str(depth)
            if key in self.conorm:
                x = self.conorm[key](x, context)
            stages.append(x)
        return stages

    def extract_features(self, images: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Backbone features with CoNorm applied where configured, pooled for the IEF head.

        Args: as :meth:`stage_features`.

        Returns:
            (B, F g^2) pooled features, F = 2048 for resnet50/101, 512 for resnet18/34, g = ``pooling_grid``.
        """
        return torch.flatten(self.avgpool(self.stage_features(images, context)[-1]), 1)

    def forward(self, images: torch.Tensor, context: torch.Tensor | None = None) -> RegressorOutput:
        """Regress SMPL parameters and a weak-perspective camera.

        Args:
            images: (B, 3, H, W) ImageNet-normalised crops, 224 x 224 as in SPIN.
            context: (B, 2, h, w) [local, global] centermaps at any resolution; required when the model
                has CoNorm blocks, must be None otherwise.

        Returns:
            :class:`RegressorOutput` with rotmat (B, 24, 3, 3), betas (B, 10), cam (B, 3) and the
            per-iteration estimates.
        """
        stages = self.stage_features(images, context)
        features = torch.flatten(self.avgpool(stages[-1]), 1)
        batch = features.shape[0]
        pose = self.init_pose.expand(batch, -1)
        betas = self.init_shape.expand(batch, -1)
        cam = self.init_cam.expand(batch, -1)
        history: list[IterationEstimate] = []
        for _ in range(self.iterations):
            xc = torch.cat([features, pose, betas, cam], dim=1)
            xc = self.drop2(self.fc2(self.drop1(self.fc1(xc))))
            pose = self.decpose(xc) + pose
            betas = self.decshape(xc) + betas
            cam = self.deccam(xc) + cam
            history.append(IterationEstimate(pose, betas, cam))
        rotmat = rot6d_to_rotmat(pose.reshape(batch, NUM_JOINTS, 6))
        heatmaps = self.heatmap_head(stages) if self.heatmap_head is not None else None
        return RegressorOutput(rotmat=rotmat, betas=betas, cam=cam, iterations=history, heatmaps=heatmaps)
