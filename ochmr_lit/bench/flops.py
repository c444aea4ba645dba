"""Benchmark section ``flops``: model FLOPs per image and the machine's measured matmul peak.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (matrix products and convolutions, two
FLOPs per multiply-add, biases and element-wise work not counted), for one forward pass and for one
training step's forward + backward. The peak is the best throughput of a large square matmul in fp32
and in bf16; the training and inference sections divide their achieved FLOP rate by it (MFU).
"""

from __future__ import annotations

import torch

from ochmr_lit.bench import PerfRow
from ochmr_lit.bench.measure import forward_flops, matmul_peaks
from ochmr_lit.bench.workloads import build_training_models, synthetic_batch
from ochmr_lit.models import ContextEstimator

SECTION = "flops"


def peak_rows(device: str, size: int, repeats: int) -> tuple[dict[torch.dtype, float], list[PerfRow]]:
    """The matmul peak in fp32 and bf16 (FLOP/s by dtype, the best of the run so far, see
    :func:`~ochmr_lit.bench.measure.best_matmul_peak`) and its two rows (bf16 against fp32)."""
    peaks = matmul_peaks(device, size, repeats)
    rows = [
        PerfRow(SECTION, f"matmul peak, fp32, {size}x{size}", peaks[torch.float32] / 1e9, "GFLOP/s"),
        PerfRow(
            SECTION,
            f"matmul peak, bf16, {size}x{size}",
            peaks[torch.bfloat16] / 1e9,
            "GFLOP/s",
            baseline="fp32 matmul peak",
            baseline_value=peaks[torch.float32] / 1e9,
        ),
    ]
    return peaks, rows


def run(
    quick: bool = False,
    device: str = "cpu",
    *,
    backbone: str | None = None,
    crop_size: int | None = None,
    context_size: int | None = None,
    matmul_size: int | None = None,
) -> list[PerfRow]:
    """FLOPs per image of OCHMR, SPIN and plain ResNet (forward and training step), of the context
    estimator (forward), and the matmul peak.

    Args:
        quick: ResNet-18 variants, 128 px inputs and a smaller matmul (1024; 2048 otherwise, 8192 on a GPU).
        device: where the peak is measured (FLOPs do not depend on it).
        backbone: override of the ResNet (resnet50 by default, resnet18 when quick).
        crop_size: regressor input side, px (224; 128 quick). context_size: context estimator input side,
            px (256; 128 quick).
        matmul_size: override of the peak matmul side.
    """
    backbone = backbone or ("resnet18" if quick else "resnet50")
    crop_size = crop_size or (128 if quick else 224)
    context_size = context_size or (128 if quick else 256)
    size = matmul_size or (1024 if quick else (8192 if torch.device(device).type == "cuda" else 2048))
    per_batch = 2  # training-mode BatchNorm needs more than one value per channel
    batch = synthetic_batch(per_batch, crop_size, "cpu")
    models = build_training_models(backbone, batch, "cpu", channels_last=False)
    rows: list[PerfRow] = []
    counts = {m.name: (m.forward_flops() / per_batch, m.training_flops() / per_batch) for m in models}
    plain = models[-1].name
    for name, (fwd, train) in counts.items():
        rows.append(
            PerfRow(SECTION, f"{name}, forward, {crop_size}px", fwd / 1e9, "GFLOP/img", plain, counts[plain][0] / 1e9)
        )
        rows.append(
            PerfRow(
                SECTION,
                f"{name}, training step (fwd+bwd), {crop_size}px",
                train / 1e9,
                "GFLOP/img",
                plain,
                counts[plain][1] / 1e9,
            )
        )
    context = ContextEstimator(width=32).eval()
    ctx_flops = forward_flops(context, torch.zeros(1, 3, context_size, context_size))
    rows.append(PerfRow(SECTION, f"context estimator HRNet-W32, forward, {context_size}px", ctx_flops / 1e9,
                        "GFLOP/img"))
    return peak_rows(device, size, repeats=3 if quick else 10)[1] + rows
