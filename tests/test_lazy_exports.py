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
    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{name}.{info.name}")  # an import sets the package's attribute of that name
    for public in package.__all__:
        value = getattr(package, public)
        assert not isinstance(value, types.ModuleType), f"{name}.{public} is a submodule: rename one of them"
        assert value is getattr(importlib.import_module(f"{name}.{package._PUBLIC[public]}"), public)
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
