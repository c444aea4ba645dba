"""Optimiser and learning-rate schedule from config (one place for both LightningModules)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from ochmr_lit.errors import ConfigError
from ochmr_lit.setting_types import is_number, is_whole

#: Optimisers :func:`build_optimizer` builds (``optim.name``, any case).
OPTIMIZERS: tuple[str, ...] = ("sgd", "adam", "adamw")
#: Learning-rate schedules :func:`build_scheduler` builds (``optim.schedule``, any case).
SCHEDULES: tuple[str, ...] = ("constant", "cosine", "step")


@dataclass
class OptimConfig:
    """``name``: sgd | adam | adamw. ``schedule``: constant | cosine | step (milestones in epochs).

    ``head_lr_scale``: learning rate of a model's regression head relative to ``lr`` (modules that name a head:
    the mesh regressor's IEF layers). Adam moves every weight by about ``lr`` per step whatever the gradient's
    size, so a 1024-input linear layer can move its outputs by O(1) in one step at ``lr`` 1e-3; a smaller head rate
    keeps a from-scratch backbone's rate without that.
    """

    name: str = "adam"
    lr: float = 5e-5
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "constant"
    warmup_steps: int = 0
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    head_lr_scale: float = 1.0

    def __post_init__(self) -> None:
        for key in ("lr", "momentum", "weight_decay", "gamma", "head_lr_scale"):
            value = getattr(self, key)
            if not is_number(value):
                raise ConfigError(f"optim.{key}={value!r}: must be a number")
        if str(self.name).lower() not in OPTIMIZERS:
            raise ConfigError(f"optim.name={self.name!r} is not known; use one of {', '.join(OPTIMIZERS)}")
        if str(self.schedule).lower() not in SCHEDULES:
            raise ConfigError(f"optim.schedule={self.schedule!r} is not known; use {', '.join(SCHEDULES)}")
        milestones = list(self.milestones or ())
        if any(not is_whole(m, 0) for m in milestones):
            raise ConfigError(f"optim.milestones={milestones}: the step schedule's epochs, whole numbers >= 0 (e.g. "
                              "[30, 60])")
        if not self.lr > 0:
            raise ConfigError(f"optim.lr={self.lr}: the learning rate must be positive")
        if not self.head_lr_scale > 0:
            raise ConfigError(f"optim.head_lr_scale={self.head_lr_scale}: must be positive (1 = the same rate as lr)")
        if not self.weight_decay >= 0:  # a negative decay pushes the weights away from 0
            raise ConfigError(f"optim.weight_decay={self.weight_decay}: must be >= 0 (0 = none)")
        if not is_whole(self.warmup_steps, 0):
            raise ConfigError(f"optim.warmup_steps={self.warmup_steps}: optimiser steps of linear warm-up, a whole "
                              "number >= 0 (0 = none)")
        if not self.gamma > 0:
            raise ConfigError(f"optim.gamma={self.gamma}: the step schedule's factor at each milestone, a number > 0 "
                              "(e.g. 0.1)")

    def check_settings_used(self) -> None:
        """Refuse a setting that the optimiser or schedule ignores when it differs from its default.

        ``momentum`` is read by SGD only; ``warmup_steps`` by the constant and cosine schedules; ``milestones`` and
        ``gamma`` by the step schedule. Checked at start-up only (not on construction), so checkpoints whose
        stored settings carry such a value still load.
        """
        for key, reader, fix in self._ignored_settings():
            value = getattr(self, key)
            shown = list(value) if isinstance(value, (list, tuple)) else value
            raise ConfigError(f"optim.{key}={shown}: {reader}; remove it or use {fix}")

    def _ignored_settings(self) -> list[tuple[str, str, str]]:
        """``(key, who reads it, the fix)`` of each setting set away from its default that nothing reads."""
        name, schedule = self.name.lower(), self.schedule.lower()
        changed = {key for key in ("momentum", "warmup_steps", "milestones", "gamma")
                   if _normalised(getattr(self, key)) != _normalised(getattr(DEFAULTS, key))}
        ignored = []
        if name != "sgd" and "momentum" in changed:
            ignored.append(("momentum", f"{self.name} has no momentum (only sgd reads it)", "optim.name=sgd"))
        if schedule == "step" and "warmup_steps" in changed:
            ignored.append(("warmup_steps", "schedule=step has no warm-up (constant and cosine have)",
                            "another optim.schedule"))
        for key in ("milestones", "gamma"):
            if schedule != "step" and key in changed:
                ignored.append((key, f"schedule={self.schedule} does not read it (only step does)",
                                "optim.schedule=step"))
        return ignored


def _normalised(value: object) -> object:
    """A setting as compared with its default (a list and a tuple of the same numbers are the same)."""
    return tuple(value) if isinstance(value, (list, tuple)) else value


#: The settings a config leaves out (what :meth:`OptimConfig.check_settings_used` compares with).
DEFAULTS = OptimConfig()


#: Devices whose parameters the optimisers update with torch's fused kernels.
FUSED_DEVICE_TYPES = ("cpu", "cuda")


def fused_implementation(params: Iterable[torch.nn.Parameter]) -> dict[str, bool]:
    """``{"fused": True}`` when every parameter is a floating tensor on a device with fused optimiser kernels.

    The fused update does the whole parameter list in one kernel per step; torch's default on a CPU is a Python
    loop over the parameters, 2.4x slower for the ResNet-18 regressor's 76 tensors (``python -m ochmr_lit.bench
    --only training``, row "optimizer step"). Elsewhere (a device without the kernels) torch's default is kept.
    """
    params = list(params)
    if params and all(p.device.type in FUSED_DEVICE_TYPES and p.is_floating_point() for p in params):
        return {"fused": True}
    return {}


def is_fused(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer`` updates with torch's fused kernels."""
    return any(group.get("fused") for group in optimizer.param_groups)


