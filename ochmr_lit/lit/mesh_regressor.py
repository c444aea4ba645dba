"""LightningModule for the mesh regressor: OCHMR (CoNorm + context) and the SPIN baseline by config."""

from __future__ import annotations

from dataclasses import asdict

import lightning as L
import numpy as np
import torch

from ochmr_lit.body import BodyModel
from ochmr_lit.data.bad_samples import skip_empty_batch, skipped_step_loss
from ochmr_lit.errors import ConfigError
from ochmr_lit.eval.bucket_tables import bucket_table, log_bucket_table
from ochmr_lit.eval.mesh_evaluation import MeshEvaluation
from ochmr_lit.eval.protocols import get_protocol
from ochmr_lit.eval.references import REFERENCES, reference_parameters
from ochmr_lit.geometry import (
    axis_angle_to_rotmat,
    crop_focal_length,
    perspective_projection,
    weak_perspective_to_translation,
)
from ochmr_lit.lit import losses as L_
from ochmr_lit.lit.context_estimator import compile_in_place
from ochmr_lit.lit.context_feed import ContextFeedMixin
from ochmr_lit.lit.frozen_context import freeze, load_frozen_context
from ochmr_lit.lit.guard import NumericalGuardMixin
from ochmr_lit.lit.optim import FusedOptimizerMixin, OptimConfig, build_optimizer, build_scheduler
from ochmr_lit.lit.run_config import RunConfigMixin
from ochmr_lit.models import ContextEstimator, MeshRegressor
from ochmr_lit.models.flip_test import flip_test_average
from ochmr_lit.models.keypoint_heatmaps import keypoint_heatmap_loss
from ochmr_lit.models.pretrained import apply_pretrained

CONTEXT_SOURCES = ("gt", "predicted", "none")


def check_context_source(conorm_depths: tuple[int, ...] | list[int], context_source: str) -> None:
    """A ConfigError (a ValueError) naming the key unless the context source is known and fits the CoNorm blocks."""
    if context_source not in CONTEXT_SOURCES:
        raise ConfigError(f"model.context_source={context_source!r}; use one of {CONTEXT_SOURCES}")
    if bool(conorm_depths) == (context_source == "none"):
        raise ConfigError(f"model.conorm_depths={list(conorm_depths)} with context_source={context_source!r}: "
                          "CoNorm blocks need a context (gt or predicted); the SPIN baseline "
                          "(conorm_depths=[]) takes context_source=none")


def check_heatmap_supervision(heatmap_keypoints: int, weight: float) -> None:
    """A ConfigError (a ValueError) naming the keys unless the heatmap head and its loss weight come together."""
    if heatmap_keypoints and not weight > 0:
        raise ConfigError(f"model.heatmap_keypoints={heatmap_keypoints} adds a heatmap head that nothing trains: set "
                          "model.loss_weights.keypoint_heatmaps > 0 (e.g. 0.5), or heatmap_keypoints=0")
    if weight and not heatmap_keypoints:
        raise ConfigError(f"model.loss_weights.keypoint_heatmaps={weight} weighs a heatmap head the model does not "
                          "have: set model.heatmap_keypoints=17, or the weight to 0")


