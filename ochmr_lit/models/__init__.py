"""Plain ``nn.Module`` models: CoNorm, the mesh regressor, HRNet and the context estimator, weight import."""

from ochmr_lit.models.conorm import CoNorm
from ochmr_lit.models.context import ContextEstimator
from ochmr_lit.models.hmr import IterationEstimate, MeshRegressor, RegressorOutput, load_mean_params
from ochmr_lit.models.hrnet import HRNet, HRNetConfig, StageConfig
from ochmr_lit.models.weights import (
    LoadReport,
    load_hrnet_coco,
    load_spin_checkpoint,
    load_torchvision_resnet,
    load_weights,
)

__all__ = [
    "CoNorm",
    "ContextEstimator",
    "HRNet",
    "HRNetConfig",
    "IterationEstimate",
    "LoadReport",
    "MeshRegressor",
    "RegressorOutput",
    "StageConfig",
    "load_hrnet_coco",
    "load_mean_params",
    "load_spin_checkpoint",
    "load_torchvision_resnet",
    "load_weights",
]
