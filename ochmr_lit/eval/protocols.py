"""Named evaluation protocols: which data, joints, regressor, root, ground truth, boxes and metrics.

Every reported number names its protocol, and ``Protocol.to_dict()`` is stored with every result.
Each entry states its facts in its own fields (subset, joints and their regressor, root, boxes, metrics). The 3D
protocols follow SPIN's evaluation (``eval.py`` of its code release), CMU Panoptic CRMH's, keypoint AP
pycocotools' OKS evaluation (CrowdPose's official semantics for CrowdPose); 3DPW-PC (ROMP) and 3DPW-OCC (PARE)
subsets are decided by ``in_3dpw_pc`` and ``in_3dpw_occ``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from torch import Tensor
from torchmetrics import Metric

from ochmr_lit.body.keypoints import get_convention
from ochmr_lit.errors import ConfigError
from ochmr_lit.eval import joints as J
from ochmr_lit.eval.buckets import OCCLUSION_BUCKET_EDGES
from ochmr_lit.eval.detector_sweep import DEFAULT_THRESHOLDS, DetectorSweep
from ochmr_lit.metrics.coco_tools import GroundTruthError, GroundTruthSource
from ochmr_lit.metrics.keypoint_ap import KeypointAP
from ochmr_lit.metrics.matched_mpjpe import PANOPTIC_SEQUENCES, MatchedMPJPE
from ochmr_lit.metrics.mesh_errors import MPJPE, PAMPJPE, PVE, PAMPJPEDepth, PAMPJPEPlane

#: Frame ranges [start, stop) of 3DPW-PC (person-crowded, from ROMP), by sequence name.
PW3D_PC_FRAMES: dict[str, tuple[int, int]] = {
    "courtyard_basketball_00": (200, 280),
    "courtyard_captureSelfies_00": (500, 600),
    "courtyard_dancing_00": (60, 370),
    "courtyard_dancing_01": (60, 270),
    "courtyard_hug_00": (100, 500),
    "downtown_bus_00": (1620, 1900),
}

#: 3DPW-OCC (PARE): sequences whose first two ``_``-separated name tokens are one of these.
PW3D_OCC_PREFIXES: frozenset[str] = frozenset(
    {
        "courtyard_backpack",
        "courtyard_basketball",
        "courtyard_bodyScannerMotions",
        "courtyard_box",
        "courtyard_golf",
        "courtyard_jacket",
        "courtyard_laceShoe",
        "downtown_stairs",
        "flat_guitar",
        "flat_packBags",
        "outdoors_climbing",
        "outdoors_crosscountry",
        "outdoors_fencing",
        "outdoors_freestyle",
        "outdoors_golf",
        "outdoors_parcours",
        "outdoors_slalom",
    }
)

#: The per-person mesh errors (mm) a protocol may name, in report order: MPJPE and PA-MPJPE on the protocol's
#: joints, PVE on all vertices, then PA-MPJPE's parts along the camera axis and in the image plane.
MESH_ERRORS: tuple[str, ...] = ("mpjpe", "pa_mpjpe", "pve", "pa_mpjpe_depth", "pa_mpjpe_plane")
#: What the protocols whose GT is a camera-frame mesh (3DPW, SynthCrowd) measure: every mesh error, PA-MPJPE's
#: depth and image-plane parts included (their z axis is the camera's).
_MESH_VS_MESH_METRICS: tuple[str, ...] = MESH_ERRORS

#: The protocol whose mesh errors a protocol without a 3D joint pipeline (keypoint AP) reports for the samples
#: that have an SMPL ground truth: SPIN's (MPJPE / PA-MPJPE on 14 LSP joints, PVE), as 3DPW's.
SPIN_MESH_PROTOCOL = "3dpw"


def _sequence_name(sequence: str) -> str:
    # Accept "courtyard_hug_00", "courtyard_hug_00.pkl" or "test/courtyard_hug_00.pkl".
    name = sequence.replace("\\", "/").rsplit("/", 1)[-1]
    return name[: -len(".pkl")] if name.endswith(".pkl") else name


def in_3dpw_pc(sequence: str, frame: int) -> bool:
    """Whether frame ``frame`` (0-based) of 3DPW sequence ``sequence`` belongs to 3DPW-PC."""
    span = PW3D_PC_FRAMES.get(_sequence_name(sequence))
    return span is not None and span[0] <= int(frame) < span[1]


def in_3dpw_occ(sequence: str) -> bool:
    """Whether 3DPW sequence ``sequence`` belongs to 3DPW-OCC (matched on its first two name tokens)."""
    return "_".join(_sequence_name(sequence).split("_")[:2]) in PW3D_OCC_PREFIXES


@dataclass(frozen=True)
class Protocol:
    """One named evaluation protocol.

    Attributes:
        name: registry key, e.g. ``"3dpw"``.
        dataset: dataset the protocol reads (``ochmr_lit.metrics.per_sample.DATASET_CODES`` key(s)).
        joint_set: evaluation joints: a key of ``ochmr_lit.eval.joints.JOINT_SETS`` for 3D metrics, or the
            keypoint convention of the projected 2D keypoints for AP (``coco17``, ``crowdpose14``).
        joint_regressor: where the predicted joints come from.
        root: what is subtracted from pred and GT before comparing (3D protocols).
        gendered_gt: GT meshes from the gendered body models (3DPW) rather than the neutral one.
        box_source: ``"gt"`` boxes or ``"detector"`` boxes (with scores).
        metrics: metric names: ``mpjpe``, ``pa_mpjpe``, ``pve``, ``pa_mpjpe_depth`` and ``pa_mpjpe_plane`` (the
            parts of PA-MPJPE along the camera axis and in the image plane; camera-frame GT only),
            ``matched_mpjpe``, ``keypoint_ap``, ``detector_sweep``.
        subset: which samples (split, frames, sequences, cameras).
        description: one line for tables.
        pipeline: the ``ochmr_lit.eval.joints`` function that builds the evaluation joints, or ``""``.
        gt_root: ``"pelvis"`` (SPIN's) or ``"mid_hips"`` for ``mesh_vs_spin24``; ``""`` otherwise.
        ap_flavour: ``"coco"`` or ``"crowdpose"`` for keypoint AP; ``""`` otherwise.
        occlusion_buckets: bucket edges for per-occlusion results (SynthCrowd:
            ``ochmr_lit.eval.buckets.OCCLUSION_BUCKET_EDGES``), else empty.
        score_thresholds: detection-score thresholds (detector sweep), else empty.
    """

    name: str
    dataset: str
    joint_set: str
    joint_regressor: str
    root: str
    gendered_gt: bool
    box_source: str
    metrics: tuple[str, ...]
    subset: str
    description: str
    pipeline: str = ""
    gt_root: str = ""
    ap_flavour: str = ""
    occlusion_buckets: tuple[float, ...] = ()
    score_thresholds: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of every field (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @property
    def mesh_protocol(self) -> Protocol:
        """The protocol whose pipeline, joints and declared mesh errors (:data:`MESH_ERRORS` in ``metrics``)
        measure this one's mesh errors: itself where it has a 3D joint pipeline, else :data:`SPIN_MESH_PROTOCOL`."""
        return self if self.pipeline else get_protocol(SPIN_MESH_PROTOCOL)

    @property
    def num_joints(self) -> int:
        """Size of the evaluation joint set (3D protocols)."""
        return len(J.JOINT_SETS[self.joint_set])

    @property
    def target(self) -> str:
        """What the 3D pipeline compares against (``ochmr_lit.eval.joints.PIPELINE_TARGETS``); ``""`` for none."""
        return J.PIPELINE_TARGETS.get(self.pipeline, "")

    @property
    def keypoint_convention(self) -> str:
        """Convention of the keypoints scored by keypoint AP: the protocol's own for AP protocols, else
        ``coco17`` (the AP a split with a COCO-format keypoint file reports beside its 3D metrics)."""
        return self.joint_set if self.ap_flavour else "coco17"

    def keypoint_ap(self, ground_truth: GroundTruthSource) -> KeypointAP:
        """Keypoint AP in :attr:`keypoint_convention` with its OKS sigmas and the protocol's flavour
        (``coco`` where the protocol names none).

        Raises:
            ValueError: the ground truth does not hold keypoints of this convention (names the protocol).
        """
        convention = self.keypoint_convention
        try:
            return KeypointAP(ground_truth, get_convention(convention).sigmas, flavour=self.ap_flavour or "coco")
        except GroundTruthError as error:
            raise ConfigError(f"protocol {self.name!r} scores {convention} keypoints, which its keypoint ground "
                              f"truth does not hold ({error}); evaluate data={self.dataset} with it, or pick the "
                              "protocol of your data (coco_ap, ochuman_ap, crowdpose_ap)") from error

    def eval_joints(
        self, pred_vertices: Tensor, target: Tensor, j_regressor_h36m: Tensor | np.ndarray
    ) -> J.EvalJoints:
        """Run this protocol's joint pipeline (see ``ochmr_lit.eval.joints``).

        Args:
            pred_vertices: (B, V, 3) predicted vertices, metres, no translation.
            target: the GT in the pipeline's form: vertices (B, V, 3) for ``mesh_vs_mesh``, SPIN ``S``
                (B, 24, 4) for ``mesh_vs_spin24``, (B, 14, 3|4) for ``mesh_vs_lsp14``, (G, 19, 4) for
                ``panoptic_joints``; metres.
            j_regressor_h36m: (17, V).
        """
        if self.pipeline == "mesh_vs_mesh":
            return J.mesh_vs_mesh(pred_vertices, target, j_regressor_h36m, self.joint_set)
        if self.pipeline == "mesh_vs_spin24":
            return J.mesh_vs_spin24(
                pred_vertices, target, j_regressor_h36m, self.joint_set, gt_root=self.gt_root
            )  # type: ignore[arg-type]
        if self.pipeline == "mesh_vs_lsp14":
            return J.mesh_vs_lsp14(pred_vertices, target, j_regressor_h36m)
        if self.pipeline == "panoptic_joints":
            return J.panoptic_joints(pred_vertices, target, j_regressor_h36m)
        raise ConfigError(f"protocol {self.name!r} has no 3D joint pipeline (it evaluates {self.metrics})")


_SPIN_REG = "J_regressor_h36m (17) applied to the predicted vertices"
_KP_REG = (
    "projected body-model keypoints: SMPL joints + nose/eye/ear vertices (smpl_face29); head_top and "
    "neck from J_regressor_extra where the convention has them"
)
_PELVIS_BOTH = "regressed pelvis (H36M joint 0) subtracted from pred and GT before selecting the joints"
#: SPIN's eval.py uses H36M's S as stored: its preprocessing centres it on the H36M pelvis (stored as the
#: ``pelvis`` joint, then exactly zero); subtracting that joint changes nothing there and centres any other S.
_H36M_ROOT = "pred: regressed pelvis (H36M joint 0); GT S: its pelvis joint (zero in SPIN's pelvis-centred S)"

_PROTOCOL_LIST: tuple[Protocol, ...] = (
    Protocol(
        "3dpw",
        "3dpw",
        "lsp14",
        _SPIN_REG,
        _PELVIS_BOTH,
        True,
        "gt",
        _MESH_VS_MESH_METRICS,
        "test split, frames with campose_valid; box from poses2d, 1.2 x max side",
        "3DPW (SPIN protocol): MPJPE/PA-MPJPE on 14 joints, PVE on all vertices, mm",
        pipeline="mesh_vs_mesh",
    ),
    Protocol(
        "3dpw_pc",
        "3dpw",
        "lsp14",
        _SPIN_REG,
        _PELVIS_BOTH,
        True,
        "gt",
        _MESH_VS_MESH_METRICS,
        "any split; frames [a, b) of the six ROMP 3DPW-PC sequences (in_3dpw_pc)",
        "3DPW-PC (person-crowded, ROMP), SPIN joint protocol, mm",
        pipeline="mesh_vs_mesh",
    ),
    Protocol(
        "3dpw_occ",
        "3dpw",
        "lsp14",
        _SPIN_REG,
        _PELVIS_BOTH,
        True,
        "gt",
        _MESH_VS_MESH_METRICS,
        "3DPW-OCC sequences (PARE; in_3dpw_occ)",
        "3DPW-OCC (object/person occlusion, PARE), SPIN joint protocol, mm",
        pipeline="mesh_vs_mesh",
    ),
    Protocol(
        "3doh",
        "3doh",
        "lsp14",
        _SPIN_REG + ", H36M_TO_J14",
        "midpoint of the hips subtracted from pred (regressed hips) and GT (lsp_joints_3d)",
        False,
        "gt",
        ("mpjpe", "pa_mpjpe"),
        "test split (annots.json), 14 LSP joints",
        "3DOH (object occlusion): MPJPE/PA-MPJPE on 14 LSP joints, mm",
        pipeline="mesh_vs_lsp14",
    ),
    Protocol(
        "h36m_p1",
        "h36m",
        "lsp14",
        _SPIN_REG,
        _H36M_ROOT,
        False,
        "gt",
        ("mpjpe", "pa_mpjpe"),
        "S9 and S11, all cameras, every 5th frame; GT S (24 joints) -> 14 (J24_TO_J14)",
        "Human3.6M protocol 1, mm",
        pipeline="mesh_vs_spin24",
        gt_root="pelvis",
    ),
    Protocol(
        "h36m_p2",
        "h36m",
        "lsp14",
        _SPIN_REG,
        _H36M_ROOT,
        False,
        "gt",
        ("mpjpe", "pa_mpjpe"),
        "S9 and S11, camera 60457274, every 5th frame; GT S (24 joints) -> 14 (J24_TO_J14)",
        "Human3.6M protocol 2, mm",
        pipeline="mesh_vs_spin24",
        gt_root="pelvis",
    ),
    Protocol(
        "mpi_inf_3dhp",
        "mpi_inf_3dhp",
        "lsp14_h36m3",
        _SPIN_REG + ", H36M_TO_J17",
        "pred: regressed pelvis (H36M joint 0); GT S: its pelvis joint",
        False,
        "gt",
        ("mpjpe", "pa_mpjpe"),
        "test set TS1-TS6, valid frames; GT S (24 joints) -> 17 (J24_TO_J17)",
        "MPI-INF-3DHP (SPIN protocol, 17 joints), mm",
        pipeline="mesh_vs_spin24",
        gt_root="pelvis",
    ),
    Protocol(
        "panoptic",
        "panoptic",
        "h36m17",
        _SPIN_REG,
        "pred: regressed pelvis; GT: Panoptic body centre (read as the H36M pelvis, as CRMH)",
        False,
        "gt",
        ("matched_mpjpe",),
        f"sequences {', '.join(PANOPTIC_SEQUENCES)}; HD cameras 00_16 and 00_30",
        "CMU Panoptic (CRMH protocol): matched, visibility-masked MPJPE on 17 joints, no Procrustes, mm",
        pipeline="panoptic_joints",
    ),
    Protocol(
        "coco_ap",
        "coco",
        "coco17",
        _KP_REG,
        "none (2D keypoints in image pixels)",
        False,
        "gt",
        ("keypoint_ap",),
        "val2017 person keypoints",
        "COCO keypoint AP (pycocotools OKS)",
        ap_flavour="coco",
    ),
    Protocol(
        "ochuman_ap",
        "ochuman",
        "coco17",
        _KP_REG,
        "none (2D keypoints in image pixels)",
        False,
        "gt",
        ("keypoint_ap",),
        "OCHuman COCO-format test file (images after the first 2500)",
        "OCHuman keypoint AP (pycocotools OKS, COCO sigmas)",
        ap_flavour="coco",
    ),
    Protocol(
        "crowdpose_ap",
        "crowdpose",
        "crowdpose14",
        _KP_REG,
        "none (2D keypoints in image pixels)",
        False,
        "gt",
        ("keypoint_ap",),
        "CrowdPose test split",
        "CrowdPose keypoint AP (official semantics: its sigmas, maxDets 20, easy/medium/hard)",
        ap_flavour="crowdpose",
    ),
    Protocol(
        "synthcrowd",
        "synthcrowd",
        "lsp14",
        _SPIN_REG,
        _PELVIS_BOTH,
        False,
        "gt",
        _MESH_VS_MESH_METRICS,
        "generated SynthCrowd test split; results per occlusion bucket and for distractor people",
        "SynthCrowd (synthetic crowds), SPIN joint protocol, per occlusion bucket and distractor bucket, mm",
        pipeline="mesh_vs_mesh",
        occlusion_buckets=OCCLUSION_BUCKET_EDGES,
    ),
    Protocol(
        "detector_sweep",
        "coco+crowdpose+ochuman",
        "coco17|crowdpose14",
        _KP_REG,
        "none (2D keypoints in image pixels)",
        False,
        "detector",
        ("detector_sweep",),
        "COCO val2017, CrowdPose test, OCHuman test with Faster R-CNN person boxes and scores",
        "keypoint AP and kept box count per detection-score threshold (supplementary table 4)",
        score_thresholds=DEFAULT_THRESHOLDS,
    ),
)

for _ds, _conv, _flavour in (
    ("coco", "coco17", "coco"),
    ("crowdpose", "crowdpose14", "crowdpose"),
    ("ochuman", "coco17", "coco"),
    ("synthcrowd", "coco17", "coco"),  # simulated detections (ochmr_lit.reproduce.simulated_detector)
):
    _PROTOCOL_LIST += (
        Protocol(
            f"detector_sweep_{_ds}",
            _ds,
            _conv,
            _KP_REG,
            "none (2D keypoints in image pixels)",
            False,
            "detector",
            ("detector_sweep",),
            f"{_ds} keypoint evaluation split with detector boxes and scores",
            f"{_ds} keypoint AP and kept box count per detection-score threshold (supplementary table 4)",
            ap_flavour=_flavour,
            score_thresholds=DEFAULT_THRESHOLDS,
        ),
    )

#: Every protocol by name.
PROTOCOLS: Mapping[str, Protocol] = {p.name: p for p in _PROTOCOL_LIST}


def get_protocol(name: str) -> Protocol:
    """The protocol called ``name``; KeyError listing the known names otherwise."""
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise KeyError(
            f"unknown evaluation protocol {name!r}; known protocols: {sorted(PROTOCOLS)}"
        ) from None


def build_metrics(
    protocol: Protocol | str,
    keypoint_ground_truth: GroundTruthSource | None = None,
    keep_per_sample: bool = True,
    num_vertices: int = 6890,
    names: Collection[str] | None = None,
) -> dict[str, Metric]:
    """Fresh metric objects for a protocol, by metric name, in the order the protocol declares them.

    Args:
        protocol: a ``Protocol`` or its name.
        keypoint_ground_truth: COCO-format keypoint file (or dict); required by AP protocols.
        keep_per_sample: keep per-sample results in the mesh-error metrics.
        num_vertices: V for PVE.
        names: build only the protocol's metrics among these (e.g. :data:`MESH_ERRORS`); None: all of them.

    Returns:
        e.g. ``{"mpjpe": MPJPE, "pa_mpjpe": PAMPJPE, "pve": PVE}``; for the detector sweep the
        ``DetectorSweep`` metric under ``"detector_sweep"``.
    """
    p = get_protocol(protocol) if isinstance(protocol, str) else protocol
    out: dict[str, Metric] = {}
    for name in p.metrics:
        if names is not None and name not in names:
            continue
        if name == "mpjpe":
            out[name] = MPJPE(p.num_joints, keep_per_sample=keep_per_sample)
        elif name == "pa_mpjpe":
            out[name] = PAMPJPE(p.num_joints, keep_per_sample=keep_per_sample)
        elif name == "pa_mpjpe_depth":
            out[name] = PAMPJPEDepth(p.num_joints, keep_per_sample=keep_per_sample)
        elif name == "pa_mpjpe_plane":
            out[name] = PAMPJPEPlane(p.num_joints, keep_per_sample=keep_per_sample)
        elif name == "pve":
            out[name] = PVE(num_vertices, keep_per_sample=keep_per_sample)
        elif name == "matched_mpjpe":
            out[name] = MatchedMPJPE(p.num_joints)
        elif name in ("keypoint_ap", "detector_sweep"):
            if keypoint_ground_truth is None:
                raise ValueError(
                    f"protocol {p.name!r} needs keypoint_ground_truth: the COCO-format keypoint "
                    "annotation file of its evaluation split"
                )
            if "|" in p.joint_set:
                raise ValueError(
                    f"protocol {p.name!r} spans several datasets; build the metrics of one of "
                    f"{[n for n in PROTOCOLS if n.startswith(p.name + '_')]}"
                )
            sigmas = get_convention(p.joint_set).sigmas
            cls = KeypointAP if name == "keypoint_ap" else DetectorSweep
            kwargs: dict[str, Any] = {"thresholds": p.score_thresholds} if name == "detector_sweep" else {}
            out[name] = cls(keypoint_ground_truth, sigmas, flavour=p.ap_flavour, **kwargs)
        else:
            raise ValueError(f"protocol {p.name!r} names an unknown metric {name!r}")
    return out
