"""An auxiliary 2D keypoint heatmap head on the regressor's backbone (training aid, not in SPIN or OCHMR).

The IEF head regresses every joint from one globally pooled feature vector. Trained from scratch, such a
backbone learns slowly where the limbs are: each crop gives one gradient through the pooled vector. A heatmap
head asks every stage of the backbone, at every position, where each keypoint is, which is the dense
supervision 2D pose networks learn from (SimpleBaseline, HRNet). The head is a small top-down pathway over the
four ResNet stages (as in a feature pyramid: a 1 x 1 lateral per stage, upsampled and summed from the deepest
stage down), then one 3 x 3 convolution and a 1 x 1 classifier per keypoint, at the resolution of ``layer1``
(a quarter of the crop side). Its loss is :func:`keypoint_heatmap_loss`. The regression path is unchanged: the
head only shapes the backbone's features through its gradient, and inference may ignore its maps.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class KeypointHeatmapHead(nn.Module):
    """Keypoint logit maps at ``layer1``'s resolution from the four ResNet stage outputs.

    Args:
        stage_channels: channels of ``layer1..layer4`` (64, 128, 256, 512 for ResNet-18/34; 256 .. 2048 for
            ResNet-50/101).
        num_keypoints: maps predicted (17: COCO order, as the data's ``keypoints_2d``).
        width: channels of the top-down pathway.
    """

    def __init__(self, stage_channels: Sequence[int], num_keypoints: int = 17, width: int = 64) -> None:
        super().__init__()
        if len(stage_channels) != 4:
            raise ValueError(f"stage_channels must list the 4 ResNet stages, got {list(stage_channels)}")
        self.num_keypoints = num_keypoints
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, kernel_size=1) for c in stage_channels)
        self.fuse = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(width, width, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
        )
        self.classifier = nn.Conv2d(width, num_keypoints, kernel_size=1)

    def forward(self, stages: Sequence[torch.Tensor]) -> torch.Tensor:
        """Keypoint logits.

        Args:
            stages: ``layer1..layer4`` outputs, each (B, C_i, H_i, W_i), H_1 = crop side / 4.

        Returns:
            (B, K, H_1, W_1) unnormalised logits; a keypoint's map is a distribution after a softmax over its
            H_1 x W_1 cells (:func:`keypoint_heatmap_loss`).
        """
        x = self.lateral[3](stages[3])
        for i in (2, 1, 0):
            x = F.interpolate(x, size=stages[i].shape[-2:], mode="nearest") + self.lateral[i](stages[i])
        return self.classifier(self.fuse(x))


def keypoint_target_maps(keypoints: torch.Tensor, map_size: tuple[int, int], crop_size: int,
                         sigma: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian target distributions of 2D keypoints on a ``map_size`` grid over the crop.

    Pixel centres are at integer crop coordinates; cell ``i`` of a map ``crop_size / H`` px per cell covers
    crop px ``[i s - 0.5, (i + 1) s - 0.5)``, so its centre is at ``(i + 0.5) s - 0.5``.

    Args:
        keypoints: (B, K, 3) crop px + confidence (> 0 labelled).
        map_size: (H, W) cells.
        crop_size: crop side in px.
        sigma: Gaussian standard deviation in cells.

    Returns:
        targets (B, K, H, W) summing to 1 over each map (zeros where invalid), and valid (B, K) bool: labelled
        keypoints whose position lies inside the crop.
    """
    height, width = map_size
    cells_y = crop_size / height
    cells_x = crop_size / width
    u = (keypoints[..., 0] + 0.5) / cells_x - 0.5  # (B, K) cell coordinates
    v = (keypoints[..., 1] + 0.5) / cells_y - 0.5
    valid = (keypoints[..., 2] > 0) & (u > -0.5) & (u < width - 0.5) & (v > -0.5) & (v < height - 0.5)
    xs = torch.arange(width, device=keypoints.device, dtype=torch.float32)
    ys = torch.arange(height, device=keypoints.device, dtype=torch.float32)
    gx = torch.exp(-((xs - u.float()[..., None]) ** 2) / (2 * sigma**2))  # (B, K, W)
    gy = torch.exp(-((ys - v.float()[..., None]) ** 2) / (2 * sigma**2))  # (B, K, H)
    maps = gy[..., :, None] * gx[..., None, :]
    maps = maps / maps.sum(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
    return maps * valid[..., None, None].to(maps.dtype), valid


def keypoint_heatmap_loss(logits: torch.Tensor, keypoints: torch.Tensor, crop_size: int,
                          sigma: float = 1.0) -> torch.Tensor:
    """Cross-entropy between each keypoint's softmax map and its Gaussian target, over labelled keypoints.

    A distribution over cells rather than SimpleBaseline's pixel-wise MSE: its scale (``log(H W)`` for a
    uniform map, ~0 when peaked) does not depend on the map size or sigma, so one weight serves every crop size.

    Args:
        logits: (B, K, H, W) from :class:`KeypointHeatmapHead`.
        keypoints: (B, K, 3) crop px + confidence.
        crop_size: crop side in px.
        sigma: target standard deviation in cells.

    Returns:
        scalar: mean over the valid keypoints (0, with the graph, when there is none).
    """
    targets, valid = keypoint_target_maps(keypoints, tuple(logits.shape[-2:]), crop_size, sigma)
    log_p = torch.log_softmax(logits.float().flatten(2), dim=-1)  # (B, K, H W)
    per_keypoint = -(targets.flatten(2) * log_p).sum(-1)  # (B, K), 0 where invalid
    return per_keypoint.sum() / valid.sum().clamp_min(1)