class FusedOptimizerMixin:
    """For LightningModules whose optimiser comes from :func:`build_optimizer`.

    ``fused_allowed()``: fused kernels unscale the gradients of a float16 ``GradScaler`` inside the step, after
    Lightning would have clipped them still scaled, so a ``16-mixed`` run keeps torch's default implementation.
    ``configure_gradient_clipping``: Lightning's mixed-precision plugin refuses to clip for any fused optimiser,
    even under bf16-mixed where no gradient is scaled; there the gradients are clipped directly, by norm or value
    as ``trainer.gradient_clip_algorithm`` says, as the plugin would.
    """

    def fused_allowed(self) -> bool:
        trainer = getattr(self, "_trainer", None)
        return trainer is None or str(trainer.precision) != "16-mixed"

    def configure_gradient_clipping(self, optimizer: torch.optim.Optimizer, gradient_clip_val: float | None = None,
                                    gradient_clip_algorithm: str | None = None) -> None:
        if not gradient_clip_val or not is_fused(optimizer):
            super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)
            return
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if gradient_clip_algorithm == "value":  # Lightning passes GradClipAlgorithmType, a str enum
            torch.nn.utils.clip_grad_value_(params, float(gradient_clip_val))
        else:
            torch.nn.utils.clip_grad_norm_(params, float(gradient_clip_val))


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: OptimConfig,
                    head: Iterable[torch.nn.Parameter] = (), fused: bool = True) -> torch.optim.Optimizer:
    """The optimiser over ``params``; those also in ``head`` learn at ``lr * head_lr_scale`` (a second group).

    ``fused``: use torch's fused kernels where the parameters' device has them (:func:`fused_implementation`);
    build the optimiser once the parameters are on their device.
    """
    head_ids = {id(p) for p in head}
    body = [p for p in params if p.requires_grad and id(p) not in head_ids]
    heads = [p for p in head if p.requires_grad]
    params = [{"params": body}] + ([{"params": heads, "lr": cfg.lr * cfg.head_lr_scale}] if heads else [])
    implementation = fused_implementation([*body, *heads]) if fused else {}
    name = cfg.name.lower()
    if name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                               **implementation)
    if name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **implementation)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **implementation)
    raise ConfigError(f"optim.name={cfg.name!r} is not known; use one of sgd, adam, adamw")


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig, total_steps: int) -> dict | None:
    """A Lightning ``lr_scheduler`` dict stepping every optimisation step, or None for a constant rate."""
    warmup = max(0, int(cfg.warmup_steps))
    schedule = cfg.schedule.lower()
    if schedule == "constant" and warmup == 0:
        return None

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if schedule == "cosine":
            progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
            return 0.5 * (1.0 + torch.cos(torch.tensor(progress * torch.pi)).item())
        return 1.0

    if schedule not in ("constant", "cosine", "step"):
        raise ConfigError(f"optim.schedule={cfg.schedule!r} is not known; use constant, cosine or step")
    if schedule == "step":
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(cfg.milestones), cfg.gamma)
        return {"scheduler": scheduler, "interval": "epoch"}
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return {"scheduler": scheduler, "interval": "step"}
