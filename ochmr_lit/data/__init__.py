"""Data: one sample schema, datasets per format family, transforms, centermaps and DataModules."""

from ochmr_lit.data.datamodules import (
    CocoKeypointDataModule,
    CrowdPoseDataModule,
    H36MDataModule,
    KeypointDataModule,
    LSPDataModule,
    LSPExtendedDataModule,
    MixedDataModule,
    MPIIDataModule,
    MPIINF3DHPDataModule,
    OCHumanDataModule,
    PanopticDataModule,
    SpinNpzDataModule,
    SynthCrowdDataModule,
    ThreeDOHDataModule,
    ThreeDPWDataModule,
    TopDownDataModule,
)

__all__ = [
    "CocoKeypointDataModule", "CrowdPoseDataModule", "H36MDataModule", "KeypointDataModule", "LSPDataModule",
    "LSPExtendedDataModule", "MPIIDataModule", "MPIINF3DHPDataModule", "MixedDataModule", "OCHumanDataModule",
    "PanopticDataModule", "SpinNpzDataModule", "SynthCrowdDataModule", "ThreeDOHDataModule", "ThreeDPWDataModule",
    "TopDownDataModule",
]
