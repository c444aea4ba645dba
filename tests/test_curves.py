"""Learning curves from a run's CSV log: values, the logged constant reference, errors naming the file."""

import csv

import pytest

from ochmr_lit.vis import curves as curves_module
from ochmr_lit.vis.curves import main, plot_curves, read_validation_curve


def _write_run(folder, rows, parts=False):
    (folder / "csv").mkdir(parents=True)
    columns = ["epoch", "step", "train/loss", "val/mpjpe", "val/pa_mpjpe",
               "val/constant/mpjpe", "val/constant/pa_mpjpe"]
    if parts:
        columns += ["val/pa_mpjpe_depth", "val/pa_mpjpe_plane", "val/constant/pa_mpjpe_depth",
                    "val/constant/pa_mpjpe_plane"]
    with (folder / "csv" / "metrics.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        for row in rows:
            writer.writerow(row)


def test_curve_reads_validation_rows_and_constant(tmp_path, capsys):
    _write_run(tmp_path / "a", [{"epoch": 0, "step": 9, "train/loss": 3.0},
                                {"epoch": 0, "step": 10, "val/mpjpe": 200.0, "val/pa_mpjpe": 100.0,
                                 "val/constant/mpjpe": 190.0, "val/constant/pa_mpjpe": 90.0},
                                {"epoch": 1, "step": 20, "val/mpjpe": 150.5, "val/pa_mpjpe": 80.25}])
    curve = read_validation_curve(tmp_path / "a")
    assert curve["step"] == [10.0, 20.0] and curve["val/mpjpe"] == [200.0, 150.5]
    assert curve["val/pa_mpjpe"] == [100.0, 80.25] and curve["constant"] == [190.0, 90.0]
    out = tmp_path / "curves.png"
    assert main(["--run", f"a={tmp_path / 'a'}", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| a | 1 | 20 | 150.5 | 80.2 |" in capsys.readouterr().out


def test_curve_draws_pa_mpjpe_parts_where_a_run_logged_them(tmp_path, capsys):
    _write_run(tmp_path / "old", [{"epoch": 0, "step": 10, "val/mpjpe": 200.0, "val/pa_mpjpe": 100.0}])
    _write_run(tmp_path / "new", [{"epoch": 0, "step": 10, "val/mpjpe": 190.0, "val/pa_mpjpe": 90.0,
                                   "val/pa_mpjpe_depth": 55.0, "val/pa_mpjpe_plane": 60.0,
                                   "val/constant/mpjpe": 185.0, "val/constant/pa_mpjpe": 86.0,
                                   "val/constant/pa_mpjpe_depth": 49.0, "val/constant/pa_mpjpe_plane": 62.0}],
               parts=True)
    curve = read_validation_curve(tmp_path / "new")
    assert curve["val/pa_mpjpe_depth"] == [55.0] and curve["val/pa_mpjpe_plane"] == [60.0]
    assert curve["constant_parts"] == [49.0, 62.0]
    assert read_validation_curve(tmp_path / "old")["val/pa_mpjpe_depth"] != [55.0]  # NaN: not logged
    out = tmp_path / "curves.png"
    assert main(["--run", f"old={tmp_path / 'old'}", "--run", f"new={tmp_path / 'new'}", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| run | epoch | step | val MPJPE | val PA-MPJPE | depth | image plane |" in printed
    assert "| new | 0 | 10 | 190.0 | 90.0 | 55.0 | 60.0 |" in printed
    assert "| old | 0 | 10 | 200.0 | 100.0 | - | - |" in printed
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_run_keeps_its_colour_in_the_parts_panel_when_an_earlier_run_logged_no_parts(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(curves_module.plt, "close", figures.append)
    nan = float("nan")
    old = {"step": [10.0], "val/mpjpe": [200.0], "val/pa_mpjpe": [100.0],
           "val/pa_mpjpe_depth": [nan], "val/pa_mpjpe_plane": [nan]}
    new = {"step": [10.0], "val/mpjpe": [190.0], "val/pa_mpjpe": [90.0],
           "val/pa_mpjpe_depth": [55.0], "val/pa_mpjpe_plane": [60.0]}
    plot_curves({"old": old, "new": new}, tmp_path / "c.png")
    pa_panel, parts_panel = figures[0].axes[1], figures[0].axes[2]
    colour = {line.get_label(): line.get_color() for ax in (pa_panel, parts_panel) for line in ax.get_lines()}
    assert colour["new: image plane"] == colour["new: depth"] == colour["new"] != colour["old"]


def test_curve_errors_name_the_file(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="metrics.csv not found"):
        read_validation_curve(tmp_path / "missing")
    _write_run(tmp_path / "b", [{"epoch": 0, "step": 9, "train/loss": 3.0}])
    with pytest.raises(ValueError, match="no val/mpjpe rows"):
        read_validation_curve(tmp_path / "b")
    assert main(["--run", "nolabel", "--out", str(tmp_path / "x.png")]) == 2
    assert capsys.readouterr().err.startswith("error: --run 'nolabel'")


def test_curve_arguments_that_cannot_work_are_named_before_drawing(tmp_path, capsys):
    run = tmp_path / "a"
    _write_run(run, [{"epoch": 0, "step": 10, "val/mpjpe": 200.0, "val/pa_mpjpe": 100.0}])
    (tmp_path / "a_file").write_text("")
    cases = [(["--run", f"a={tmp_path / 'b'}", "--out", "c.png"], f"error: --run a={tmp_path / 'b'}: "
              f"{tmp_path / 'b' / 'csv' / 'metrics.csv'} not found"),
             (["--run", f"a={run}", "--reference", "const=abc", "--out", "c.png"],
              "error: --reference 'const=abc': give MPJPE,PA_MPJPE in mm, e.g. const=184.4,86.2"),
             (["--run", f"a={run}", "--out", str(tmp_path / "c.txt")],
              f"error: --out {tmp_path / 'c.txt'}: name a figure file, e.g. curves.png (formats: "),
             (["--run", f"a={run}", "--out", str(tmp_path / "a_file" / "c.png")],
              f"error: --out {tmp_path / 'a_file' / 'c.png'}: its folder cannot be created ({tmp_path / 'a_file'} is a "
              "file)")]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(message) and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "a_file"]  # nothing drawn
