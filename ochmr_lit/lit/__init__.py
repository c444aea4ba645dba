"""LightningModules: they orchestrate models, body model, losses and metrics; no file formats here."""

from ochmr_lit.lit.context_estimator import ContextEstimatorModule
from ochmr_lit.lit.mesh_regressor import MeshRegressorModule

__all__ = ["ContextEstimatorModule", "MeshRegressorModule"]
