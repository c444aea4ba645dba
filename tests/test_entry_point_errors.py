"""A user's mistake stops every argparse-style command with one line ``error: ...`` on stderr and exit status 2.

prepare, reproduce, bench, doctor, the SynthCrowd generator, the learning curves and the reading ceilings are run
in-process through their ``main`` with an argument list, each with a realistic broken input (a missing file, an
unknown name, a bad argument, a file of the wrong content); the line names the file or the argument. Nothing here
trains or generates data. A bug (an exception that is not a user error) keeps its traceback, and
``HYDRA_FULL_ERROR=1`` shows one for a user error too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

import ochmr_lit.data.preparation as preparation
from ochmr_lit.bench.__main__ import main as bench_main
from ochmr_lit.data.synthcrowd.__main__ import main as synthcrowd_main
from ochmr_lit.doctor import main as doctor_main
from ochmr_lit.errors import ConfigError, MissingFileError
from ochmr_lit.eval.ceilings import main as ceilings_main
from ochmr_lit.prepare import main as prepare_main
from ochmr_lit.reproduce.__main__ import main as reproduce_main
from ochmr_lit.vis.curves import main as curves_main

Main = Callable[[Sequence[str]], int]


def exit_status(main: Main, argv: Sequence[str]) -> int:
    """The exit status of ``main(argv)``, whether it returns it or exits with it."""
    try:
        return main(list(argv))
    except SystemExit as stop:
        return int(stop.code or 0)


def error_line(main: Main, argv: Sequence[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The one ``error: ...`` line of a command stopped by a user error (status 2, no traceback)."""
    status = exit_status(main, argv)
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and len(lines[0]) > len("error: "), err
    return lines[0]


@pytest.fixture(autouse=True)
def _no_full_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    """The one-line form is what these tests check: whoever runs them may have HYDRA_FULL_ERROR set."""
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)


# prepare


def test_prepare_names_a_missing_raw_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "3DPW"
    line = error_line(prepare_main, ["3dpw", "--raw", str(missing), "--out", str(tmp_path / "out")], capsys)
    assert f"--raw {missing}" in line and "no such folder" in line
    assert not (tmp_path / "out").exists()


