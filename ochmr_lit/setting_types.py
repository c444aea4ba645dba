"""What a setting's value must be, asked the same way everywhere: a whole number, a number, a boolean.

YAML and Hydra's command line give ``true`` as a bool, and Python counts a bool as an int (``True >= 1``), so each
predicate refuses bools where a number is meant; a string such as ``maybe`` is neither a number nor a boolean.
"""

from __future__ import annotations

import math

from ochmr_lit.errors import ConfigError


def is_whole(value: object, minimum: int = 0) -> bool:
    """Whether ``value`` is a whole number (an int, not a bool) of at least ``minimum``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def is_number(value: object) -> bool:
    """Whether ``value`` is a real number (an int or a float, not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def boolean_setting(value: object, key: str, true_means: str, null_means: str | None = None) -> bool | None:
    """``value`` if it is a boolean (or None where ``null_means`` says what null does), else a :class:`ConfigError`
    naming ``key``: a string such as ``maybe`` or ``no`` would otherwise count as true."""
    if isinstance(value, bool) or (value is None and null_means is not None):
        return value
    rest = f", false, or null ({null_means})" if null_means is not None else " or false"
    raise ConfigError(f"{key}={value!r}: use true ({true_means}){rest}")


def positive_pixels(value: float, name: str = "focal_length") -> float:
    """``value`` as a float; a ValueError naming ``name`` unless it is a finite positive number (of px)."""
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}={value}: must be a positive number of pixels")
    return value
