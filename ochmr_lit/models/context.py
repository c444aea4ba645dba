"""The context estimator F: HRNet backbone + a 1x1 head predicting [local, global] body-centre maps."""

from __future__ import annotations

import torch
from torch import nn

from ochmr_lit.models.hrnet import HRNet


class ContextEstimator(nn.Module):
    """HRNet-W``width`` without its keypoint layer, followed by ``head = Conv2d(width, num_maps, 1)``.

    The maps are raw scores (no sigmoid), trained like HRNet heatmaps with an MSE loss against
    unnormalised Gaussian centermaps. Channel 0 is the local centermap (the target person), channel 1 the
    global one (every person in the crop).

    Args:
        width: HRNet width, 32 (the paper's HRNet-W32) or 48.
        num_maps: output maps, 2 ([local, global]).
    """

    def __init__(self, width: int = 32, num_maps: int = 2) -> None:
        super().__init__()
        self.width = width
        self.backbone = HRNet(width=width, num_joints=None)
        self.head = nn.Conv2d(self.backbone.out_channels, num_maps, kernel_size=1)
        # HRNet's own initialisation for the new head: N(0, 0.001) weights, zero bias.
        nn.init.normal_(self.head.weight, std=0.001)
        nn.init.zeros_(self.head.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) ImageNet-normalised crops, H and W multiples of 32 -> (B, num_maps, H/4, W/4)."""
        return self.head(self.backbone.forward_features(images))
