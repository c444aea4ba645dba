"""Which context maps the regressor reads: the run's context source, and in evaluation the context diagnostics."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ochmr_lit.data.predicted_centres import rerender_context
from ochmr_lit.errors import ConfigError
from ochmr_lit.eval.context_modes import CONTEXT_MODES, apply_context_mode, context_mode_name


class ContextFeedMixin:
    """Mixin for the mesh regressor's LightningModule: the (B, 2, h, w) context maps of each batch.

    The module provides ``hparams`` (``context_source``, ``context_input_size``, ``context_sigma``,
    ``context_width``), ``context_net`` (the frozen context estimator of ``context_source=predicted``, else
    None) and ``_context_weights_pending`` (the estimator was built at ``context_width`` and waits for a
    regressor checkpoint's weights). The data module tells whether its batches carry centermaps rendered from
    cached predicted centres (``data.predicted_centres``).
    """

    _context_mode: str = "true"
    _context_weights_pending: bool = False

    @property
    def context_mode(self) -> str:
        """Which context maps evaluation feeds the regressor (:data:`CONTEXT_MODES`); training always the own.

        ``true`` (default): each person's own maps; ``exact``: the maps rendered from the annotations (a
        predicted-context model's maps as a perfect estimator would give them); ``shuffled``: another person's of
        the batch; ``zeroed``: zeros. Only ``true`` applies to the SPIN baseline, which reads no maps.
        """
        return self._context_mode

    @context_mode.setter
    def context_mode(self, value: str) -> None:
        mode = context_mode_name(value)
        if mode != "true" and self.hparams.context_source == "none":
            raise ConfigError(f"context_mode={mode}: this model is the SPIN baseline (model.context_source=none, "
                              "no CoNorm block), it reads no context maps to replace; evaluate it with "
                              f"context_mode=true (modes {', '.join(CONTEXT_MODES)} apply to OCHMR models)")
        self._context_mode = mode

    def context_for(self, batch: dict) -> torch.Tensor | None:
        """The (B, 2, h, w) context of the run's context source for this batch (None for the baseline).

        In evaluation (not ``self.training``) the maps are replaced as :attr:`context_mode` says.
        """
        if not self.training and self._context_mode == "exact":
            return self._exact_context(batch)
        context = self._own_context(batch)
        if context is None or self.training or self._context_mode == "true":
            return context
        return apply_context_mode(context, self._context_mode)

    def _exact_context(self, batch: dict) -> torch.Tensor:
        """The (B, 2, h, w) centermaps rendered from the annotations (``context_mode=exact``), for any context
        source: the batches must come from a data module without ``data.predicted_centres``."""
        if self._centres_cached():
            raise ConfigError("context_mode=exact reads the centermaps rendered from the annotations, but "
                              "data.predicted_centres is set (the batches carry predicted maps): evaluate it with "
                              "data.predicted_centres=null")
        return batch["centermaps"]

    def _own_context(self, batch: dict) -> torch.Tensor | None:
        """Each person's own (B, 2, h, w) context maps of the run's context source (None for the baseline)."""
        source = self.hparams.context_source
        if source == "none":
            return None
        if source == "gt":
            if self._centres_cached():
                raise ConfigError("model.context_source=gt, but data.predicted_centres is set: the batches carry "
                                  "predicted centermaps; set data.predicted_centres=null or context_source=predicted")
            return batch["centermaps"]
        if self._centres_cached():
            return batch["centermaps"]  # rendered by the data module from the cached predicted centres
        size = self.hparams.context_input_size
        images = batch["image"]
        if images.shape[-1] != size:
            images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
        if self._context_weights_pending:
            raise ConfigError(f"model.context_width={self.hparams.context_width} builds the context estimator for a "
                              "regressor checkpoint's stored weights, but none were loaded; train with "
                              "model.context_checkpoint (and context_width=null), or load a regressor checkpoint")
        self.context_net.eval()
        with torch.no_grad():
            return rerender_context(self.context_net(images).float(), self.hparams.context_sigma)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """``nn.Module.load_state_dict``; a state holding ``context_net.*`` provides the context estimator."""
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        if any(key.startswith("context_net.") for key in state_dict):
            self._context_weights_pending = False
        return result

    def _centres_cached(self) -> bool:
        """Whether the batches' centermaps come from predicted centres (``data.predicted_centres``)."""
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        return bool(getattr(datamodule, "predicted_centres", None))
