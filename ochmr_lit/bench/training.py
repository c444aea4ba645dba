"""Benchmark section ``training``: training-step throughput of OCHMR, the SPIN baseline and a plain ResNet.

The three models take the same batch (same images, same size) at the same precision and memory format:

* OCHMR: :class:`~ochmr_lit.lit.MeshRegressorModule` with a CoNorm block at depth 2 and ground-truth
  context: regressor + body model + SPIN losses (``predict_batch`` + ``compute_losses``);
* SPIN: the same module with ``conorm_depths=[]`` and no context;
* plain: torchvision's ResNet classifier with a cross-entropy loss.

Each step is ``zero_grad -> forward + loss (under bf16 autocast for bf16-mixed) -> backward -> optimizer step``
with the project's default optimizer (Adam, lr 5e-5). Steps of the three models are interleaved round by
round, so that a change of load on the machine hits all of them alike; throughput is batch size / best
step time (the best of the rounds: on a shared machine the other rounds mostly measure the other load).
Both fp32 + NCHW and bf16-mixed + channels_last are measured (the CPU trainer config uses the latter).
MFU divides the achieved training FLOP rate by the matmul peak of the step's compute dtype, measured
first and again after each setting in the same process (the best measurement counts). The section ends
with CoNorm's fused output convolution against the paper's two convolutions (forward + backward of one
block at the depth-2 feature size).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ochmr_lit.bench import PerfRow
from ochmr_lit.bench.measure import (
    autocast,
    best_matmul_peak,
    interleaved_step_times,
    matmul_peaks,
    mfu,
    peak_note,
    synchronize,
)
from ochmr_lit.bench.workloads import build_training_models, synthetic_batch, training_throughput
from ochmr_lit.data.predicted_centres import rerender_context
from ochmr_lit.lit.optim import OptimConfig, build_optimizer, is_fused
from ochmr_lit.models import CoNorm, ContextEstimator

SECTION = "training"

#: (label, bf16 autocast, channels_last) of the two settings compared.
PRECISIONS: tuple[tuple[str, bool, bool], ...] = (
    ("fp32, NCHW", False, False),
    ("bf16-mixed, channels_last", True, True),
)


def two_conv_conorm(block: CoNorm, features: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
    """CoNorm as the paper's listing computes it: two separate output convolutions (the "before")."""
    context = F.interpolate(context, size=features.shape[2:], mode="bilinear", align_corners=False)
    latent = block.phi_latent(context)
    return features * block.phi_scale(latent) + block.phi_bias(latent)


@contextlib.contextmanager
def _no_grad_leak(module: nn.Module) -> Iterator[None]:
    try:
        yield
    finally:
        module.zero_grad(set_to_none=True)


