"""Context diagnostics: evaluate an OCHMR model with its own context maps, exact ones, another person's, or none.

* ``true``: each person's own (B, 2, h, w) centermaps (the normal evaluation);
* ``exact``: the centermaps rendered from the annotations, whatever the model's context source: for a model on
  predicted context, what a perfect context estimator would give it (the same as ``true`` for a GT-context model).
  The data module renders them (``data.predicted_centres`` null); :func:`apply_context_mode` passes them on;
* ``shuffled``: the maps of another person of the batch, a fixed derangement (the batch rolled by one), so no
  sample keeps its own map when B > 1 (a batch of one keeps its map: there is no other);
* ``zeroed``: all-zero maps.

If OCHMR uses its context, ``shuffled`` and ``zeroed`` must be worse than ``true``; ``exact`` against ``true``
measures what the context estimator's errors cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ochmr_lit.errors import ConfigError

#: The context modes, the normal evaluation first.
CONTEXT_MODES: tuple[str, ...] = ("true", "exact", "shuffled", "zeroed")


def context_mode_name(value: Any, key: str = "context_mode") -> str:
    """A context mode as its name; a YAML boolean ``true`` (``context_mode=true``) is ``"true"``.

    Raises:
        ValueError: naming ``key``, the value and the allowed modes.
    """
    name = ("true" if value else "false") if isinstance(value, bool) else str(value).strip().lower()
    if name not in CONTEXT_MODES:
        raise ConfigError(f"{key}={value!r}: unknown context mode; use one of {', '.join(CONTEXT_MODES)}")
    return name


def context_mode_list(value: Any, key: str = "context_mode") -> list[str]:
    """The modes of a single mode or a list of modes, validated, duplicates dropped, order kept."""
    values = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    if not values:
        raise ConfigError(f"{key}=[]: give at least one context mode of {', '.join(CONTEXT_MODES)}")
    return list(dict.fromkeys(context_mode_name(v, key) for v in values))


def shuffled_indices(batch_size: int) -> torch.Tensor:
    """(B,) index of the sample whose maps each sample gets: ``i -> (i - 1) mod B``, no fixed point for B > 1."""
    return torch.roll(torch.arange(batch_size), 1)


def apply_context_mode(context: torch.Tensor, mode: str) -> torch.Tensor:
    """``context`` (B, 2, h, w) as mode ``mode`` of :data:`CONTEXT_MODES` gives it to the regressor (for ``exact``,
    ``context`` must already be the annotations' maps)."""
    if mode in ("true", "exact"):
        return context
    if mode == "shuffled":
        return context[shuffled_indices(context.shape[0]).to(context.device)]
    if mode == "zeroed":
        return torch.zeros_like(context)
    raise ConfigError(f"context_mode={mode!r}: unknown context mode; use one of {', '.join(CONTEXT_MODES)}")
