"""LightningModule training the HRNet context estimator F on local + global centermaps."""

from __future__ import annotations

from dataclasses import asdict

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric

from ochmr_lit.data.bad_samples import skip_empty_batch, skipped_step_loss
from ochmr_lit.data.predicted_centres import decode_centres
from ochmr_lit.eval.buckets import RESULT_BUCKETS, result_bucket_members
from ochmr_lit.lit.guard import NumericalGuardMixin
from ochmr_lit.lit.optim import FusedOptimizerMixin, OptimConfig, build_optimizer, build_scheduler
from ochmr_lit.lit.run_config import RunConfigMixin
from ochmr_lit.metrics import CentreLocalisation
from ochmr_lit.models import ContextEstimator
from ochmr_lit.models.pretrained import apply_pretrained
from ochmr_lit.vis.centermaps import log_centermap_grid


def compile_in_place(module: torch.nn.Module, mode: str | None = None, option: str = "model.compile_mode") -> None:
    """Compile ``module``'s forward with :func:`torch.compile`, in place (:meth:`torch.nn.Module.compile`).

    In-place compilation keeps the module object, its parameters and its state-dict keys: unlike the
    ``OptimizedModule`` that ``torch.compile(module)`` returns, no ``_orig_mod.`` prefix appears, so
    checkpoints of compiled and eager runs load into each other. Compilation itself is lazy: the first
    forward (of each new input shape or train/eval mode) traces and compiles.

    Args:
        module: the network to compile.
        mode: ``torch.compile`` mode (``default``, ``reduce-overhead``, ``max-autotune``, ...); None = torch's default.
        option: config name reported when ``mode`` is not one torch knows.
    """
    try:
        module.compile(mode=mode)
    except RuntimeError as error:  # torch checks the mode name at once
        raise ValueError(f"{option}={mode!r}: {error}") from error


