"""Data: one sample schema, record readers per format family, transforms, centermaps and DataModules.

Every DataModule is importable from here (``ochmr_lit.data.SynthCrowdDataModule``, the configs' targets); each
lives in its family's module of :mod:`ochmr_lit.data.datamodules`.
"""

from ochmr_lit.data import datamodules
from ochmr_lit.data.datamodules import *  # noqa: F403  (the DataModules, named once in datamodules.__all__)

__all__ = list(datamodules.__all__)
