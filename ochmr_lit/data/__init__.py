"""Data: one sample schema, datasets per format family, transforms, centermaps and DataModules."""

from ochmr_lit.data.datamodule import TopDownDataModule
from ochmr_lit.data.synthcrowd_datamodule import SynthCrowdDataModule

__all__ = ["SynthCrowdDataModule", "TopDownDataModule"]
