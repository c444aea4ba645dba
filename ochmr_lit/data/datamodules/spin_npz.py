"""Datasets in SPIN's preprocessed npz format: H36M, MPI-INF-3DHP, LSP, LSP-extended, MPII."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path

from ochmr_lit.data.datamodules.base import TopDownDataModule
from ochmr_lit.data.datamodules.eval_targets import EvalTargetsMixin
from ochmr_lit.data.readers.spin_npz import load_spin_npz_records
from ochmr_lit.data.schema import PersonRecord


class SpinNpzDataModule(EvalTargetsMixin, TopDownDataModule):
    """A dataset in SPIN's preprocessed npz format, one npz per split; evaluation samples carry ``joints_spin24``.

    Args:
        npz_files: split -> SPIN npz (``imgname, center, scale, part``, optionally ``S, pose, shape, has_smpl``).
        image_root: folder the npz ``imgname`` entries are relative to, or split -> folder where the splits'
            images live in different releases (LSP: training images from the original-resolution release,
            test images from ``lsp_dataset``).
        name: dataset name stored in the samples.
        **kwargs: :class:`TopDownDataModule` settings.
    """

    eval_targets = {"joints_spin24": "S"}

    def __init__(self, npz_files: dict[str, str], image_root: str | Mapping[str, str], name: str, **kwargs):
        super().__init__(**kwargs)
        self.name = name
        self.npz_files = {k: Path(v) for k, v in npz_files.items() if v}
        if isinstance(image_root, Mapping):
            self.image_roots = {k: Path(v) for k, v in image_root.items() if v}
            missing = sorted(set(self.npz_files) - set(self.image_roots))
            if missing:
                raise ValueError(f"{name}: data.image_root names no folder for the splits {missing} of "
                                 f"data.npz_files; give one folder, or one per split")
        else:
            self.image_roots = {k: Path(image_root) for k in self.npz_files}

    def load_records(self, split: str) -> tuple[list[PersonRecord], Counter]:
        if split not in self.npz_files:
            raise KeyError(f"{self.name} has no '{split}' split configured; data.npz_files has "
                           f"{sorted(self.npz_files)}")
        return load_spin_npz_records(self.npz_files[split], self.image_roots[split], self.name, self.scale_factor,
                                     key=f"data.npz_files.{split}")


class H36MDataModule(SpinNpzDataModule):
    """Human3.6M from SPIN's npz files: ``h36m_valid_protocol1.npz`` (all cameras, protocol ``h36m_p1``) or
    ``h36m_valid_protocol2.npz`` (camera 60457274, ``h36m_p2``) for evaluation, ``h36m_train.npz`` for training."""

    def __init__(self, npz_files: dict[str, str], image_root: str, name: str = "h36m", **kwargs):
        super().__init__(npz_files, image_root, name=name, **kwargs)


class MPIINF3DHPDataModule(SpinNpzDataModule):
    """MPI-INF-3DHP from SPIN's npz files: ``mpi_inf_3dhp_valid.npz`` (test set TS1-TS6, protocol
    ``mpi_inf_3dhp``, 17 joints) for evaluation, ``mpi_inf_3dhp_train.npz`` for training."""

    def __init__(self, npz_files: dict[str, str], image_root: str, name: str = "mpi_inf_3dhp", **kwargs):
        super().__init__(npz_files, image_root, name=name, **kwargs)


class LSPDataModule(SpinNpzDataModule):
    """Leeds Sports Pose from SPIN's npz files: ``lsp_dataset_original_train.npz`` (the 1000 training images of
    the original-resolution release) for training, ``lsp_dataset_test.npz`` (the 1000 test images of the
    ``lsp_dataset`` release) for evaluation. 2D joints only (14 LSP joints in ``part``; face joints masked)."""

    def __init__(self, npz_files: dict[str, str], image_root: str | Mapping[str, str], name: str = "lsp",
                 **kwargs):
        super().__init__(npz_files, image_root, name=name, **kwargs)


class LSPExtendedDataModule(SpinNpzDataModule):
    """LSP-extended (10 000 training images, SPIN's ``lspet``) from SPIN's ``hr-lspet_train.npz``; 2D joints
    only (14 LSP joints in ``part``), training split only."""

    def __init__(self, npz_files: dict[str, str], image_root: str | Mapping[str, str], name: str = "lspet",
                 **kwargs):
        super().__init__(npz_files, image_root, name=name, **kwargs)


class MPIIDataModule(SpinNpzDataModule):
    """MPII Human Pose from SPIN's ``mpii_train.npz`` (one row per annotated person, 16 MPII joints in ``part``;
    face joints masked), training split only."""

    def __init__(self, npz_files: dict[str, str], image_root: str | Mapping[str, str], name: str = "mpii",
                 **kwargs):
        super().__init__(npz_files, image_root, name=name, **kwargs)
