"""Data: one sample schema, datasets per format family, transforms, centermaps and DataModules."""

from ochmr_lit.data.coco_datamodule import CocoKeypointDataModule
from ochmr_lit.data.datamodule import TopDownDataModule
from ochmr_lit.data.mixed_datamodule import MixedDataModule
from ochmr_lit.data.real_datamodules import (
    CrowdPoseDataModule,
    KeypointDataModule,
    OCHumanDataModule,
    PanopticDataModule,
    ThreeDOHDataModule,
    ThreeDPWDataModule,
)
from ochmr_lit.data.synthcrowd_datamodule import SynthCrowdDataModule

__all__ = [
    "CocoKeypointDataModule", "CrowdPoseDataModule", "KeypointDataModule", "MixedDataModule", "OCHumanDataModule",
    "PanopticDataModule", "SynthCrowdDataModule", "ThreeDOHDataModule", "ThreeDPWDataModule", "TopDownDataModule",
]
