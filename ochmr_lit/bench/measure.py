"""What the benchmark sections measure with: wall time, FLOPs, the matmul peak and MFU, and bf16 autocast.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (matrix products and convolutions, two
FLOPs per multiply-add, biases and element-wise work not counted). The peak is the best throughput of a large
square matmul; sections divide their achieved FLOP rate by it (MFU). Sections import these helpers and
:mod:`ochmr_lit.bench.workloads`, never another section.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode

from ochmr_lit import hardware


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


def matmul_peaks(device: str | torch.device, size: int, repeats: int) -> dict[torch.dtype, float]:
    """The matmul peak (FLOP/s) in fp32 and in bf16: the best of the run so far (:func:`best_matmul_peak`)."""
    return {dt: best_matmul_peak(device, dt, size, repeats) for dt in (torch.float32, torch.bfloat16)}


def mfu(flops_per_item: float, items_per_s: float, peak_flops: float) -> float:
    """Model FLOP utilisation: achieved FLOP/s (``flops_per_item * items_per_s``) over the peak FLOP/s."""
    return flops_per_item * items_per_s / peak_flops


def peak_note(bf16: bool, peak_flops: float, device: str | torch.device) -> str:
    """The note of an MFU row: which peak it is measured against, and a warning where bf16 is emulated.

    On CPUs without native bf16 (no AVX-512 BF16 / AMX) PyTorch emulates bf16 matmuls, while oneDNN's bf16
    convolutions still run at fp32-like speed: MFU against the emulated matmul peak then exceeds 100 %.
    """
    note = f"MFU against the {'bf16' if bf16 else 'fp32'} matmul peak {peak_flops / 1e9:.4g} GFLOP/s"
    if bf16 and torch.device(device).type == "cpu" and not hardware.cpu_has_native_bf16():
        note += " (bf16 emulated on this CPU: no AVX-512 BF16/AMX, the MFU is not a hardware fraction)"
    return note


def autocast(device: str | torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on ``device`` (what Lightning's ``bf16-mixed`` does), or nothing."""
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=bf16)


def interleaved_step_times(
    steps: Sequence[Callable[[], object]], device: str | torch.device, rounds: int, warmup: int = 1
) -> list[list[float]]:
    """Seconds of each call of each function, called round by round (one call of each per round).

    Returns:
        ``times[i]`` is the list of ``rounds`` wall times of ``steps[i]``, the device synchronised around each.
    """
    for _ in range(warmup):
        for fn in steps:
            fn()
    times: list[list[float]] = [[] for _ in steps]
    for _ in range(rounds):
        for i, fn in enumerate(steps):
            times[i].extend(measure_seconds(fn, device, repeats=1, warmup=0))
    return times
