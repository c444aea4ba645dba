"""What the machine's CPU does natively, and the training precision that follows from it.

bf16 autocast with channels_last is 2-3x faster than fp32 on CPUs with native bf16 instructions
(AVX-512 BF16 or AMX; measured in docs/performance.md), but on CPUs without them (AVX2 only) PyTorch
emulates bf16 and the same step runs tens of times slower than in fp32. ``trainer=cpu`` therefore asks
:func:`cpu_training_precision` instead of fixing ``bf16-mixed``.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

#: /proc/cpuinfo flags of native bf16 arithmetic (x86: AVX-512 BF16, AMX BF16; Arm: BF16 extension).
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


def _first_cpu_field(cpuinfo: str | Path, keys: tuple[str, ...]) -> str | None:
    """The value of the first line of ``cpuinfo`` whose key is one of ``keys`` and whose value is not empty (the
    first CPU's, as every CPU repeats its fields); None where there is none or the file does not exist."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in keys and value.strip():
            return value
    return None


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The feature flags of the first CPU listed in ``cpuinfo`` (empty where the file does not exist)."""
    return frozenset((_first_cpu_field(cpuinfo, ("flags", "Features")) or "").split())


def cpu_model_name(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The model name of the first CPU listed in ``cpuinfo`` (``unknown CPU`` where none is given)."""
    return " ".join((_first_cpu_field(cpuinfo, ("model name", "Model", "cpu model")) or "unknown CPU").split())


def describe_cpu(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """One line naming the CPU, whether it computes bf16 natively and the precision ``trainer=cpu`` picks:
    what a measured time or speed-up has to be reported with, since the two kinds differ tens of times in bf16."""
    native = sorted(cpu_flags(cpuinfo) & BF16_FLAGS)
    if native:
        bf16 = f"native bf16 ({', '.join(native)}): trainer=cpu trains in bf16-mixed"
    else:
        bf16 = "no native bf16 (bf16 would be emulated, tens of times slower): trainer=cpu trains in fp32 (32-true)"
    return f"{cpu_model_name(cpuinfo)}, {os.cpu_count() or '?'} logical cores; {bf16}"


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (see :data:`BF16_FLAGS`)."""
    return bool(cpu_flags() & BF16_FLAGS)


def cpu_training_precision() -> str:
    """Lightning precision for CPU training: ``bf16-mixed`` with native bf16, else ``32-true``."""
    return "bf16-mixed" if cpu_has_native_bf16() else "32-true"


def register_resolvers() -> None:
    """Make ``${ochmr_cpu_precision:}`` available to the configs (idempotent)."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("ochmr_cpu_precision"):
        OmegaConf.register_new_resolver("ochmr_cpu_precision", cpu_training_precision)
