"""Packages that import their public names on first use (``runner``, ``inference``) give the same objects as their
submodules, whatever was imported before; the entry points check their command line before Lightning is imported."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import types

import pytest
from conftest import REPO_ROOT

LAZY_PACKAGES = ["ochmr_lit.runner", "ochmr_lit.inference"]


@pytest.mark.parametrize("name", LAZY_PACKAGES)
def test_every_public_name_is_its_submodules_object_after_every_submodule_was_imported(name):
    package = importlib.import_module(name)
    # an import sets the package's attribute of that name
    submodules = [importlib.import_module(f"{name}.{info.name}") for info in pkgutil.iter_modules(package.__path__)]
    for public in package.__all__:
        value = getattr(package, public)
        assert not isinstance(value, types.ModuleType), f"{name}.{public} is a submodule: rename one of them"
        defined_in = [module.__name__ for module in submodules if vars(module).get(public) is value]
        assert defined_in, f"{name}.{public} is no submodule's {public}"
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        package.nope  # noqa: B018


def test_the_entry_points_check_their_command_line_before_importing_lightning():
    """What runs before an entry point's command-line check (its own module) and predict's settings check."""
    code = ("import sys, ochmr_lit.fit, ochmr_lit.evaluate, ochmr_lit.predict, ochmr_lit.vis.compare, "
            "ochmr_lit.inference.predict_settings; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'torchvision')))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_predict_checks_its_settings_and_input_files_before_importing_torch(tmp_path):
    images, given = tmp_path / "images", tmp_path / "given"
    images.mkdir()
    given.mkdir()
    for name in ("b.png", "a.JPG", "notes.txt"):
        (images / name).write_bytes(b"")
    for name in ("model.ckpt", "detector.pth"):
        (given / name).write_bytes(b"")
    settings = dict(ckpt_path=str(given / "model.ckpt"), input=str(images), boxes="detector",
                    detector_weights=str(given / "detector.pth"), out="o", batch_size=1, score_threshold=0.5,
                    save_figures=False, save_meshes=True)
    code = ("import sys; from ochmr_lit.inference.predict_settings import check_predict_settings; "
            f"found = check_predict_settings({settings!r}); "
            "print([p.name for p in found.images], found.box_file, found.focal_length, "
            "sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy', 'lightning')))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['a.JPG', 'b.png'] None None []"


@pytest.mark.parametrize(("override", "message"), [
    ("split=tset", "split=tset: a SynthCrowd split, one of train, val, test"),
    ("num_images=0", "num_images=0: how many images of the split to draw, a whole number >= 1"),
    ("num_images=1", "ckpt_path=@CKPT@: no such file; evaluate, predict and compare take the checkpoints/*.ckpt of "
     "task=regressor or task=pipeline runs"),
])
def test_compare_checks_its_settings_and_checkpoint_before_importing_torch(override, message, tmp_path):
    ckpt = tmp_path / "none.ckpt"
    settings = dict(ckpt_path=str(ckpt), split="val", num_images=4, batch_size=16, side_view=True)
    key, value = override.split("=")
    settings[key] = int(value) if value.isdigit() else value
    code = ("import sys; from ochmr_lit.vis.compare_settings import check_compare_settings\n"
            f"try:\n    check_compare_settings({settings!r})\nexcept Exception as error:\n    print(error)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy', 'lightning')))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines() == [message.replace("@CKPT@", str(ckpt)), "[]"]


@pytest.mark.parametrize(("argv", "message"), [
    (["nosuch"], "argument dataset: invalid choice: 'nosuch'"),
    (["mean_params", "--data", "@TMP@/none"], "--data @TMP@/none: no such folder or file"),
    (["3dpw", "--raw", "@TMP@/none", "--out", "@TMP@/out"], "--raw @TMP@/none: no such folder or file"),
])
def test_prepare_checks_its_command_line_and_folders_before_importing_torch(argv, message, tmp_path):
    argv = [a.replace("@TMP@", str(tmp_path)) for a in argv]
    code = ("import sys; from ochmr_lit.prepare import main\n"
            f"status = main({argv!r})\n"
            "print(status, sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy', 'lightning')))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2 []"
    assert message.replace("@TMP@", str(tmp_path)) in done.stderr
    assert not (tmp_path / "out").exists()
