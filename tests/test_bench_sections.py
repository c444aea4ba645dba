"""Performance bench sections: FLOP counts against hand-computed values, and every section on tiny settings."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from ochmr_lit.bench import SECTIONS, PerfRow, get_section, measure, workloads
from ochmr_lit.bench import data as data_section
from ochmr_lit.bench import flops as flops_section
from ochmr_lit.bench import inference as inference_section
from ochmr_lit.bench import training as training_section
from ochmr_lit.bench.__main__ import format_perf_table, main


def _tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, kernel_size=3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 5))


# Hand-computed, 2 FLOPs per multiply-add, batch 2, input 3 x 8 x 8:
CONV_FWD = 2 * 2 * (4 * 8 * 8) * (3 * 3 * 3)  # outputs x taps = 27,648
LINEAR_FWD = 2 * 2 * 256 * 5  # 5,120


def test_forward_flops_equal_hand_count():
    model = _tiny_model()
    assert measure.forward_flops(model, torch.randn(2, 3, 8, 8)) == CONV_FWD + LINEAR_FWD == 32_768
    assert measure.forward_flops(nn.Linear(7, 3), torch.randn(11, 7)) == 2 * 11 * 7 * 3


def test_training_flops_equal_hand_count():
    model = _tiny_model()
    x = torch.randn(2, 3, 8, 8)
    flops = measure.training_flops(lambda: model(x).square().sum())
    # backward: conv weight gradient only (the image needs no gradient) = its forward; the linear layer's
    # input and weight gradients = twice its forward
    assert flops == CONV_FWD + LINEAR_FWD + CONV_FWD + 2 * LINEAR_FWD == 70_656
    assert all(p.grad is not None for p in model.parameters())


def test_mfu_and_peak():
    assert measure.mfu(2e9, 50.0, 400e9) == pytest.approx(0.25)
    peak = measure.measure_matmul_peak("cpu", torch.float32, size=128, repeats=2)
    assert 1e6 < peak < 1e14  # FLOP/s: positive and physically plausible for one CPU


def _check_rows(rows: list[PerfRow]) -> None:
    assert rows
    for r in rows:
        assert isinstance(r, PerfRow)
        assert math.isfinite(r.value) and r.value > 0, r.name
        if not math.isnan(r.baseline_value):
            assert r.baseline_value > 0 and r.baseline
            assert r.ratio == pytest.approx(r.value / r.baseline_value)
        if not math.isnan(r.mfu):
            assert r.mfu > 0 and r.gflops_per_item > 0


def _by_name(rows: list[PerfRow], start: str) -> PerfRow:
    found = [r for r in rows if r.name.startswith(start)]
    assert len(found) == 1, (start, [r.name for r in rows])
    return found[0]


@pytest.mark.slow  # ~10-25 s: FlopCounterMode's dispatch overhead over HRNet's many small ops
def test_flops_section_counts_the_conorm_block_exactly():
    crop = 32
    rows = flops_section.run(True, backbone="resnet18", crop_size=crop, context_size=64, matmul_size=128)
    _check_rows(rows)
    ochmr = _by_name(rows, "OCHMR (CoNorm@2, resnet18), forward")
    spin = _by_name(rows, "SPIN (resnet18), forward")
    plain = _by_name(rows, "plain torchvision resnet18, forward")
    # OCHMR - SPIN = one CoNorm block at layer 2 (128 channels at crop/8, K = 128): latent conv 2 -> 128 and the
    # fused 128 -> 2 x 128 convolution, all 3 x 3 (the bilinear resize and the modulation are not matmuls)
    hw = (crop // 8) ** 2
    conorm = 2 * hw * 9 * (2 * 128 + 128 * 256)
    assert (ochmr.value - spin.value) * 1e9 == pytest.approx(conorm, rel=1e-9)
    assert ochmr.baseline_value == plain.value and ochmr.ratio > spin.ratio > 1.0
    # plain ResNet-18 at 32 px, counted by hand from torchvision's layer shapes: conv1 7x7/2 -> 16x16, maxpool
    # -> 8x8; layer1 4 convs 64->64 at 8x8; layer2..4 halve the side and double the channels (2 blocks each,
    # 1x1 downsample in the first); fc 512 -> 1000.
    def conv(cin, cout, k, side):
        return 2 * cout * side * side * cin * k * k

    total = conv(3, 64, 7, 16) + 4 * conv(64, 64, 3, 8)
    for cin, cout, side in ((64, 128, 4), (128, 256, 2), (256, 512, 1)):
        total += conv(cin, cout, 3, side) + 3 * conv(cout, cout, 3, side) + conv(cin, cout, 1, side)
    total += 2 * 512 * 1000
    assert plain.value * 1e9 == pytest.approx(total, rel=1e-12)
    peak_fp32, peak_bf16 = rows[0], rows[1]
    assert peak_fp32.unit == peak_bf16.unit == "GFLOP/s"
    assert peak_bf16.baseline_value == peak_fp32.value


@pytest.mark.slow  # ~20 s on 2 busy cores: 3 models x 2 precisions, each built, counted and stepped
def test_training_section_tiny():
    rows = training_section.run(True, backbone="resnet18", batch_size=2, crop_size=32, rounds=1, matmul_size=128)
    _check_rows(rows)
    # 3 models x 2 precisions, 3 precision ratios, 2 CoNorm before/after, cached context vs per-step estimator,
    # the optimiser update
    assert len(rows) == 3 * 2 + 3 + 2 + 1 + 1
    assert all("resnet18" in r.name for r in rows[:9])
    for label in ("fp32, NCHW", "bf16-mixed, channels_last"):
        ochmr = _by_name(rows, f"OCHMR (CoNorm@2, resnet18) training step, batch 2, 32px, {label}")
        spin = _by_name(rows, f"SPIN (resnet18) training step, batch 2, 32px, {label}")
        plain = _by_name(rows, f"plain torchvision resnet18 training step, batch 2, 32px, {label}")
        assert ochmr.unit == "img/s" and ochmr.baseline_value == spin.value and spin.baseline_value == plain.value
        assert ochmr.gflops_per_item > spin.gflops_per_item  # the CoNorm block
        peak = float(ochmr.note.split("peak ")[1].split(" ")[0]) * 1e9
        assert ochmr.mfu == pytest.approx(ochmr.gflops_per_item * 1e9 * ochmr.value / peak, rel=1e-2)
    ratio = _by_name(rows, "OCHMR (CoNorm@2, resnet18) training step, bf16-mixed, channels_last vs fp32, NCHW")
    fast = _by_name(rows, "OCHMR (CoNorm@2, resnet18) training step, batch 2, 32px, bf16-mixed, channels_last")
    slow = _by_name(rows, "OCHMR (CoNorm@2, resnet18) training step, batch 2, 32px, fp32, NCHW")
    assert (ratio.value, ratio.baseline_value) == (fast.value, slow.value)
    conorm = [r for r in rows if r.name.startswith("CoNorm block")]
    assert [r.baseline for r in conorm] == ["two output convolutions (paper listing)"] * 2
    cache = _by_name(rows, "ochmr training step on predicted context, cached centres, batch 2, 32px, "
                           "bf16-mixed, channels_last")
    assert cache.baseline == "frozen HRNet-W32 run on every crop"
    assert cache.unit == "img/s" and cache.value > 0 and cache.baseline_value > 0
    (update,) = [r for r in rows if r.name.startswith("optimizer step")]
    assert update.name.startswith("optimizer step (Adam, fused), resnet18 OCHMR")
    assert update.unit == "steps/s" and update.value > 0 and update.baseline_value > 0


def test_training_models_share_the_batch_and_step():
    batch = workloads.synthetic_batch(2, 32, "cpu")
    models = workloads.build_training_models("resnet18", batch, "cpu", channels_last=False)
    assert [m.name for m in models] == ["OCHMR (CoNorm@2, resnet18)", "SPIN (resnet18)", "plain torchvision resnet18"]
    for m in models:
        before = [p.detach().clone() for p in m.module.parameters() if p.requires_grad]
        m.step()
        after = [p.detach() for p in m.module.parameters() if p.requires_grad]
        assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True)), m.name
    with pytest.raises(ValueError, match="unknown training bench model"):
        workloads.build_training_models("resnet18", batch, "cpu", False, include=("ochmr", "hmr"))


@pytest.mark.slow  # ~10-50 s: FlopCounterMode over HRNet's many small ops, then timed rounds
def test_inference_section_tiny():
    rows = inference_section.run(True, backbone="resnet18", batch_size=1, crop_size=32, context_size=64, rounds=1,
                                 matmul_size=128)
    _check_rows(rows)
    pipeline, ochmr, spin = rows
    assert pipeline.unit == ochmr.unit == spin.unit == "persons/s"
    assert pipeline.baseline_value == ochmr.value and ochmr.baseline_value == spin.value
    # the pipeline runs the context estimator on top of the same regressor
    assert pipeline.gflops_per_item > ochmr.gflops_per_item > spin.gflops_per_item
    with pytest.raises(ValueError, match="multiple of 32"):
        inference_section.run(True, context_size=48)


def test_data_section_tiny():
    rows = data_section.run(True, num_images=2, image_size=(96, 96), crop_size=32, num_crops=4, backbone="resnet18",
                            batch_size=2, rounds=1)
    _check_rows(rows)
    (row,) = rows
    assert row.unit == "crops/s" and "TopDownTransform" in row.name and "2 SynthCrowd images 96x96" in row.name
    workers = int(row.note.split(" worker")[0])
    assert workers == math.ceil(row.baseline_value / row.value)


def test_sections_registered_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    assert set(SECTIONS) >= {"training", "flops", "inference", "data", "metrics"}
    assert get_section("flops") is flops_section.run
    # the CLI with the data section shrunk to tiny sizes
    tiny = data_section.run
    monkeypatch.setattr(
        data_section, "run",
        lambda quick, device="cpu": tiny(quick, device, num_images=2, image_size=(96, 96), crop_size=32,
                                         num_crops=4, batch_size=2, rounds=1),
    )
    out = tmp_path / "bench.json"
    assert main(["--only", "data", "--quick", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| data | TopDownTransform decode + crop + augmentation, 1 worker, 32px crops" in printed
    payload = json.loads(out.read_text())
    assert payload["rows"] == [] and payload["threads"]["data"] >= 1 and payload["device"] == "cpu"
    (row,) = payload["perf_rows"]
    assert row["value"] > 0 and row["baseline_value"] > 0 and row["unit"] == "crops/s"
    assert row["ratio"] == pytest.approx(row["value"] / row["baseline_value"])
    assert "ratio" in format_perf_table([PerfRow("s", "n", 2.0, "img/s", "b", 4.0)]).splitlines()[0]
    assert "| s | n | 2 | img/s | b | 4 | 0.50x |" in format_perf_table([PerfRow("s", "n", 2.0, "img/s", "b", 4.0)])


def test_cli_refuses_cuda_without_gpu(capsys: pytest.CaptureFixture[str]) -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(SystemExit):
        main(["--only", "flops", "--device", "cuda"])
    assert "no CUDA device is available" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--only", "flops", "--device", "tpu"])


def test_peak_note_warns_where_bf16_is_emulated(monkeypatch):
    import ochmr_lit.hardware as hardware

    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: False)
    emulated = measure.peak_note(True, 0.88e9, "cpu")
    assert emulated.startswith("MFU against the bf16 matmul peak 0.88 GFLOP/s") and "emulated" in emulated
    assert "emulated" not in measure.peak_note(False, 106e9, "cpu")  # fp32 rows
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: True)
    assert "emulated" not in measure.peak_note(True, 400e9, "cpu")
    assert float(emulated.split("peak ")[1].split(" ")[0]) == 0.88  # the peak the tests parse back
