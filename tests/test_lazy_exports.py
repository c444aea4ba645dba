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
