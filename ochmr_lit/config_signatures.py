"""Config nodes matched against the signatures of the classes they configure.

A node Hydra instantiates (``_target_: <class>`` and its arguments) is checked here against the class's
``__init__``: every key must be an argument (following ``**kwargs`` up the bases) and every value must fit the
argument's annotation. So a mistyped key (``+model.lr=0.1``) or a value of another type (``model.iterations=abc``)
is named in one line at start-up, instead of a ``TypeError`` from the constructor after a first stage has trained.
Written by hand: Hydra and OmegaConf check neither (structured configs would need a dataclass per module,
repeating every signature), and the ``typing`` helpers do not match config values against annotations.
"""

from __future__ import annotations

import collections.abc
import functools
import inspect
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ochmr_lit.errors import ConfigError


def accepts(value: Any, annotation: Any) -> bool:
    """Whether a config value fits a signature annotation (classes a config cannot name are accepted)."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return True
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(accepts(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if annotation is dict:
        return isinstance(value, Mapping)
    if annotation in (list, tuple):  # a config gives a list for either
        return isinstance(value, (list, tuple))
    if origin is list:
        return isinstance(value, list) and all(accepts(v, args[0]) for v in value) if args else isinstance(value, list)
    if origin in (tuple, collections.abc.Sequence):  # a config gives a list for either
        if not isinstance(value, (list, tuple)):
            return False
        if len(args) == 2 and args[1] is Ellipsis or origin is collections.abc.Sequence:
            return all(accepts(v, args[0]) for v in value) if args else True
        return len(value) == len(args) and all(accepts(v, a) for v, a in zip(value, args, strict=True)) if args \
            else True
    if origin in (dict, collections.abc.Mapping):
        if not isinstance(value, Mapping):
            return False
        return all(accepts(k, args[0]) and accepts(v, args[1]) for k, v in value.items()) if args else True
    return True  # a class (Strategy, Logger, timedelta, ...): given as a string or a _target_ block


def describe(annotation: Any) -> str:
    """An annotation as written in code: ``int``, ``float | None``, ``dict[str, Sequence[str]]``."""
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    return str(annotation).replace("typing.", "").replace("collections.abc.", "").replace("NoneType", "None")


@dataclass(frozen=True)
class InitSignature:
    """What ``cls(...)`` takes by keyword: ``names`` (None when it takes any keyword, i.e. ``**kwargs`` reach
    ``object``) and the ``annotations`` of those whose annotation resolves (the others are not type-checked)."""

    names: frozenset[str] | None
    annotations: Mapping[str, Any]


@functools.cache
def _type_hints(function: Any) -> dict[str, Any]:
    """``typing.get_type_hints`` of ``function``; where one annotation names what its module does not import (only
    for type checkers), the others one by one, so that one such annotation does not hide the checkable ones."""
    try:
        return typing.get_type_hints(function)
    except Exception:  # noqa: BLE001 - any failure to evaluate an annotation
        pass
    hints: dict[str, Any] = {}
    namespace = getattr(function, "__globals__", {})
    for name, annotation in getattr(function, "__annotations__", {}).items():
        def single() -> None: ...
        single.__annotations__ = {name: annotation}
        try:
            hints.update(typing.get_type_hints(single, globalns=namespace))
        except Exception:  # noqa: BLE001, S112 - this annotation is not checked
            continue
    return hints


def init_signature(cls: type) -> InitSignature:
    """The keyword arguments of ``cls.__init__``, following ``**kwargs`` up its bases (cached per class)."""
    names: set[str] = set()
    annotations: dict[str, Any] = {}
    for klass in cls.__mro__:
        if klass is object:
            return InitSignature(None, annotations)
        parameters = inspect.signature(klass.__init__).parameters
        resolved = _type_hints(klass.__init__)
        for name, parameter in parameters.items():
            if name == "self" or parameter.kind not in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
                continue
            names.add(name)
            if name in resolved:
                annotations.setdefault(name, resolved[name])
        if not any(p.kind == p.VAR_KEYWORD for p in parameters.values()):
            return InitSignature(frozenset(names), annotations)
    return InitSignature(None, annotations)


@functools.cache
def _import_class(target: str) -> type:
    return get_class(target)


def target_class(values: Mapping, key: str) -> type | None:
    """The class a config node names with ``_target_`` (None without one), or a ConfigError naming the key."""
    target = values.get("_target_")
    if not target:
        return None
    try:
        return _import_class(str(target))
    except Exception as error:  # noqa: BLE001 - Hydra raises several kinds for a name it cannot import
        raise ConfigError(f"{key}._target_={target}: no such class ({str(error).splitlines()[0]})") from None


def check_target_keys(values: Mapping, key: str, removal: str | None = None) -> None:
    """Every key of a config node Hydra instantiates (``_target_``) is an argument of that class (Hydra's own
    ``_..._`` keys aside), so a mistyped or stray key (``+model.lr=...``) is named before any work instead of a
    ``TypeError`` from the constructor, or after a first stage has trained. ``removal``: how the error says to
    remove the key (default: ``~<key>.<name>``)."""
    cls = target_class(values, key)
    if cls is None:
        return
    accepted = init_signature(cls).names
    if accepted is None:
        return
    for name in values:
        if not (str(name).startswith("_") and str(name).endswith("_")) and name not in accepted:
            raise ConfigError(f"{key}.{name}: {cls.__name__} has no such setting (it takes "
                              f"{', '.join(sorted(accepted))}); "
                              f"{removal or 'remove it with'} ~{key}.{name}")


def check_target_types(values: Mapping, key: str, removal: str | None = None) -> None:
    """Every value of a config node Hydra instantiates fits its class's annotation (``data.splits={train: 8000}``
    left by SynthCrowd where 3DPW takes lists of sequence splits), checked after the node's own, more specific
    checks so that those name the mistake first. ``removal``: how the error says to remove a key a config set that
    the module should not get (none by default)."""
    cls = target_class(values, key)
    if cls is None:
        return
    annotations = init_signature(cls).annotations
    for name, value in values.items():
        if name in annotations and not accepts(value, annotations[name]):
            raise ConfigError(f"{key}.{name}={value!r}: {cls.__name__} takes {describe(annotations[name])} here"
                              + (f"; {removal} ~{key}.{name}" if removal else ""))


def check_components(group: DictConfig | Mapping | None, key: str) -> None:
    """``callbacks`` / ``logger``: every entry is null (off) or a config with ``_target_`` whose keys its class
    takes (:func:`check_target_keys`)."""
    if not group:
        return
    values = OmegaConf.to_container(group, resolve=False) if isinstance(group, DictConfig) else dict(group)
    group_name = key.rsplit(".", 1)[-1]  # without a pipeline stage's prefix
    for name, entry in values.items():
        if entry is None:
            continue
        if not isinstance(entry, Mapping) or "_target_" not in entry:
            raise ConfigError(f"{key}.{name}={entry!r}: each entry under {key} is null (off) or a config with "
                              f"_target_ (a class and its arguments, as in ochmr_lit/configs/{group_name}/); "
                              f"{key}.<entry>.<argument>=<value> sets an argument of an entry, and settings of an "
                              f"entry the chosen {group_name} config does not have (e.g. an experiment's) are "
                              f"removed with ~{key}.{name}")
        check_target_keys(entry, f"{key}.{name}")
        if isinstance(group, DictConfig):  # the values as the class gets them: interpolations resolved
            try:
                entry = OmegaConf.to_container(group[name], resolve=True)
            except OmegaConfBaseException:  # a value resolved only at run time (Hydra's run folder): keys only
                continue
        check_target_types(entry, f"{key}.{name}")
