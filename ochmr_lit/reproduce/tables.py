"""What each reproduction table trains and evaluates: rows, experiments, protocols, seeds.

A table is a list of :class:`Row` s. A row names one trained model (an experiment preset plus overrides);
rows of different tables that train the same thing share one run (the CoNorm-depth table's depth-2 row is
the occlusion table's OCHMR row with ground-truth context), so a run is trained once per seed. Rows whose
context is ``predicted`` use the context estimator that the table trains first (one per preset, seed 0).

Two presets: ``cpu`` trains on SynthCrowd at the size of the default experiment and evaluates on its test
split (``synthcrowd`` protocol: errors per occlusion bucket and keypoint AP); ``paper`` runs the paper's
recipe (``ochmr_r50``, ``spin_r50``, ``context_hrnet_w32_coco`` on the real datasets, 8 GPUs) and evaluates
with the protocols of the supplementary's tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field

TABLES = ("occlusion", "conorm_depth", "detector_sweep")
PRESETS = ("cpu", "paper")


@dataclass(frozen=True)
class Row:
    """One trained model of a table.

    Attributes:
        key: run folder name, shared by every table that trains the same model.
        label: the method as the table prints it.
        experiment: the ``experiments/`` preset it trains.
        overrides: Hydra overrides on top of the preset (``@CONTEXT_CHECKPOINT@`` is filled in).
        context: ``none``, ``gt`` or ``predicted`` (as printed in the table).
        depths: CoNorm depths (as printed in the table).
    """

    key: str
    label: str
    experiment: str
    overrides: tuple[str, ...] = ()
    context: str = "none"
    depths: tuple[int, ...] = ()

    @property
    def needs_context_estimator(self) -> bool:
        return self.context == "predicted"


@dataclass(frozen=True)
class Evaluation:
    """A protocol a paper-preset row is evaluated with after training.

    Attributes:
        column: the table's column header.
        data: the data config (``data=<name>``) holding the protocol's split.
        protocol: the protocol name (``ochmr_lit.eval.protocols``).
        metric: the metric the column shows (``mpjpe`` mm, ``pa_mpjpe`` mm, ``kp_AP`` fraction).
    """

    column: str
    data: str
    protocol: str
    metric: str


@dataclass(frozen=True)
class Preset:
    """The experiments of one preset."""

    context_experiment: str
    regressor_experiment: str
    spin_experiment: str
    # regressor runs: no test after training on the paper preset (its protocols run as evaluations)
    regressor_overrides: tuple[str, ...] = ()
    evaluations: dict[str, tuple[Evaluation, ...]] = field(default_factory=dict)
    sweep_datasets: tuple[str, ...] = ()


_TASK = ("task=regressor", "context_stage=null")

PRESET_SPECS: dict[str, Preset] = {
    "cpu": Preset(context_experiment="synthcrowd_context", regressor_experiment="synthcrowd",
                  spin_experiment="synthcrowd_spin", sweep_datasets=("synthcrowd",)),
    "paper": Preset(
        context_experiment="context_hrnet_w32_coco", regressor_experiment="ochmr_r50", spin_experiment="spin_r50",
        regressor_overrides=("test_after_fit=false",),
        evaluations={
            # supplementary table 1: person occlusion (3DPW-PC MPJPE, OCHuman AP), object occlusion
            # (3DPW-OCC, 3DOH MPJPE); ground-truth boxes
            "occlusion": (Evaluation("3DPW-PC MPJPE", "3dpw_pc", "3dpw_pc", "mpjpe"),
                          Evaluation("OCHuman AP", "ochuman", "ochuman_ap", "kp_AP"),
                          Evaluation("3DPW-OCC MPJPE", "3dpw_occ", "3dpw_occ", "mpjpe"),
                          Evaluation("3DOH MPJPE", "3doh", "3doh", "mpjpe")),
            # supplementary table 3: 3DPW-PC MPJPE and PA-MPJPE
            "conorm_depth": (Evaluation("MPJPE", "3dpw_pc", "3dpw_pc", "mpjpe"),
                             Evaluation("PA-MPJPE", "3dpw_pc", "3dpw_pc", "pa_mpjpe")),
        },
        sweep_datasets=("coco", "crowdpose", "ochuman")),
}


def table_rows(table: str, preset: str) -> list[Row]:
    """The rows of ``table`` under ``preset`` (see the module doc)."""
    if table not in TABLES:
        raise KeyError(f"table={table!r}: unknown table; choose one of {', '.join(TABLES)}")
    if preset not in PRESET_SPECS:
        raise KeyError(f"preset={preset!r}: unknown preset; choose one of {', '.join(PRESETS)}")
    spec = PRESET_SPECS[preset]
    extra = spec.regressor_overrides
    spin = Row("spin", "SPIN (baseline)", spec.spin_experiment, extra, "none", ())

    def ochmr(context: str, depth: int) -> Row:
        overrides = [*_TASK, f"model.context_source={context}", f"model.conorm_depths=[{depth}]", *extra]
        if context == "predicted":
            overrides.append("model.context_checkpoint=@CONTEXT_CHECKPOINT@")
        name = {"gt": "GT context", "predicted": "predicted context"}[context]
        return Row(f"ochmr_{context}_d{depth}", f"OCHMR ({name}, CoNorm@{depth})", spec.regressor_experiment,
                   tuple(overrides), context, (depth,))

    if table == "occlusion":
        return [spin, ochmr("gt", 2), ochmr("predicted", 2)]
    if table == "conorm_depth":
        return [spin, *(ochmr("gt", d) for d in (1, 2, 3, 4))]
    return [spin, ochmr("predicted", 2)]


def default_seeds(table: str) -> list[int]:
    """Seeds a table runs by default: two for the occlusion table (its spread), one otherwise."""
    return [0, 1] if table == "occlusion" else [0]
