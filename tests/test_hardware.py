"""CPU training precision follows the CPU: bf16-mixed only where bf16 is native."""

import pytest
from hydra import compose, initialize_config_module

from ochmr_lit import hardware


def _cpuinfo(tmp_path, flags: str):
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t: fpu\n")
    return path


def test_flags_of_the_first_cpu(tmp_path):
    assert hardware.cpu_flags(_cpuinfo(tmp_path, "fpu avx2 avx512f avx512_bf16")) == {
        "fpu", "avx2", "avx512f", "avx512_bf16"}
    assert hardware.cpu_flags(tmp_path / "missing") == frozenset()


def test_the_cpu_line_names_the_model_and_the_precision_it_trains_in(tmp_path):
    native = hardware.describe_cpu(_cpuinfo(tmp_path, "fpu avx2 avx512f avx512_bf16"))
    assert native.startswith("Test CPU, ") and "native bf16 (avx512_bf16): trainer=cpu trains in bf16-mixed" in native
    emulated = hardware.describe_cpu(_cpuinfo(tmp_path, "fpu avx2 fma"))
    assert "no native bf16" in emulated and emulated.endswith("trains in fp32 (32-true)")
    assert hardware.describe_cpu(tmp_path / "missing").startswith("unknown CPU, ")


@pytest.mark.parametrize(("flags", "precision"), [("fpu avx2 fma", "32-true"), ("avx2 avx512f", "32-true"),
                                                  ("avx2 avx512f avx512_bf16", "bf16-mixed"),
                                                  ("avx2 amx_bf16 amx_tile", "bf16-mixed")])
def test_trainer_cpu_precision_follows_the_flags(tmp_path, monkeypatch, flags, precision):
    info = _cpuinfo(tmp_path, flags)
    monkeypatch.setattr(hardware, "cpu_flags", lambda cpuinfo=info: frozenset(flags.split()))
    hardware.cpu_has_native_bf16.cache_clear()
    try:
        with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
            cfg = compose(config_name="fit", overrides=[f"run_dir={tmp_path}"])
        assert cfg.trainer.precision == precision
        with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
            cfg = compose(config_name="fit", overrides=[f"run_dir={tmp_path}", "trainer.precision=bf16-mixed"])
        assert cfg.trainer.precision == "bf16-mixed"  # an explicit choice wins
    finally:
        hardware.cpu_has_native_bf16.cache_clear()
