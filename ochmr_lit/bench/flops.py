"""Benchmark section ``flops``: model FLOPs per image and the machine's measured matmul peak.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (matrix products and convolutions, two
FLOPs per multiply-add, biases and element-wise work not counted), for one forward pass and for one
training step's forward + backward. The peak is the best throughput of a large square matmul in fp32
and in bf16; the training and inference sections divide their achieved FLOP rate by it (MFU).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from ochmr_lit.bench import PerfRow

SECTION = "flops"


def synchronize(device: str | torch.device) -> None:
    """Wait for queued GPU work (no-op on the CPU), so that a wall-clock reading covers it."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def measure_seconds(fn: Callable[[], object], device: str | torch.device, repeats: int, warmup: int = 1) -> list[float]:
    """Wall time of each of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls, seconds.

    The device is synchronised before and after every timed call.
    """
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of everything ``fn`` runs (forward and, if it calls ``backward``, backward), as counted by
    ``FlopCounterMode``: 2 per multiply-add of matmuls and convolutions."""
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())


def forward_flops(model: torch.nn.Module, *inputs: torch.Tensor) -> int:
    """FLOPs of one forward pass of ``model`` on ``inputs`` (no autograd graph is built)."""
    with torch.no_grad():
        return count_flops(lambda: model(*inputs))


def training_flops(loss_fn: Callable[[], torch.Tensor]) -> int:
    """FLOPs of one forward (``loss_fn()``, a scalar loss) + backward of a training step.

    The gradients it leaves in the parameters are the caller's to clear; the optimizer update is
    element-wise and not counted.
    """
    return count_flops(lambda: loss_fn().backward())


def measure_matmul_peak(
    device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, size: int = 2048, repeats: int = 5
) -> float:
    """Best achieved FLOP/s of an ``size x size`` by ``size x size`` matmul (``2 size^3`` FLOPs) in ``dtype``."""
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device=device, dtype=dtype)
    b = torch.randn(size, size, generator=gen).to(device=device, dtype=dtype)
    times = measure_seconds(lambda: torch.mm(a, b), device, repeats=repeats, warmup=1)
    return 2.0 * size**3 / min(times)


#: Best matmul FLOP/s measured so far in this process, by (device, dtype, size).
_BEST_PEAKS: dict[tuple[str, torch.dtype, int], float] = {}


def best_matmul_peak(
    device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, size: int = 2048, repeats: int = 5
) -> float:
    """The matmul peak (FLOP/s): a new measurement, or a better one made earlier in this process.

    On a shared machine a single measurement can land in a busy moment and understate the peak (and
    overstate MFU); every section measures again and keeps the best seen in the run.
    """
    key = (str(torch.device(device)), dtype, int(size))
    _BEST_PEAKS[key] = max(_BEST_PEAKS.get(key, 0.0), measure_matmul_peak(device, dtype, size, repeats))
    return _BEST_PEAKS[key]


def mfu(flops_per_item: float, items_per_s: float, peak_flops: float) -> float:
    """Model FLOP utilisation: achieved FLOP/s (``flops_per_item * items_per_s``) over the peak FLOP/s."""
    return flops_per_item * items_per_s / peak_flops


def peak_note(bf16: bool, peak_flops: float, device: str | torch.device) -> str:
    """The note of an MFU row: which peak it is measured against, and a warning where bf16 is emulated.

    On CPUs without native bf16 (no AVX-512 BF16 / AMX) PyTorch emulates bf16 matmuls, while oneDNN's bf16
    convolutions still run at fp32-like speed: MFU against the emulated matmul peak then exceeds 100 %.
    """
    from ochmr_lit.hardware import cpu_has_native_bf16

    note = f"MFU against the {'bf16' if bf16 else 'fp32'} matmul peak {peak_flops / 1e9:.4g} GFLOP/s"
    if bf16 and torch.device(device).type == "cpu" and not cpu_has_native_bf16():
        note += " (bf16 emulated on this CPU: no AVX-512 BF16/AMX, the MFU is not a hardware fraction)"
    return note


def peak_rows(device: str, size: int, repeats: int) -> tuple[dict[torch.dtype, float], list[PerfRow]]:
    """The matmul peak in fp32 and bf16 (FLOP/s by dtype, the best of the run so far, see
    :func:`best_matmul_peak`) and its two rows (bf16 against fp32)."""
    peaks = {dt: best_matmul_peak(device, dt, size, repeats) for dt in (torch.float32, torch.bfloat16)}
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
    from ochmr_lit.bench.training import build_training_models, synthetic_batch
    from ochmr_lit.models import ContextEstimator

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
