"""DataModules, one module per dataset family, all on the top-down base of :mod:`.base`.

A family's module says how its splits become person records (and prepares an index where the format needs one);
crops, augmentation, loaders, bad samples and resume are the base's.
"""

from ochmr_lit.data.datamodules.base import TopDownDataModule
from ochmr_lit.data.datamodules.coco_keypoints import (
    CocoKeypointDataModule,
    CrowdPoseDataModule,
    KeypointDataModule,
    OCHumanDataModule,
)
from ochmr_lit.data.datamodules.eval_targets import EvalTargetsMixin
from ochmr_lit.data.datamodules.mixed import MixedDataModule
from ochmr_lit.data.datamodules.panoptic import PanopticDataModule
from ochmr_lit.data.datamodules.spin_npz import (
    H36MDataModule,
    LSPDataModule,
    LSPExtendedDataModule,
    MPIIDataModule,
    MPIINF3DHPDataModule,
    SpinNpzDataModule,
)
from ochmr_lit.data.datamodules.synthcrowd import SynthCrowdDataModule
from ochmr_lit.data.datamodules.threedoh import ThreeDOHDataModule
from ochmr_lit.data.datamodules.threedpw import ThreeDPWDataModule

__all__ = [
    "CocoKeypointDataModule", "CrowdPoseDataModule", "EvalTargetsMixin", "H36MDataModule", "KeypointDataModule",
    "LSPDataModule", "LSPExtendedDataModule", "MPIIDataModule", "MPIINF3DHPDataModule", "MixedDataModule",
    "OCHumanDataModule", "PanopticDataModule", "SpinNpzDataModule", "SynthCrowdDataModule", "ThreeDOHDataModule",
    "ThreeDPWDataModule", "TopDownDataModule",
]
