"""CoNorm: context normalisation of a backbone feature map (OCHMR supplementary, section 4, listing 1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CoNorm(nn.Module):
    """Context normalisation block ``X' = X * scale(ctx) + bias(ctx)``.

    Follows the paper's listing layer for layer and name for name (``phi_latent``, ``phi_scale``,
    ``phi_bias``), so weights trained with the listing load key-for-key. The two output convolutions
    share their input, so the forward pass runs them as one convolution over the concatenated weights
    (concatenated at every call, so gradients reach ``phi_scale`` and ``phi_bias`` as usual and no copy
    can go stale) and splits the result: the same outputs and parameter gradients as two convolutions
    (the latent's gradient up to float summation order), with one pass over the latent map instead of two.

    Args:
        num_channels: C, the number of channels of the feature map X it modulates.
        hidden_channels: K, the width of the latent space shared by the scale and bias branches.
    """

    def __init__(self, num_channels: int, hidden_channels: int = 128) -> None:
        super().__init__()
        self.num_channels = num_channels
        self.hidden_channels = hidden_channels
        self.phi_latent = nn.Sequential(
            nn.Conv2d(2, hidden_channels, kernel_size=3, padding=1),
            nn.ReLU(),
        )
        self.phi_scale = nn.Conv2d(hidden_channels, num_channels, kernel_size=3, padding=1)
        self.phi_bias = nn.Conv2d(hidden_channels, num_channels, kernel_size=3, padding=1)

    def forward(self, features: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Modulate ``features`` by the context.

        Args:
            features: X, (B, C, H, W) feature map.
            context: (B, 2, h, w) local and global centermaps stacked channel-wise, at any resolution;
                resized bilinearly (``align_corners=False``) to (H, W).

        Returns:
            (B, C, H, W) modulated features.
        """
        context = F.interpolate(context, size=features.shape[2:], mode="bilinear", align_corners=False)
        latent = self.phi_latent(context)
        scale, bias = self.scale_and_bias(latent)
        return features * scale + bias

    def scale_and_bias(self, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``phi_scale(latent)`` and ``phi_bias(latent)``, computed by one convolution.

        Args:
            latent: (B, K, H, W) output of ``phi_latent``.

        Returns:
            scale and bias, each (B, C, H, W).
        """
        head = self.phi_scale  # both heads share kernel size, padding, stride and dilation
        weight = torch.cat([self.phi_scale.weight, self.phi_bias.weight], dim=0)  # (2C, K, 3, 3)
        bias = torch.cat([self.phi_scale.bias, self.phi_bias.bias], dim=0)  # (2C,)
        both = F.conv2d(latent, weight, bias, stride=head.stride, padding=head.padding, dilation=head.dilation)
        scale, shift = both.split(self.num_channels, dim=1)
        return scale, shift

    def extra_repr(self) -> str:
        return f"num_channels={self.num_channels}, hidden_channels={self.hidden_channels}"