def test_prepare_names_a_missing_argument_and_an_unknown_dataset(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert "--raw" in error_line(prepare_main, ["ochuman", "--out", str(tmp_path)], capsys)
    line = error_line(prepare_main, ["pw3d", "--raw", str(tmp_path), "--out", str(tmp_path)], capsys)
    assert "'pw3d'" in line and "3dpw" in line


def test_prepare_names_a_file_of_the_wrong_content(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = tmp_path / "ochuman.json"
    raw.write_text(json.dumps({"annotations": []}))
    line = error_line(prepare_main, ["ochuman", "--raw", str(raw), "--out", str(tmp_path / "out"), "--no-progress"],
                      capsys)
    assert f"{raw}: key 'images' missing" in line


def test_prepare_mean_params_names_a_missing_split(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = error_line(prepare_main, ["mean_params", "--data", str(tmp_path / "train")], capsys)
    assert line.startswith(f"error: --data {tmp_path / 'train'}: no such folder")


def test_prepare_keeps_the_traceback_of_a_bug(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("index 3 is out of bounds")  # names no input: a bug, not the user's file

    monkeypatch.setattr(preparation, "prepare", broken)  # the prepare command imports it after its checks
    with pytest.raises(ValueError, match="out of bounds"):
        prepare_main(["3dpw", "--raw", str(tmp_path), "--out", str(tmp_path / "out")])


def test_full_error_shows_the_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(MissingFileError, match="--raw"):
        prepare_main(["3dpw", "--raw", str(tmp_path / "missing"), "--out", str(tmp_path)])
    with pytest.raises(ConfigError, match="unknown section"):
        bench_main(["--only", "flop"])


# reproduce


def test_reproduce_names_an_unknown_table(capsys: pytest.CaptureFixture[str]) -> None:
    line = error_line(reproduce_main, ["table=occlussion"], capsys)
    assert "table='occlussion': unknown table" in line and "occlusion" in line


def test_reproduce_names_an_unknown_setting_and_bad_seeds(capsys: pytest.CaptureFixture[str]) -> None:
    assert "'epochs'" in error_line(reproduce_main, ["table=occlusion", "epochs=3"], capsys)
    assert "seeds=[]" in error_line(reproduce_main, ["table=occlusion", "seeds=[]"], capsys)
    assert "'occlusion' is not key=value" in error_line(reproduce_main, ["occlusion"], capsys)


@pytest.mark.parametrize(("argument", "expected"), [
    ("overrides=3", "error: overrides=3: give a list of key=value overrides, e.g. overrides=[trainer.max_epochs=4]"),
    ("budget=3", "error: budget=3: give the overrides of each preset, e.g. budget.cpu=[trainer.max_epochs=4]"),
    ("budget.cpu=3", "error: budget.cpu=3: give a list of key=value overrides, e.g. "
                     "budget.cpu=[trainer.max_epochs=4]"),
    ("context_diagnostics=maybe", "error: context_diagnostics='maybe': use true (the occlusion table adds the "
                                  "context diagnostics' rows) or false"),
    ("detector_seed=x", "error: detector_seed='x': the seed of the detector sweep's detections, a whole number >= 0"),
    ("device=gpu", "error: device=gpu: not a device; use auto, cpu, cuda or cuda:<index>"),
])
def test_reproduce_names_a_setting_of_the_wrong_kind_before_any_run_starts(
        argument: str, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tables"
    assert error_line(reproduce_main, ["table=occlusion", f"out={out}", argument], capsys) == expected
    assert not out.exists()  # these started the table's first run before


def test_reproduce_names_an_output_folder_it_cannot_create(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("")
    out = tmp_path / "file" / "tables"
    line = error_line(reproduce_main, ["table=occlusion", f"out={out}"], capsys)
    assert line == (f"error: out={out}: the table's folder cannot be created ({out}: Not a directory); give a "
                    "folder that can be written, e.g. out=reproduction")


def test_reproduce_checks_every_runs_settings_before_the_first_trains(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tables"
    line = error_line(reproduce_main, ["table=occlusion", f"out={out}", "context_overrides=[data.crop_size=100]"],
                      capsys)
    assert line == ("error: the table's context run (experiment=synthcrowd_context): data.crop_size=100: the context "
                    "estimator (HRNet) takes crop sides that are multiples of 32, e.g. data.crop_size=96 "
                    "data.map_size=24")
    line = error_line(reproduce_main, ["table=conorm_depth", f"out={out}", "regressor_overrides=[data.batch_size=0]"],
                      capsys)
    assert line.startswith("error: the table's spin run (experiment=synthcrowd_spin): data.batch_size=0: people per "
                           "training batch")
    assert not list(out.rglob("*"))  # no run folder was started


def test_reproduce_names_an_unknown_key_of_its_runs_and_passes_any_trainer_argument(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ochmr_lit.reproduce.runs import compose

    out = tmp_path / "tables"
    argv = ["table=occlusion", f"out={out}", "regressor_overrides=[data.on_bad_sampel=skip]"]
    line = error_line(reproduce_main, argv, capsys)
    assert line == ("error: the table's spin run (experiment=synthcrowd_spin): unknown config key "
                    "'data.on_bad_sampel' in 'data.on_bad_sampel=skip': did you mean data.on_bad_sample? prefix the "
                    "override with ++ to add a new key (++data.on_bad_sampel=skip)")
    assert not list(out.rglob("*"))
    # as on fit's command line: a Trainer argument the trainer config does not list is set
    cfg = compose("fit", ["experiment=synthcrowd_spin", "trainer.gradient_clip_val=1.5", "run_dir=/tmp/unused"])
    assert cfg.trainer.gradient_clip_val == 1.5


def test_a_run_folder_that_trained_nothing_takes_the_new_settings(tmp_path: Path) -> None:
    from ochmr_lit.reproduce.runs import _check_job

    run = tmp_path / "spin" / "seed0"
    run.mkdir(parents=True)
    _check_job(run, {"experiment": "synthcrowd_spin", "seed": 0, "overrides": ["trainer.max_epochs=abc"]})
    fixed = {"experiment": "synthcrowd_spin", "seed": 0, "overrides": ["trainer.max_epochs=4"]}
    _check_job(run, fixed)  # the mistyped run stopped before training: its settings are replaced
    assert json.loads((run / "job.json").read_text()) == fixed
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.ckpt").write_bytes(b"trained")
    with pytest.raises(ConfigError, match="this run folder holds a run of other settings"):
        _check_job(run, {**fixed, "seed": 1})


# bench


def test_bench_names_an_unknown_section(capsys: pytest.CaptureFixture[str]) -> None:
    line = error_line(bench_main, ["--only", "metrics,flop", "--quick"], capsys)
    assert "unknown section(s) ['flop']" in line and "'flops'" in line


def test_bench_names_a_bad_argument(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "--threads" in error_line(bench_main, ["--threads", "two"], capsys)
    assert "--device" in error_line(bench_main, ["--device", "tpu"], capsys)
    (tmp_path / "results").write_text("")
    json_file = tmp_path / "results" / "bench.json"
    assert f"--json {json_file}" in error_line(bench_main, ["--only", "metrics", "--json", str(json_file)], capsys)


# doctor


def test_doctor_names_a_missing_body_model_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "smpl"
    line = error_line(doctor_main, ["--body-model-dir", str(missing)], capsys)
    assert f"--body-model-dir {missing}: no such folder" in line


def test_doctor_names_an_unknown_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert "unrecognized arguments: --verbose" in error_line(doctor_main, ["--verbose"], capsys)


# SynthCrowd generation


def test_synthcrowd_names_a_bad_count(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = error_line(synthcrowd_main, ["--out", str(tmp_path / "split"), "--num-images", "0"], capsys)
    assert "--num-images 0: must be at least 1" in line
    assert "--image-size 8 64" in error_line(
        synthcrowd_main, ["--out", str(tmp_path / "split"), "--num-images", "2", "--image-size", "8", "64"], capsys)
    assert not (tmp_path / "split").exists()


def test_synthcrowd_names_a_missing_or_wrong_poses_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = ["--out", str(tmp_path / "split"), "--num-images", "2"]
    missing = tmp_path / "poses.npz"
    assert f"--poses {missing}: no such file" in error_line(synthcrowd_main, [*out, "--poses", str(missing)], capsys)
    wrong = tmp_path / "betas.npz"
    np.savez(wrong, betas=np.zeros((3, 10)))
    line = error_line(synthcrowd_main, [*out, "--poses", str(wrong)], capsys)
    assert f"--poses {wrong}: no 'poses' or 'pose' array" in line
    assert not (tmp_path / "split").exists()


def test_synthcrowd_names_a_missing_argument(capsys: pytest.CaptureFixture[str]) -> None:
    assert "--out" in error_line(synthcrowd_main, ["--num-images", "4"], capsys)


# learning curves and the reading ceilings


def test_curves_names_a_missing_argument_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    line = error_line(curves_main, [], capsys)
    assert line == ("error: python -m ochmr_lit.vis.curves: the following arguments are required: --run, --out; "
                    "python -m ochmr_lit.vis.curves --help lists the arguments")


def test_ceilings_names_a_bad_argument_and_a_missing_file(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert "argument --crop-sizes: invalid int value: 'big'" in error_line(
        ceilings_main, ["--gt", "a.npz", "--mean-params", "b.npz", "--crop-sizes", "big"], capsys)
    missing = tmp_path / "smpl_gt.npz"
    assert error_line(ceilings_main, ["--gt", str(missing), "--mean-params", "b.npz"], capsys).startswith(
        f"error: {missing}: no such file")
