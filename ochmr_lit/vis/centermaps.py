"""Centermap figures: crops with their local/global maps overlaid, as arrays and as logger media."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ochmr_lit.data.transforms import IMAGENET_MEAN, IMAGENET_STD


def denormalise(images: torch.Tensor) -> np.ndarray:
    """(B, 3, S, S) ImageNet-normalised -> (B, S, S, 3) uint8 RGB."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1)
    rgb = (images.float() * std + mean).clamp(0, 1) * 255
    return rgb.permute(0, 2, 3, 1).round().to(torch.uint8).cpu().numpy()


def overlay_maps(images: torch.Tensor, maps: torch.Tensor, alpha: float = 0.6) -> np.ndarray:
    """Crops with a (B, 2, h, w) centermap pair blended on top: local in red, global in green.

    Returns (B, S, S, 3) uint8.
    """
    rgb = denormalise(images).astype(np.float32)
    size = images.shape[-1]
    up = F.interpolate(maps.float().clamp(0, 1), size=(size, size), mode="bilinear", align_corners=False)
    up = up.permute(0, 2, 3, 1).cpu().numpy()
    colour = np.zeros_like(rgb)
    colour[..., 0] = up[..., 0] * 255
    colour[..., 1] = up[..., 1] * 255
    weight = alpha * up.max(axis=-1, keepdims=True)
    return (rgb * (1 - weight) + colour * weight).round().astype(np.uint8)


def centermap_grid(images: torch.Tensor, pred: torch.Tensor, target: torch.Tensor | None = None) -> np.ndarray:
    """One row per sample: crop | predicted maps over the crop | target maps over the crop.

    Returns (B*S, k*S, 3) uint8.
    """
    columns = [denormalise(images), overlay_maps(images, pred)]
    if target is not None:
        columns.append(overlay_maps(images, target))
    rows = [np.concatenate([c[i] for c in columns], axis=1) for i in range(images.shape[0])]
    return np.concatenate(rows, axis=0)


def log_image(loggers: Sequence, key: str, image: np.ndarray, step: int, caption: str = "") -> None:
    """Send one (H, W, 3) uint8 image to every logger that takes images (W&B, TensorBoard)."""
    for logger in loggers:
        name = type(logger).__name__
        if name == "WandbLogger":
            logger.log_image(key=key, images=[image], step=step, caption=[caption] if caption else None)
        elif name == "TensorBoardLogger":
            logger.experiment.add_image(key, image, global_step=step, dataformats="HWC")


def log_centermap_grid(loggers: Sequence, key: str, images: torch.Tensor, pred: torch.Tensor,
                       target: torch.Tensor | None, step: int) -> None:
    """Log :func:`centermap_grid` of a few validation crops."""
    if not loggers:
        return
    log_image(loggers, key, centermap_grid(images, pred, target), step,
              caption="crop | predicted (red local, green global) | target")
