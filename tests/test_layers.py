"""Imports inside ochmr_lit point down its layers (``ochmr_lit/layers.py``) and form no cycle.

Every ``import`` and ``from ... import`` of the package's own modules counts, at the top of a module or inside a
function, relative ones included; so does the package ``__init__`` that importing a submodule runs first.
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import pytest

from ochmr_lit.layers import LAYERS, layer_of

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "ochmr_lit"


class Import(NamedTuple):
    importer: str  # dotted module name
    path: Path
    line: int
    target: str  # the imported module, as written (or the package it names)
    module: str  # the module whose code runs: ``target`` or, for an implied import, one of its packages


def _modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the package."""
    modules = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = ("ochmr_lit", *path.relative_to(PACKAGE_DIR).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


MODULES = _modules()


def _existing(name: str) -> str:
    """``name`` if it is a module of the package, else its longest prefix that is (``import a.b as c`` etc.)."""
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def _targets(node: ast.Import | ast.ImportFrom, importer: str, path: Path) -> list[str]:
    """The package's modules that an import statement names."""
    if isinstance(node, ast.Import):
        return [_existing(alias.name) for alias in node.names if alias.name.split(".")[0] == "ochmr_lit"]
    if node.level:  # relative: resolved against the importer's package
        package = importer if path.name == "__init__.py" else importer.rsplit(".", 1)[0]
        base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
        source = ".".join([*base, *([node.module] if node.module else [])])
    else:
        source = node.module or ""
    if source.split(".")[0] != "ochmr_lit":
        return []
    # ``from pkg import name``: the submodule ``pkg.name`` when there is one, else ``pkg`` itself (once)
    return list(dict.fromkeys(f"{source}.{alias.name}" if f"{source}.{alias.name}" in MODULES else _existing(source)
                              for alias in node.names))


def _runs(importer: str, target: str) -> list[str]:
    """The modules whose code importing ``target`` runs: the packages above it that ``importer`` is not inside
    (Python imports a package before its submodules), then ``target``."""
    parts = target.split(".")
    names = [".".join(parts[:end]) for end in range(2, len(parts) + 1)]
    return [name for name in names if name != importer and not importer.startswith(name + ".")]


def _imports_of(importer: str, path: Path, source: str) -> list[Import]:
    found = []
    for node in ast.walk(ast.parse(source, filename=str(path))):
        if isinstance(node, ast.Import | ast.ImportFrom):
            for target in _targets(node, importer, path):
                found += [Import(importer, path, node.lineno, target, module) for module in _runs(importer, target)]
    return sorted(found, key=lambda imp: imp.line)


def _imports() -> list[Import]:
    """Every import of one of the package's modules by another, with the packages each one runs first."""
    return [imp for importer, path in MODULES.items() for imp in _imports_of(importer, path, path.read_text())]


IMPORTS = _imports()


def test_layers_name_each_module_once():
    names = Counter(name for _, layer in LAYERS for name in layer)
    assert not [name for name, count in names.items() if count > 1], "a name appears in two layers"


def test_every_module_has_a_layer():
    unplaced = sorted(name for name in MODULES if layer_of(name) is None)
    assert not unplaced, (f"modules placed in no layer: {unplaced}; add each to LAYERS in ochmr_lit/layers.py, "
                          "in the lowest layer that holds everything it imports")


def _upward(imports: list[Import]) -> list[str]:
    """One line per import of a module of a higher layer: file, line, importer, imported module, layers."""
    lines = []
    for imp in imports:
        own, other = layer_of(imp.importer), layer_of(imp.module)
        if own is None or other is None or other <= own:
            continue
        via = "" if imp.module == imp.target else f" (importing {imp.target} runs its package first)"
        lines.append(f"{imp.path.relative_to(PACKAGE_DIR.parent)}:{imp.line}: {imp.importer} (layer "
                     f"'{LAYERS[own][0]}') imports {imp.module} (layer '{LAYERS[other][0]}', above it){via}")
    return lines


def test_imports_point_down_the_layers():
    upward = _upward(IMPORTS)
    assert not upward, ("imports that point up the layers of ochmr_lit/layers.py:\n  " + "\n  ".join(upward)
                        + "\nmove the code both need down to the importer's layer or below (to its lowest user), "
                        "or place the importing module higher; a function-level import does not make it right")


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return cycles


def test_no_import_cycles():
    edges: dict[str, set[str]] = {}
    for imp in IMPORTS:
        edges.setdefault(imp.importer, set()).add(imp.module)
    cycles = _cycles(edges)
    lines = []
    for cycle in cycles:
        members = set(cycle)
        lines += [f"{imp.path.relative_to(PACKAGE_DIR.parent)}:{imp.line}: {imp.importer} -> {imp.module}"
                  for imp in IMPORTS if imp.importer in members and imp.module in members]
    assert not cycles, ("modules that import each other, directly or through others:\n  " + "\n  ".join(lines)
                        + "\nmove what they share into a module both import")


@pytest.mark.parametrize("source, expected", [
    ("from ochmr_lit.data.schema import PersonRecord", ["ochmr_lit.data.schema"]),
    ("from ochmr_lit.body import BodyModel", ["ochmr_lit.body"]),
    ("from ochmr_lit.body import keypoints", ["ochmr_lit.body", "ochmr_lit.body.keypoints"]),
    ("import ochmr_lit.vis.draw as draw", ["ochmr_lit.vis", "ochmr_lit.vis.draw"]),
    ("from ..body import keypoints", ["ochmr_lit.body", "ochmr_lit.body.keypoints"]),
    ("from . import dataset", ["ochmr_lit.data.dataset"]),
    ("from .synthcrowd.writer import write_npz", ["ochmr_lit.data.synthcrowd", "ochmr_lit.data.synthcrowd.writer"]),
    ("def f():\n    from ochmr_lit.lit import optim", ["ochmr_lit.lit", "ochmr_lit.lit.optim"]),
    ("import numpy\nfrom torch import nn", []),
])
def test_imports_are_found_as_python_runs_them(source, expected):
    """What a statement in ``ochmr_lit/data/transforms.py`` counts as imported."""
    found = _imports_of("ochmr_lit.data.transforms", PACKAGE_DIR / "data" / "transforms.py", source)
    assert [imp.module for imp in found] == expected


def test_an_upward_import_is_reported_with_its_place_and_the_fix():
    path = PACKAGE_DIR / "data" / "datamodules" / "base.py"
    source = "class M:\n    def setup(self):\n        from ochmr_lit.lit.guard import NumericalGuardMixin\n"
    (package, module) = _upward(_imports_of("ochmr_lit.data.datamodules.base", path, source))
    assert package == ("ochmr_lit/data/datamodules/base.py:3: ochmr_lit.data.datamodules.base (layer 'data') imports "
                       "ochmr_lit.lit "
                       "(layer 'Lightning modules', above it) (importing ochmr_lit.lit.guard runs its package "
                       "first)")
    assert module.startswith("ochmr_lit/data/datamodules/base.py:3:") and "imports ochmr_lit.lit.guard (layer" in module
    # the other way round is allowed, and so is the same layer
    assert not _upward(_imports_of("ochmr_lit.lit.context_estimator", PACKAGE_DIR / "lit" / "context_estimator.py",
                                   "from ochmr_lit.data.bad_samples import skip_empty_batch\nfrom . import optim"))


def test_layer_of_places_modules_by_their_longest_name():
    assert layer_of("ochmr_lit") == layer_of("ochmr_lit.paths") == 0
    assert layer_of("ochmr_lit.vis") < layer_of("ochmr_lit.data.synthcrowd.writer")  # data draws with vis.draw
    assert layer_of("ochmr_lit.data.transforms") < layer_of("ochmr_lit.vis.centermaps") < layer_of("ochmr_lit.lit")
    assert layer_of("ochmr_lit.data.synthcrowd.__main__") == layer_of("ochmr_lit.fit") == len(LAYERS) - 1
    assert layer_of("ochmr_lit.unknown_module") is None and layer_of("numpy") is None
