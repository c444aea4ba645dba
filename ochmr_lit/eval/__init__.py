"""Evaluation protocols: which dataset, joints, regressor, root, boxes and metrics, one name each."""

from ochmr_lit.eval.detector_sweep import DEFAULT_THRESHOLDS, DetectorSweep, format_sweep_table
from ochmr_lit.eval.joints import JOINT_SETS, EvalJoints
from ochmr_lit.eval.protocols import PROTOCOLS, Protocol, build_metrics, get_protocol, in_3dpw_occ, in_3dpw_pc

__all__ = [
    "DEFAULT_THRESHOLDS",
    "DetectorSweep",
    "EvalJoints",
    "JOINT_SETS",
    "PROTOCOLS",
    "Protocol",
    "build_metrics",
    "format_sweep_table",
    "get_protocol",
    "in_3dpw_occ",
    "in_3dpw_pc",
]
