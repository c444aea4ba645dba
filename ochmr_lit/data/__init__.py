"""Data: one sample schema, datasets per format family, transforms, centermaps and DataModules."""

from ochmr_lit.data.coco_datamodule import CocoKeypointDataModule
from ochmr_lit.data.datamodule import TopDownDataModule
from ochmr_lit.data.mixed_datamodule import MixedDataModule
from ochmr_lit.data.real_datamodules import (
    CrowdPoseDataModule,
    H36MDataModule,
    KeypointDataModule,
    LSPDataModule,
    LSPExtendedDataModule,
    MPIIDataModule,
    MPIINF3DHPDataModule,
    OCHumanDataModule,
    PanopticDataModule,
    SpinNpzDataModule,
    ThreeDOHDataModule,
    ThreeDPWDataModule,
)
from ochmr_lit.data.synthcrowd_datamodule import SynthCrowdDataModule

__all__ = [
    "CocoKeypointDataModule", "CrowdPoseDataModule", "H36MDataModule", "KeypointDataModule", "LSPDataModule",
    "LSPExtendedDataModule", "MPIIDataModule", "MPIINF3DHPDataModule", "MixedDataModule", "OCHumanDataModule",
    "PanopticDataModule", "SpinNpzDataModule", "SynthCrowdDataModule", "ThreeDOHDataModule", "ThreeDPWDataModule",
    "TopDownDataModule",
]
