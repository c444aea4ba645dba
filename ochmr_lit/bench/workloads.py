"""What the benchmark sections run: a seeded batch of the sample schema and the training steps of three models.

:func:`build_training_models` builds OCHMR (CoNorm at depth 2, ground-truth context), SPIN (no CoNorm) and a plain
torchvision ResNet classifier on one batch, each with its loss and the project's default optimizer, as
:class:`TrainingModel`: the FLOP counts, throughputs and MFU of the ``flops``, ``training`` and ``data`` sections
are of these steps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from ochmr_lit.bench.measure import autocast, count_flops, interleaved_step_times, training_flops
from ochmr_lit.data.schema import NUM_KEYPOINTS
from ochmr_lit.lit import MeshRegressorModule
from ochmr_lit.lit.optim import OptimConfig, build_optimizer

#: The models of the comparison, in row order.
MODEL_KINDS: tuple[str, ...] = ("ochmr", "spin", "plain")


def synthetic_batch(batch_size: int, crop_size: int, device: str | torch.device, seed: int = 0) -> dict:
    """A training batch of the sample schema filled with seeded random values.

    Returns:
        ``image`` (B, 3, S, S) normalised-like pixels, ``centermaps`` (B, 2, S/4, S/4), ``keypoints_2d``
        (B, 17, 3) crop px + confidence, ``keypoints_3d`` (B, 17, 4) metres + confidence,
        ``has_keypoints_3d`` (B,), ``smpl_pose`` (B, 72) axis-angle, ``smpl_betas`` (B, 10), ``has_smpl``
        (B,), ``gender`` (B,) and ``label`` (B,) class indices for the plain classifier.
    """
    gen = torch.Generator().manual_seed(seed)
    b, s = batch_size, crop_size
    conf = torch.ones(b, NUM_KEYPOINTS, 1)
    batch = {
        "image": torch.randn(b, 3, s, s, generator=gen),
        "centermaps": torch.rand(b, 2, s // 4, s // 4, generator=gen),
        "keypoints_2d": torch.cat([torch.rand(b, NUM_KEYPOINTS, 2, generator=gen) * s, conf], -1),
        "keypoints_3d": torch.cat([torch.randn(b, NUM_KEYPOINTS, 3, generator=gen) * 0.3, conf], -1),
        "has_keypoints_3d": torch.ones(b, dtype=torch.bool),
        "smpl_pose": torch.randn(b, 72, generator=gen) * 0.2,
        "smpl_betas": torch.randn(b, 10, generator=gen),
        "has_smpl": torch.ones(b, dtype=torch.bool),
        "gender": torch.zeros(b, dtype=torch.int64),
        "label": torch.randint(0, 1000, (b,), generator=gen),
    }
    return {k: v.to(device) for k, v in batch.items()}


@dataclass
class TrainingModel:
    """One model's training step on a fixed batch.

    Attributes:
        name: row name (model and backbone).
        module: the module holding every trained parameter.
        loss: forward pass + loss on the bench batch, under the bench precision; returns a scalar.
        optimizer: updates ``module``'s trainable parameters.
    """

    name: str
    module: nn.Module
    loss: Callable[[], torch.Tensor]
    optimizer: torch.optim.Optimizer

    def step(self) -> None:
        """One training step: clear gradients, forward + loss, backward, optimizer update."""
        self.optimizer.zero_grad(set_to_none=True)
        self.loss().backward()
        self.optimizer.step()

    def forward_flops(self) -> int:
        """FLOPs of the forward pass + loss alone (no autograd graph)."""
        with torch.no_grad():
            return count_flops(self.loss)

    def training_flops(self) -> int:
        """FLOPs of forward + backward (gradients cleared afterwards)."""
        flops = training_flops(self.loss)
        self.optimizer.zero_grad(set_to_none=True)
        return flops


def build_training_models(
    backbone: str,
    batch: dict,
    device: str | torch.device,
    channels_last: bool,
    bf16: bool = False,
    seed: int = 0,
    include: Sequence[str] = MODEL_KINDS,
) -> list[TrainingModel]:
    """OCHMR (CoNorm at depth 2, GT context), SPIN (no CoNorm) and the plain torchvision ResNet classifier.

    Args:
        backbone: torchvision ResNet name (resnet50 as the paper; resnet18 for quick runs).
        batch: from :func:`synthetic_batch` (or a collated real batch with a ``label`` entry).
        device: where the models run.
        channels_last: channels_last memory format for weights and images.
        bf16: run forward + loss under bf16 autocast.
        seed: weight initialisation seed.
        include: which of ``MODEL_KINDS`` (ochmr, spin, plain) to build, in that order.
    """
    unknown = set(include) - set(MODEL_KINDS)
    if unknown:
        raise ValueError(f"unknown training bench model(s) {sorted(unknown)}; use some of {MODEL_KINDS}")

    torch.manual_seed(seed)
    optim = OptimConfig()
    models: list[TrainingModel] = []
    for kind, name, depths, source in (
        ("ochmr", f"OCHMR (CoNorm@2, {backbone})", (2,), "gt"),
        ("spin", f"SPIN ({backbone})", (), "none"),
    ):
        if kind not in include:
            continue
        module = MeshRegressorModule(
            backbone=backbone,
            conorm_depths=depths,
            context_source=source,
            crop_size=int(batch["image"].shape[-1]),
            channels_last=channels_last,
            num_vis=0,
        ).to(device)
        module.train()

        def loss(module: MeshRegressorModule = module) -> torch.Tensor:
            with autocast(device, bf16):
                return module.compute_losses(batch, module.predict_batch(batch))["total"]

        models.append(TrainingModel(name, module, loss, build_optimizer(module.model.parameters(), optim)))

    if "plain" not in include:
        return models
    plain = getattr(torchvision.models, backbone)(weights=None).to(device)
    if channels_last:
        plain = plain.to(memory_format=torch.channels_last)
    plain.train()
    memory = torch.channels_last if channels_last else torch.contiguous_format
    images = batch["image"].contiguous(memory_format=memory)

    def plain_loss() -> torch.Tensor:
        with autocast(device, bf16):
            return F.cross_entropy(plain(images), batch["label"])

    models.append(TrainingModel(f"plain torchvision {backbone}", plain, plain_loss,
                                build_optimizer(plain.parameters(), optim)))
    return models


def training_throughput(
    models: Sequence[TrainingModel], batch_size: int, device: str | torch.device, rounds: int, warmup: int = 1
) -> dict[str, float]:
    """Images per second of each model's training step: batch size / best step time of ``rounds``."""
    times = interleaved_step_times([m.step for m in models], device, rounds, warmup)
    return {m.name: batch_size / min(t) for m, t in zip(models, times, strict=True)}
