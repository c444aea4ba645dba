"""An exponential moving average of the trained network's weights, evaluated and saved in place of the raw ones.

Short from-scratch runs end with weights that still jump from step to step; their average over the last few
hundred steps is a better model, at no training cost. Lightning's ``EMAWeightAveraging`` averages every
parameter and buffer of the whole LightningModule: here that includes the body model's integer mesh faces
(which an average would corrupt) and the metric states. This callback averages the network the module trains
(``pl_module.model``) only: its parameters and floating-point buffers (BatchNorm statistics), integer buffers
copied.

* validation runs with the averaged weights (the raw ones are put back for the next training step);
* checkpoints hold the averaged weights under ``state_dict`` (what ``evaluate``, ``predict`` and ``compare``
  load) and the raw ones under ``ema_raw_state_dict``, with the average's step count in the callback state, so
  a resumed run continues both exactly;
* when training ends the averaged weights are copied into the network, so the test after fit evaluates them;
  ``trainer.test`` / ``validate`` / ``predict`` with a ``ckpt_path`` evaluate the checkpoint's average too (Lightning
  restores callbacks there as well; only a resumed fit gets the raw weights back).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from ochmr_lit.errors import ConfigError

#: Checkpoint key of the raw (not averaged) network weights.
RAW_STATE_KEY = "ema_raw_state_dict"


class EMAWeights(Callback):
    """EMA of ``pl_module.model``'s weights with decay ``min(decay, (1 + n) / (10 + n))`` after n updates.

    Args:
        decay: long-run decay per optimiser step (0.998: an average over the last ~500 steps).
        attribute: the module attribute holding the trained network.
    """

    def __init__(self, decay: float = 0.998, attribute: str = "model") -> None:
        if not 0.0 < decay < 1.0:
            raise ConfigError(f"callbacks.ema.decay={decay}; use a value in (0, 1), e.g. 0.998")
        self.decay = float(decay)
        self.attribute = attribute
        self.updates = 0
        self._average: dict[str, torch.Tensor] | None = None
        self._raw: dict[str, torch.Tensor] | None = None

    # -- helpers -------------------------------------------------------------------------------------
    def _network(self, pl_module: L.LightningModule) -> torch.nn.Module:
        network = getattr(pl_module, self.attribute, None)
        if not isinstance(network, torch.nn.Module):
            raise ValueError(f"EMAWeights: the module has no network '{self.attribute}' to average")
        return network

    def _state(self, pl_module: L.LightningModule) -> dict[str, torch.Tensor]:
        return self._network(pl_module).state_dict()

    def _ensure_average(self, pl_module: L.LightningModule) -> dict[str, torch.Tensor]:
        if self._average is None:
            self._average = {k: v.detach().clone() for k, v in self._state(pl_module).items()}
        return self._average

    @property
    def current_decay(self) -> float:
        return min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))

    # -- training ------------------------------------------------------------------------------------
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._ensure_average(pl_module)

    @torch.no_grad()
    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        average = self._ensure_average(pl_module)
        decay = self.current_decay
        for name, value in self._state(pl_module).items():
            if value.is_floating_point():
                average[name].lerp_(value.detach().to(average[name].dtype), 1.0 - decay)
            else:
                average[name].copy_(value)
        self.updates += 1

    def _swap_in(self, pl_module: L.LightningModule) -> None:
        if self._average is None or self._raw is not None:
            return
        network = self._network(pl_module)
        self._raw = {k: v.detach().clone() for k, v in network.state_dict().items()}
        network.load_state_dict(self._average)

    def _swap_out(self, pl_module: L.LightningModule) -> None:
        if self._raw is None:
            return
        self._network(pl_module).load_state_dict(self._raw)
        self._raw = None

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == "fit":
            self._swap_in(pl_module)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._swap_out(pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._swap_out(pl_module)
        if self._average is not None:
            self._network(pl_module).load_state_dict(self._average)

    # -- checkpoints ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates, "decay": self.decay}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.updates = int(state_dict.get("updates", 0))

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        if self._average is None:
            return
        prefix = f"{self.attribute}."
        state = checkpoint["state_dict"]
        raw = {k: v for k, v in state.items() if k.startswith(prefix)}
        if self._raw is not None:  # saved while the average is swapped in (during validation)
            raw = {prefix + k: v.detach().clone() for k, v in self._raw.items()}
        checkpoint[RAW_STATE_KEY] = raw
        for name, value in self._average.items():
            state[prefix + name] = value.detach().clone()

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        if trainer.state.fn != "fit":  # test / validate / predict from a checkpoint: evaluate its average
            return
        raw = checkpoint.get(RAW_STATE_KEY)
        if raw is None:  # a checkpoint of a run without the average: start it from the loaded weights
            self._average = None
            return
        prefix = f"{self.attribute}."
        self._average = {k[len(prefix):]: v.detach().clone() for k, v in checkpoint["state_dict"].items()
                         if k.startswith(prefix)}
        self._network(pl_module).load_state_dict({k[len(prefix):]: v for k, v in raw.items()})
