"""Benchmark section ``inference``: persons per second of the networks that turn a crop into SMPL parameters.

* context estimator (HRNet-W32 on the crop resized to its input size) + OCHMR regressor on its maps;
* the OCHMR regressor alone, given the context maps;
* the SPIN regressor (no CoNorm, no context), the baseline of the regressor row.

Eval mode under ``torch.inference_mode``, bf16 autocast + channels_last by default (the CPU default of the
trainer config). Calls of the three are interleaved round by round; throughput is batch size / best time
of the rounds. The body model that turns parameters into a mesh is not included (it is the same for all rows).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ochmr_lit.bench import PerfRow
from ochmr_lit.bench.measure import autocast, best_matmul_peak, count_flops, interleaved_step_times, mfu, peak_note
from ochmr_lit.models import ContextEstimator, MeshRegressor

SECTION = "inference"


def run(
    quick: bool = False,
    device: str = "cpu",
    *,
    backbone: str | None = None,
    batch_size: int | None = None,
    crop_size: int | None = None,
    context_size: int | None = None,
    rounds: int | None = None,
    bf16: bool = True,
    channels_last: bool = True,
    matmul_size: int | None = None,
) -> list[PerfRow]:
    """Inference throughput (persons/s), GFLOP per person and MFU of the three pipelines.

    Args:
        quick: ResNet-18 regressor, 128 px crops and context input, batch 2, 2 rounds, 1024 matmul peak.
        device: ``cpu`` or ``cuda``.
        backbone, batch_size, crop_size, context_size, rounds, matmul_size: problem-size overrides
            (full: resnet50, batch 16, 224 px crops, 256 px context input, 5 rounds, 2048 / 8192 matmul).
        bf16: bf16 autocast (else fp32). channels_last: channels_last weights and inputs.
    """
    backbone = backbone or ("resnet18" if quick else "resnet50")
    batch_size = batch_size or (2 if quick else 16)
    crop_size = crop_size or (128 if quick else 224)
    context_size = context_size or (128 if quick else 256)
    if context_size % 32:
        raise ValueError(f"context_size must be a multiple of 32 (HRNet), got {context_size}")
    rounds = rounds or (2 if quick else 5)
    size = matmul_size or (1024 if quick else (8192 if torch.device(device).type == "cuda" else 2048))
    repeats = 3 if quick else 10
    dtype = torch.bfloat16 if bf16 else torch.float32
    best_matmul_peak(device, dtype, size, repeats)

    torch.manual_seed(0)
    memory = torch.channels_last if channels_last else torch.contiguous_format
    context_net = ContextEstimator(width=32).eval().to(device=device, memory_format=memory)
    ochmr = MeshRegressor(backbone, conorm_depths=(2,)).eval().to(device=device, memory_format=memory)
    spin = MeshRegressor(backbone, conorm_depths=()).eval().to(device=device, memory_format=memory)
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(batch_size, 3, crop_size, crop_size, generator=gen).to(device)
    images = images.contiguous(memory_format=memory)
    maps = torch.rand(batch_size, 2, context_size // 4, context_size // 4, generator=gen).to(device)

    def with_context() -> object:
        with torch.inference_mode(), autocast(device, bf16):
            resized = F.interpolate(images, size=(context_size, context_size), mode="bilinear", align_corners=False)
            context = context_net(resized.contiguous(memory_format=memory)).float()
            return ochmr(images, context)

    def regressor_alone() -> object:
        with torch.inference_mode(), autocast(device, bf16):
            return ochmr(images, maps)

    def spin_alone() -> object:
        with torch.inference_mode(), autocast(device, bf16):
            return spin(images)

    fns = {"pipeline": with_context, "ochmr": regressor_alone, "spin": spin_alone}
    flops = {k: count_flops(fn) / batch_size for k, fn in fns.items()}
    times = interleaved_step_times(list(fns.values()), device, rounds, warmup=1)
    rate = {k: batch_size / min(t) for k, t in zip(fns, times, strict=True)}
    peak = best_matmul_peak(device, dtype, size, repeats)  # measured before and after: the best counts
    precision = f"{'bf16' if bf16 else 'fp32'}, {'channels_last' if channels_last else 'NCHW'}"
    setting = f"batch {batch_size}, {crop_size}px, {precision}"
    names = {
        "pipeline": f"context estimator HRNet-W32 ({context_size}px) + OCHMR regressor ({backbone}), {setting}",
        "ochmr": f"OCHMR regressor ({backbone}, CoNorm@2) alone, given context, {setting}",
        "spin": f"SPIN regressor ({backbone}) alone, {setting}",
    }
    baselines = {"pipeline": ("ochmr", "OCHMR regressor alone"), "ochmr": ("spin", "SPIN regressor alone")}
    note = peak_note(bf16, peak, device)
    rows = []
    for key, name in names.items():
        base, base_name = baselines.get(key, (None, ""))
        rows.append(
            PerfRow(
                SECTION,
                name,
                rate[key],
                "persons/s",
                baseline=base_name,
                baseline_value=rate[base] if base else float("nan"),
                gflops_per_item=flops[key] / 1e9,
                mfu=mfu(flops[key], rate[key], peak),
                note=note,
            )
        )
    return rows