class MeshRegressorModule(ContextFeedMixin, NumericalGuardMixin, FusedOptimizerMixin, RunConfigMixin,
                          L.LightningModule):
    """Trains and evaluates :class:`~ochmr_lit.models.MeshRegressor`.

    Args:
        backbone: torchvision ResNet name.
        conorm_depths: ResNet layers followed by a CoNorm block; ``[]`` is the SPIN baseline.
        hidden_channels: CoNorm latent width K.
        context_source: ``gt`` (centermaps from annotations), ``predicted`` (a frozen context estimator
            from ``context_checkpoint``) or ``none`` (the SPIN baseline; requires ``conorm_depths=[]``).
        context_checkpoint: ContextEstimatorModule checkpoint for ``predicted``, read when training starts. A
            regressor checkpoint holds the context estimator's weights itself (``context_net.*``), so once trained
            this path is provenance only: see ``context_width``.
        context_width: HRNet width of the context estimator. None (training): read ``context_checkpoint``. Set
            (restoring a trained regressor, :func:`~ochmr_lit.lit.checkpoints.load_regressor_checkpoint`): the
            network is built at this width and its weights come from the regressor checkpoint being loaded, so
            the context-estimator file may have moved or gone. Using it before such weights were loaded is an
            error.
        context_input_size: side the crop is resized to for the context estimator: the crop side it was trained
            on. None reads it from ``context_checkpoint``; a number is checked against it
            (:func:`~ochmr_lit.lit.frozen_context.load_frozen_context`).
        context_sigma: Gaussian sigma (map px) the predicted centres are rendered with (``data.sigma``).
            Predicted context = the estimator's decoded body centres rendered like ground-truth maps
            (:mod:`ochmr_lit.data.predicted_centres`): read from the data module's cache
            (``data.predicted_centres``) when it has one, else computed per batch.
        body_model_dir: SMPL folder (None = the synthetic SMPL-format model).
        loss_weights: :class:`~ochmr_lit.lit.losses.LossWeights` fields.
        keypoints_2d_limit: target keypoints farther than this outside the crop (normalised units, crop =
            [-1, 1]) take no part in the 2D loss (:func:`~ochmr_lit.lit.losses.keypoint_2d_loss`); None = SPIN.
        optim: :class:`~ochmr_lit.lit.optim.OptimConfig` fields.
        crop_size: input side in px; focal_length: px at that side; None = SPIN's field of view at any crop size
            (5000 px at 224, :func:`~ochmr_lit.geometry.crop_focal_length`), stored resolved.
        protocol: evaluation protocol name recorded with the results.
        channels_last: channels_last memory format for the backbone.
        pretrained: starting weights, a list of ``{source: torchvision | spin | ochmr, path, strict, download}``
            applied in order (:mod:`ochmr_lit.models.pretrained`; strict by default); None = from scratch.
        dropout: drop probability of the regressor head's two dropout layers (SPIN: 0.5).
        num_vis: validation samples drawn (crop, context, mesh) into the loggers each epoch; 0 disables.
        compile: compile the regressor network (``self.model``) with :func:`torch.compile` in
            :meth:`configure_model`, in place, so the state-dict keys stay those of the eager network and
            checkpoints load either way. The frozen context estimator and the body model stay eager.
        compile_mode: ``torch.compile`` mode when ``compile`` is true; None = torch's default.
        mean_params: SPIN-format ``smpl_mean_params.npz`` the IEF iterations start from (e.g. a SynthCrowd
            training split's own, :mod:`ochmr_lit.body.mean_params`); None = the body model folder's file. The
            path is provenance only once trained: the values are buffers of the checkpoint.
        pooling_grid: the backbone's last map is pooled to ``g x g`` cells for the head (1 = SPIN's global
            average; see :class:`~ochmr_lit.models.hmr.MeshRegressor`).
        heatmap_keypoints: 17 adds the auxiliary COCO-17 heatmap head to the backbone
            (:mod:`ochmr_lit.models.keypoint_heatmaps`), trained with ``loss_weights.keypoint_heatmaps``; 0 = none.
        flip_test: in evaluation, average each prediction with the mirrored crop's, mirrored back
            (:mod:`ochmr_lit.models.flip_test`; twice the regressor's cost); training steps are never flipped this way.
    """

    #: The validation score that picks the best epoch (``select_checkpoint=best``): logged key, and whether lower
    #: or higher is better.
    SELECTION_METRIC = ("val/mpjpe", "min")

    def __init__(self, backbone: str = "resnet50", conorm_depths: tuple[int, ...] = (2,), hidden_channels: int = 128,
                 context_source: str = "gt", context_checkpoint: str | None = None,
                 context_input_size: int | None = None, body_model_dir: str | None = None,
                 loss_weights: dict | None = None, optim: dict | None = None,
                 crop_size: int = 224, focal_length: float | None = None, protocol: str = "synthcrowd",
                 channels_last: bool = True, pretrained: list | dict | None = None, iterations: int = 3,
                 num_vis: int = 4,
                 dropout: float = 0.5, context_sigma: float = 2.0, compile: bool = False,
                 compile_mode: str | None = None, keypoints_2d_limit: float | None = None,
                 mean_params: str | None = None, pooling_grid: int = 1, context_width: int | None = None,
                 heatmap_keypoints: int = 0, flip_test: bool = False):
        super().__init__()
        self.save_hyperparameters()
        self.hparams.focal_length = crop_focal_length(crop_size, focal_length)
        conorm_depths = tuple(conorm_depths)
        check_context_source(conorm_depths, context_source)
        if context_source == "predicted" and not context_checkpoint and context_width is None:
            raise ConfigError("model.context_source=predicted needs model.context_checkpoint (a context-estimator "
                              "checkpoint); train one with experiment=synthcrowd_context")
        self.body = BodyModel(body_model_dir)
        # DDP must not broadcast the body model's ~60 MB of constant buffers on every forward.
        self._ddp_params_and_buffers_to_ignore = [f"body.{name}" for name, _ in self.body.named_buffers()]
        # The IEF start: a training split's own mean (SynthCrowd writes one), else the body model folder's file
        # (SPIN's smpl_mean_params.npz for real SMPL). The values live on as buffers in every checkpoint.
        mean_params = mean_params or str(self.body.model_dir / "smpl_mean_params.npz")
        self.mean_params_file = mean_params
        self.model = MeshRegressor(backbone, conorm_depths, hidden_channels, mean_params=mean_params,
                                   iterations=iterations, dropout=dropout, pooling_grid=pooling_grid,
                                   heatmap_keypoints=heatmap_keypoints)
        self.pretrained_reports = [str(r) for r in apply_pretrained(self.model, pretrained)]
        self.context_net: ContextEstimator | None = None
        self._context_weights_pending = False  # built at context_width, waiting for a checkpoint's weights
        if context_source == "predicted" and context_width is None:
            self.context_net, self.hparams.context_input_size = load_frozen_context(context_checkpoint,
                                                                                     context_input_size)
            self.hparams.context_width = self.context_net.width
        elif context_source == "predicted":
            self.context_net = freeze(ContextEstimator(width=int(context_width)))
            self._context_weights_pending = True
        self.weights = L_.LossWeights(**(loss_weights or {}))
        check_heatmap_supervision(heatmap_keypoints, self.weights.keypoint_heatmaps)
        self.optim_cfg = OptimConfig(**(optim or {}))
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        # "<split>" (the model) and "<split>/<reference>" -> MeshEvaluation, built on first use
        self.evaluations = torch.nn.ModuleDict()
        self._context_mode = "true"
        self._val_references: dict[str, dict[str, float]] | None = None  # the first validation's, then reused
        self.test_references: dict[str, dict[str, float]] = {}

    # -- set-up ----------------------------------------------------------------------------------------
    def configure_model(self) -> None:
        """Compile the regressor when ``compile`` is set (once: the Trainer calls this hook for every stage).

        Runs before the strategy wraps the module (DDP), so the wrapper holds the compiled network.
        """
        # A module copied or unpickled (e.g. into spawned processes) comes back eager and is compiled again.
        if self.hparams.compile and self.model._compiled_call_impl is None:
            compile_in_place(self.model, self.hparams.compile_mode)

    def evaluation_protocol(self):
        """The :class:`~ochmr_lit.eval.protocols.Protocol` this module's metrics follow."""
        return get_protocol(self.hparams.protocol)

    def _evaluation(self, split: str, source: str = "model"):
        """The metrics of a split for the model or a reference of :data:`REFERENCES` (``source``).

        Built on first use (the split's keypoint ground truth differs), under ``split`` for the model and
        ``split/source`` for a reference, in :attr:`evaluations` so that DDP syncs them all.
        """
        key = split if source == "model" else f"{split}/{source}"
        if key not in self.evaluations:
            datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
            # the test stage reads the datamodule's test_split (evaluate split=train|val|test)
            data_split = getattr(datamodule, "test_split", "test") if split == "test" else split
            ap_gt = datamodule.keypoint_ground_truth(data_split) if datamodule is not None else None
            self.evaluations[key] = MeshEvaluation(self.hparams.protocol, keypoint_ground_truth=ap_gt).to(self.device)
        return self.evaluations[key]

    # -- forward ---------------------------------------------------------------------------------------
    def forward(self, images: torch.Tensor, context: torch.Tensor | None = None):
        if self.hparams.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.model(images, context)

    def predict_batch(self, batch: dict, context: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Regressor + body model on one batch (``context``: precomputed :meth:`context_for`, else computed).

        Returns ``rotmat (B,24,3,3)``, ``betas (B,10)``, ``cam (B,3)``, ``vertices (B,6890,3)`` metres,
        ``keypoints_3d (B,17,3)`` COCO-17 metres, ``keypoints_2d (B,17,2)`` crop px, ``cam_t (B,3)`` metres, and
        with a heatmap head ``heatmaps (B,17,h,w)`` logits (of the crop itself under ``flip_test``).
        """
        images = batch["image"]
        context = context if context is not None else self.context_for(batch)
        out = self(images, context)
        rotmat, betas, cam = out.rotmat.float(), out.betas.float(), out.cam.float()
        if self.hparams.flip_test and not self.training:
            mirrored = self(images.flip(-1), context.flip(-1) if context is not None else None)
            rotmat, betas, cam = flip_test_average(rotmat, betas, cam, mirrored.rotmat.float(),
                                                   mirrored.betas.float(), mirrored.cam.float(),
                                                   int(self.hparams.crop_size))
        pred = self.predictions_from_parameters(rotmat, betas, cam)
        if out.heatmaps is not None:
            pred["heatmaps"] = out.heatmaps
        return pred

    def predictions_from_parameters(self, rotmat: torch.Tensor, betas: torch.Tensor,
                                    cam: torch.Tensor) -> dict[str, torch.Tensor]:
        """The prediction dict of :meth:`predict_batch` from SMPL parameters and a camera.

        Args:
            rotmat: (B, 24, 3, 3) joint rotations, global orientation first; betas: (B, 10); cam: (B, 3)
                weak-perspective ``[s, tx, ty]`` in normalised crop coordinates.
        """
        # The body model and the projection run in fp32 even under bf16-mixed: bf16 keeps 3 significant
        # digits, i.e. centimetres along the kinematic chain and a quantised depth of ~2f/(S s) metres.
        with torch.autocast(rotmat.device.type, enabled=False):
            body = self.body(rotmat, betas)
            keypoints_3d, _ = body.keypoints("coco17")
            size = float(self.hparams.crop_size)
            cam_t = weak_perspective_to_translation(cam, self.hparams.focal_length, size)
            centre = torch.full((cam.shape[0], 2), size / 2.0, device=cam.device)
            keypoints_2d = perspective_projection(keypoints_3d, cam_t, self.hparams.focal_length, centre)
        return {"rotmat": rotmat, "betas": betas, "cam": cam, "vertices": body.vertices,
                "joints_h36m": body.joints_h36m, "keypoints_3d": keypoints_3d, "keypoints_2d": keypoints_2d,
                "cam_t": cam_t}

    def reference_predictions(self, batch: dict) -> dict[str, dict[str, torch.Tensor]]:
        """The predictions of each reference of :data:`REFERENCES` for a batch (no image is read).

        ``constant``: the IEF start (``self.model.init_pose/init_shape/init_cam``) for everyone; ``oracle``: the
        same with each person's true global orientation (:mod:`ochmr_lit.eval.references`).
        """
        net = self.model
        # fp32 even under bf16-mixed: a bf16 matmul in Rodrigues' formula would bend the true orientation
        with torch.autocast(net.init_pose.device.type, enabled=False):
            return {name: self.predictions_from_parameters(
                        *reference_parameters(name, net.init_pose, net.init_shape, net.init_cam, batch))
                    for name in REFERENCES}

    # -- training --------------------------------------------------------------------------------------
    def compute_losses(self, batch: dict, pred: dict) -> dict[str, torch.Tensor]:
        w = self.weights
        has_smpl = batch["has_smpl"]
        gt_rotmat = axis_angle_to_rotmat(batch["smpl_pose"].view(-1, 24, 3))
        terms = {
            "keypoints_2d": L_.keypoint_2d_loss(pred["keypoints_2d"], batch["keypoints_2d"], self.hparams.crop_size,
                                                self.hparams.keypoints_2d_limit),
            "keypoints_3d": L_.keypoint_3d_loss(pred["keypoints_3d"], batch["keypoints_3d"],
                                                batch["has_keypoints_3d"]),
            "camera": L_.camera_regulariser(pred["cam"]),
        }
        if w.keypoint_heatmaps > 0:
            terms["keypoint_heatmaps"] = keypoint_heatmap_loss(pred["heatmaps"], batch["keypoints_2d"],
                                                               self.hparams.crop_size)
        if w.keypoints_3d_body > 0:
            terms["keypoints_3d_body"] = L_.keypoint_3d_body_loss(
                pred["keypoints_3d"], pred["rotmat"][:, 0], batch["keypoints_3d"], gt_rotmat[:, 0],
                batch["has_keypoints_3d"] & has_smpl)
        terms["smpl_pose"], terms["smpl_betas"] = L_.smpl_losses(pred["rotmat"], pred["betas"], gt_rotmat,
                                                                  batch["smpl_betas"], has_smpl)
        if w.vertices > 0:
            with torch.autocast(gt_rotmat.device.type, enabled=False):
                gt_vertices = self.body(gt_rotmat, batch["smpl_betas"].float(), gender=batch["gender"]).vertices
            terms["vertices"] = L_.vertex_loss(pred["vertices"], gt_vertices, has_smpl)
        total = sum(getattr(w, name) * value for name, value in terms.items())
        terms["total"] = total * w.total_scale
        return terms

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor | None:
        if skip_empty_batch(self, batch):  # no sample of a rank's batch loaded (data.on_bad_sample=skip)
            return skipped_step_loss(self)
        pred = self.predict_batch(batch)
        terms = self.compute_losses(batch, pred)
        batch_size = batch["image"].shape[0]
        for name, value in terms.items():
            self.log(f"train/loss_{name}" if name != "total" else "train/loss", value,
                     prog_bar=name == "total", batch_size=batch_size)
        return self.guard_loss(terms["total"])

    # -- evaluation ------------------------------------------------------------------------------------
    def _eval_step(self, batch: dict, split: str, references: bool = False) -> dict[str, torch.Tensor]:
        """Evaluate the model on a batch and, with ``references``, the reference predictions too."""
        with torch.no_grad():
            pred = self.predict_batch(batch)
            self._evaluation(split).update(batch, pred, self.body)
            if references:
                for name, reference in self.reference_predictions(batch).items():
                    self._evaluation(split, name).update(batch, reference, self.body)
        return pred

    def _validating_references(self) -> bool:
        """References are validated once (they do not depend on the weights): first validation after sanity."""
        return self._val_references is None and not self.trainer.sanity_checking

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        pred = self._eval_step(batch, "val", references=self._validating_references())
        if batch_idx == 0 and self.hparams.num_vis > 0 and self.loggers:
            self._log_overlays(batch, pred)

    def _log_overlays(self, batch: dict, pred: dict) -> None:
        """Crop | context | predicted mesh for the first validation samples (same samples every epoch)."""
        from ochmr_lit.vis.centermaps import denormalise, log_image, overlay_maps
        from ochmr_lit.vis.overlays import mesh_overlays
        from ochmr_lit.vis.render import RendererUnavailableError

        n = min(self.hparams.num_vis, batch["image"].shape[0])
        images = batch["image"][:n]
        crops = denormalise(images)
        context = self.context_for({k: v[:n] if torch.is_tensor(v) else v for k, v in batch.items()})
        columns = [crops]
        if context is not None:
            columns.append(overlay_maps(images, context))
        try:
            columns.append(mesh_overlays(crops, pred["vertices"][:n], pred["cam_t"][:n], self.body.faces,
                                         self.hparams.focal_length))
        except RendererUnavailableError as error:  # no EGL: log what can be drawn, say why once
            if not getattr(self, "_warned_renderer", False):
                self.print(f"validation overlays without meshes: {error}")
                self._warned_renderer = True
        grid = np.concatenate([np.concatenate([c[i] for c in columns], axis=1) for i in range(n)], axis=0)
        log_image(self.loggers, "val/overlays", grid, self.global_step, caption="crop | context | predicted mesh")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "test", references=True)

    def _log_key(self, split: str, source: str = "model") -> str:
        """``split[/context_<mode>][/reference]``: where a source's metrics are logged."""
        parts = [split]
        if self._context_mode != "true":
            parts.append(f"context_{self._context_mode}")
        if source != "model":
            parts.append(source)
        return "/".join(parts)

    def _log_values(self, split: str, source: str, values: dict[str, float]) -> None:
        key = self._log_key(split, source)
        for name, value in values.items():
            self.log(f"{key}/{name}", float(value), prog_bar=source == "model" and name in ("mpjpe", "pa_mpjpe"))

    def _log_evaluation(self, split: str, source: str = "model") -> dict[str, float]:
        values = self._evaluation(split, source).compute()
        self._log_values(split, source, values)
        return values

    def on_validation_epoch_end(self) -> None:
        values = self._log_evaluation("val")
        if self.loggers and not self.trainer.sanity_checking:
            people = len(self._evaluation("val").per_sample()["sample_index"])
            columns, rows = bucket_table(values, num_people=people)
            log_bucket_table(self.loggers, "val/occlusion_buckets", columns, rows, self.global_step)
        self._evaluation("val").reset()
        if self._validating_references():
            self._val_references = {name: self._evaluation("val", name).compute() for name in REFERENCES}
            for name in REFERENCES:
                self._evaluation("val", name).reset()
        for name, reference in (self._val_references or {}).items():
            self._log_values("val", name, reference)

    def on_test_epoch_start(self) -> None:
        for source in ("model", *REFERENCES):
            self._evaluation("test", source).reset()

    def on_test_epoch_end(self) -> None:
        self.test_results = self._log_evaluation("test")
        self.test_references = {name: self._log_evaluation("test", name) for name in REFERENCES}
        self.test_per_sample = self._evaluation("test").per_sample()
        self.test_per_joint = self._evaluation("test").per_joint()

    def configure_optimizers(self):
        optimizer = build_optimizer(self.model.parameters(), self.optim_cfg, head=self.model.head_parameters(),
                                    fused=self.fused_allowed())
        scheduler = build_scheduler(optimizer, self.optim_cfg, int(self.trainer.estimated_stepping_batches))
        return optimizer if scheduler is None else {"optimizer": optimizer, "lr_scheduler": scheduler}

    def optim_summary(self) -> dict:
        return asdict(self.optim_cfg)
