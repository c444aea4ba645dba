"""Packages whose public names are imported on first use.

An entry point's command-line and settings checks live in submodules of packages (``runner``, ``inference``) whose
other parts import Lightning and the models, several seconds on a small CPU; a package that imports its parts
eagerly would make every mistaken argument wait for them. Python's module ``__getattr__`` (PEP 562) defers them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, where: Mapping[str, str],
                 namespace: dict[str, Any]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` (its ``__name__``): each public name of ``where`` (name ->
    submodule) is imported from ``<package>.<submodule>`` when first read, then kept in ``namespace`` (the package's
    ``globals()``)."""

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{where[name]}"), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *where})

    return __getattr__, __dir__