def conorm_rows(
    backbone: str, batch: dict, device: str | torch.device, rounds: int, label: str, bf16: bool, channels_last: bool
) -> list[PerfRow]:
    """Fused CoNorm against the two-convolution listing: forward + backward of one block at depth 2."""
    b, _, s, _ = batch["image"].shape
    channels = (2048 if backbone in ("resnet50", "resnet101") else 512) // 4  # layer2 output
    torch.manual_seed(0)
    block = CoNorm(channels).to(device)
    memory = torch.channels_last if channels_last else torch.contiguous_format
    if channels_last:
        block = block.to(memory_format=memory)
    features = torch.randn(b, channels, s // 8, s // 8, device=device).contiguous(memory_format=memory)
    features.requires_grad_(True)
    context = batch["centermaps"]

    def step(fn: Callable[[CoNorm, torch.Tensor, torch.Tensor], torch.Tensor]) -> Callable[[], None]:
        def run_once() -> None:
            with _no_grad_leak(block):
                with autocast(device, bf16):
                    out = fn(block, features, context)
                out.float().square().mean().backward()
                features.grad = None

        return run_once

    fused, listing = interleaved_step_times(
        [step(lambda m, x, c: m(x, c)), step(two_conv_conorm)], device, rounds, warmup=1
    )
    return [
        PerfRow(
            SECTION,
            f"CoNorm block fwd+bwd, fused output conv, {channels} ch at {s // 8}x{s // 8}, batch {b}, {label}",
            b / min(fused),
            "img/s",
            baseline="two output convolutions (paper listing)",
            baseline_value=b / min(listing),
        )
    ]


def run(
    quick: bool = False,
    device: str = "cpu",
    *,
    backbone: str | None = None,
    batch_size: int | None = None,
    crop_size: int | None = None,
    rounds: int | None = None,
    matmul_size: int | None = None,
) -> list[PerfRow]:
    """Training-step throughput, FLOPs, MFU and the precision and CoNorm comparisons.

    Args:
        quick: ResNet-18 variants, batch 2, 128 px, 2 timed rounds, a 1024 matmul for the peak.
        device: ``cpu`` or ``cuda``.
        backbone, batch_size, crop_size, rounds, matmul_size: overrides of the problem size
            (full: resnet50, batch 16, 224 px, 5 rounds, 2048 matmul on the CPU / 8192 on a GPU).
    """
    backbone = backbone or ("resnet18" if quick else "resnet50")
    batch_size = batch_size or (2 if quick else 16)
    crop_size = crop_size or (128 if quick else 224)
    rounds = rounds or (2 if quick else 5)
    size = matmul_size or (1024 if quick else (8192 if torch.device(device).type == "cuda" else 2048))
    repeats = 3 if quick else 10
    matmul_peaks(device, size, repeats)
    batch = synthetic_batch(batch_size, crop_size, device)

    rows: list[PerfRow] = []
    throughput: dict[str, dict[str, float]] = {}
    for label, bf16, channels_last in PRECISIONS:
        models = build_training_models(backbone, batch, device, channels_last, bf16)
        flops = {m.name: m.training_flops() / batch_size for m in models}
        rates = training_throughput(models, batch_size, device, rounds)
        throughput[label] = rates
        peak = best_matmul_peak(device, torch.bfloat16 if bf16 else torch.float32, size, repeats)
        names = [m.name for m in models]
        baselines = {names[0]: names[1], names[1]: names[2]}  # OCHMR vs SPIN, SPIN vs plain ResNet
        for name in names:
            base = baselines.get(name, "")
            rows.append(
                PerfRow(
                    SECTION,
                    f"{name} training step, batch {batch_size}, {crop_size}px, {label}",
                    rates[name],
                    "img/s",
                    baseline=base,
                    baseline_value=rates[base] if base else float("nan"),
                    gflops_per_item=flops[name] / 1e9,
                    mfu=mfu(flops[name], rates[name], peak),
                    note=peak_note(bf16, peak, device),
                )
            )
        del models
        synchronize(device)
    (slow, _, _), (fast, _, _) = PRECISIONS
    for name in throughput[fast]:
        rows.append(
            PerfRow(
                SECTION,
                f"{name} training step, {fast} vs {slow}",
                throughput[fast][name],
                "img/s",
                baseline=slow,
                baseline_value=throughput[slow][name],
            )
        )
    for label, bf16, channels_last in PRECISIONS:
        rows.extend(conorm_rows(backbone, batch, device, rounds, label, bf16, channels_last))
    label, bf16, channels_last = PRECISIONS[-1]
    rows.extend(context_cache_rows(backbone, batch, device, rounds, label, bf16, channels_last))
    rows.extend(optimizer_rows(backbone, batch, device, max(rounds, 5)))
    return rows


def optimizer_rows(backbone: str, batch: dict, device: str | torch.device, rounds: int) -> list[PerfRow]:
    """The optimiser update of OCHMR's parameters: the project's (fused kernels where the device has them,
    :func:`~ochmr_lit.lit.optim.build_optimizer`) against torch's default implementation for the device."""
    model = build_training_models(backbone, batch, device, False, False)[0].module.model
    params = [p for p in model.parameters() if p.requires_grad]
    generator = torch.Generator(device="cpu").manual_seed(0)
    for p in params:
        p.grad = (torch.randn(p.shape, generator=generator) * 1e-3).to(device)
    ours = build_optimizer(params, OptimConfig(name="adam"))
    default = torch.optim.Adam([{"params": params}], lr=OptimConfig().lr)
    fused, loop = interleaved_step_times([ours.step, default.step], device, rounds, warmup=2)
    implementation = "fused" if is_fused(ours) else "torch's default"
    return [
        PerfRow(
            SECTION,
            f"optimizer step (Adam, {implementation}), {backbone} OCHMR, {len(params)} tensors, "
            f"{sum(p.numel() for p in params) / 1e6:.1f} M parameters",
            1.0 / min(fused),
            "steps/s",
            baseline="torch.optim.Adam default implementation",
            baseline_value=1.0 / min(loop),
        )
    ]


def context_cache_rows(
    backbone: str, batch: dict, device: str | torch.device, rounds: int, label: str, bf16: bool, channels_last: bool
) -> list[PerfRow]:
    """OCHMR's training step on predicted context: cached body centres against a frozen HRNet-W32 per step.

    The cached step reads the centermaps the data module rendered from the cached centres (the batch's);
    the baseline runs the frozen estimator on the crops under ``no_grad`` and re-renders its decoded
    centres (``MeshRegressorModule.context_for`` without a cache) before the same step.
    """
    ochmr = build_training_models(backbone, batch, device, channels_last, bf16)[0]
    torch.manual_seed(0)
    estimator = ContextEstimator(width=32).eval().to(device)
    if channels_last:
        estimator = estimator.to(memory_format=torch.channels_last)
    for p in estimator.parameters():
        p.requires_grad_(False)
    cached_maps = batch["centermaps"]

    def per_step_estimator() -> None:
        with torch.no_grad(), autocast(device, bf16):
            maps = estimator(batch["image"])
        batch["centermaps"] = rerender_context(maps.float())
        ochmr.step()
        batch["centermaps"] = cached_maps

    cached, per_step = interleaved_step_times([ochmr.step, per_step_estimator], device, rounds, warmup=1)
    b, s = batch["image"].shape[0], batch["image"].shape[-1]
    return [
        PerfRow(
            SECTION,
            f"ochmr training step on predicted context, cached centres, batch {b}, {s}px, {label}",
            b / min(cached),
            "img/s",
            baseline="frozen HRNet-W32 run on every crop",
            baseline_value=b / min(per_step),
        )
    ]