class ContextEstimatorModule(NumericalGuardMixin, FusedOptimizerMixin, RunConfigMixin, L.LightningModule):
    """Trains :class:`~ochmr_lit.models.ContextEstimator` with HRNet's heatmap MSE on both maps.

    Validation scores the centres the regressor's predicted context is made of (:func:`decode_centres` of the
    predicted and of the target maps, :class:`~ochmr_lit.metrics.CentreLocalisation`): the sub-pixel distance of
    the target's centre as a fraction of the map side (``val/peak_dist``), the PCK of target centres at
    ``pck_threshold`` x map side (``val/pck_centre``), the recall and precision of everyone's centres at
    ``global_radius`` x map side (``val/global_recall``, ``val/global_precision``), and the global map's MSE.

    Args:
        width: HRNet width (32 or 48).
        optim: optimiser settings (HRNet's official recipe is Adam 1e-3).
        pck_threshold: fraction of the map side under which a target centre counts as found.
        global_radius: fraction of the map side under which a predicted global centre matches a true one.
        channels_last: run the network in channels_last memory format (faster with bf16 on CPU).
        num_vis: validation samples whose centermaps are logged each epoch.
        compile: compile the HRNet with :func:`torch.compile` in :meth:`configure_model` (in place: the
            state-dict keys stay those of the eager network).
        compile_mode: ``torch.compile`` mode when ``compile`` is true; None = torch's default.
        pretrained: starting weights, a list of ``{source: hrnet_coco | ochmr, path, strict}`` applied in order
            (:mod:`ochmr_lit.models.pretrained`); None = from scratch.
    """

    #: The validation score that picks the best epoch (``select_checkpoint=best``): logged key, and whether lower
    #: or higher is better.
    SELECTION_METRIC = ("val/pck_centre", "max")

    def __init__(self, width: int = 32, optim: dict | None = None, pck_threshold: float = 0.05,
                 global_radius: float = 0.1, channels_last: bool = True, num_vis: int = 4, compile: bool = False,
                 compile_mode: str | None = None, pretrained: list | dict | None = None):
        super().__init__()
        self.save_hyperparameters()
        self.model = ContextEstimator(width=width)
        self.pretrained_reports = [str(r) for r in apply_pretrained(self.model, pretrained)]
        self.optim_cfg = OptimConfig(**(optim or {"name": "adam", "lr": 1e-3}))
        self.channels_last = channels_last
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.val_centres = CentreLocalisation(threshold=pck_threshold, global_radius=global_radius)
        self.val_global_mse = MeanMetric()
        # the test (python -m ochmr_lit.evaluate experiment=<a context experiment>): every person and each bucket
        self.test_centres = torch.nn.ModuleDict({name: CentreLocalisation(pck_threshold, global_radius)
                                                 for name in ("all", *RESULT_BUCKETS)})
        self.test_results: dict[str, float] = {}

    def configure_model(self) -> None:
        """Compile the HRNet when ``compile`` is set (once: the Trainer calls this hook for every stage).

        Runs before the strategy wraps the module (DDP), so the wrapper holds the compiled network.
        """
        # A module copied or unpickled (e.g. into spawned processes) comes back eager and is compiled again.
        if self.hparams.compile and self.model._compiled_call_impl is None:
            compile_in_place(self.model, self.hparams.compile_mode)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.model(images)

    def _loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.shape[-2:] != target.shape[-2:]:
            raise ValueError(f"context estimator output {tuple(pred.shape[-2:])} and target centermaps "
                             f"{tuple(target.shape[-2:])} differ: set data.map_size = data.crop_size / 4")
        return 0.5 * F.mse_loss(pred.float(), target.float())  # HRNet's JointsMSELoss (0.5 x MSE)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor | None:
        if skip_empty_batch(self, batch):  # no sample of a rank's batch loaded (data.on_bad_sample=skip)
            return skipped_step_loss(self)
        pred = self(batch["image"])
        loss = self._loss(pred, batch["centermaps"])
        self.log("train/loss", loss, prog_bar=True, batch_size=pred.shape[0])
        return self.guard_loss(loss)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        pred = self(batch["image"]).float()
        target = batch["centermaps"]
        pred_local, pred_global = decode_centres(pred)
        true_local, true_global = decode_centres(target.float())
        self.val_centres.update(pred_local, true_local, pred_global, true_global, map_size=target.shape[-1])
        self.val_global_mse.update(F.mse_loss(pred[:, 1], target[:, 1], reduction="none").mean(dim=(1, 2)))
        self.log("val/loss", self._loss(pred, target), batch_size=pred.shape[0], sync_dist=True)
        if batch_idx == 0:
            self._log_maps(batch["image"], pred, target)

    def on_validation_epoch_end(self) -> None:
        centres = self.val_centres.compute()
        self.log("val/peak_dist", centres["peak_dist"].float())
        self.log("val/pck_centre", centres["pck"].float(), prog_bar=True)
        self.log("val/global_recall", centres["global_recall"].float())
        self.log("val/global_precision", centres["global_precision"].float())
        self.log("val/global_mse", self.val_global_mse.compute())
        for metric in (self.val_centres, self.val_global_mse):
            metric.reset()

    def test_step(self, batch: dict, batch_idx: int) -> None:
        """Score the decoded centres of every person and of each result bucket (occlusion, distractor)."""
        pred_local, pred_global = decode_centres(self(batch["image"]).float())
        true_local, true_global = decode_centres(batch["centermaps"].float())
        members = result_bucket_members(batch["occlusion_ratio"].cpu().numpy(), batch["distractor"].cpu().numpy())
        members["all"] = np.ones(len(pred_local), dtype=bool)
        for name, metric in self.test_centres.items():
            rows = np.flatnonzero(members[name]).tolist()
            if rows:
                metric.update(pred_local[rows], true_local[rows], [pred_global[i] for i in rows],
                              [true_global[i] for i in rows], map_size=batch["centermaps"].shape[-1])

    def on_test_epoch_end(self) -> None:
        """``test_results``: ``pck_centre``, ``centre_on_other``, ``peak_dist``, ``global_recall``,
        ``global_precision`` of every person, the same with a ``_<bucket>`` suffix per bucket, and
        ``count_<bucket>`` (people in it)."""
        results: dict[str, float] = {}
        for name, metric in self.test_centres.items():
            suffix = "" if name == "all" else f"_{name}"
            scores = metric.compute()
            results.update({f"pck_centre{suffix}": float(scores["pck"]),
                            f"centre_on_other{suffix}": float(scores["on_other"]),
                            f"peak_dist{suffix}": float(scores["peak_dist"]),
                            f"global_recall{suffix}": float(scores["global_recall"]),
                            f"global_precision{suffix}": float(scores["global_precision"]),
                            f"count{suffix or '_all'}": float(metric.people)})
            metric.reset()
        self.test_results = results
        for key, value in results.items():
            self.log(f"test/{key}", value)

    def _log_maps(self, images: torch.Tensor, pred: torch.Tensor, target: torch.Tensor) -> None:
        log_centermap_grid(self.loggers, "val/centermaps", images[: self.hparams.num_vis],
                           pred[: self.hparams.num_vis], target[: self.hparams.num_vis], self.global_step)

    def configure_optimizers(self):
        optimizer = build_optimizer(self.parameters(), self.optim_cfg, fused=self.fused_allowed())
        scheduler = build_scheduler(optimizer, self.optim_cfg, int(self.trainer.estimated_stepping_batches))
        return optimizer if scheduler is None else {"optimizer": optimizer, "lr_scheduler": scheduler}

    def optim_summary(self) -> dict:
        return asdict(self.optim_cfg)
