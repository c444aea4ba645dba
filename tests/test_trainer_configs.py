"""The trainer presets (cpu, gpu, ddp, ddp_cpu, slurm) with the paper experiments and synthcrowd: what each
resolves to, and the Lightning Trainer it builds on a CPU-only machine (the GPU presets with the accelerator
switched to the CPU and fewer devices). No model is built and nothing is trained."""

import os

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.pytorch.plugins.environments import LightningEnvironment, SLURMEnvironment
from lightning.pytorch.plugins.layer_sync import TorchSyncBatchNorm
from lightning.pytorch.plugins.precision import MixedPrecision, Precision
from lightning.pytorch.strategies import DDPStrategy, SingleDeviceStrategy
from lightning.pytorch.strategies.launchers import _SubprocessScriptLauncher
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from omegaconf import OmegaConf

from ochmr_lit import hardware

PAPER_EXPERIMENTS = ("ochmr_r50", "spin_r50", "context_hrnet_w32_coco")
EXPERIMENTS = (*PAPER_EXPERIMENTS, "synthcrowd")
TRAINERS = ("cpu", "gpu", "ddp", "ddp_cpu", "slurm")
CASES = [(experiment, trainer) for experiment in EXPERIMENTS for trainer in TRAINERS]

#: What trainer.precision=${ochmr_cpu_precision:} resolves to on this machine.
CPU_PRECISION = hardware.cpu_training_precision()
SLURM_PLUGIN = {"_target_": "lightning.pytorch.plugins.environments.SLURMEnvironment", "auto_requeue": True}

#: What each preset resolves to (sync_batchnorm and plugins: Lightning's defaults, False and None, where unset).
#: use_distributed_sampler is false everywhere: the data module's sampler shards over the ranks itself.
EXPECTED = {
    "cpu": {"accelerator": "cpu", "devices": 1, "num_nodes": 1, "strategy": "auto", "precision": CPU_PRECISION,
            "sync_batchnorm": False, "use_distributed_sampler": False, "plugins": None},
    "gpu": {"accelerator": "gpu", "devices": 1, "num_nodes": 1, "strategy": "auto", "precision": "bf16-mixed",
            "sync_batchnorm": False, "use_distributed_sampler": False, "plugins": None},
    "ddp": {"accelerator": "gpu", "devices": 8, "num_nodes": 1, "strategy": "ddp", "precision": "bf16-mixed",
            "sync_batchnorm": True, "use_distributed_sampler": False, "plugins": None},
    # torch's SyncBatchNorm takes GPU tensors only: the CPU DDP preset keeps per-process batch norm
    "ddp_cpu": {"accelerator": "cpu", "devices": 2, "num_nodes": 1, "strategy": "ddp", "precision": CPU_PRECISION,
                "sync_batchnorm": False, "use_distributed_sampler": False, "plugins": None},
    "slurm": {"accelerator": "gpu", "devices": 8, "num_nodes": 2, "strategy": "ddp", "precision": "bf16-mixed",
              "sync_batchnorm": True, "use_distributed_sampler": False, "plugins": [SLURM_PLUGIN]},
}
LIGHTNING_DEFAULTS = {"sync_batchnorm": False, "plugins": None}

#: The experiments' own trainer settings, which must survive a change of trainer preset.
EXPERIMENT_TRAINER = {
    "ochmr_r50": {"max_epochs": 100},
    "spin_r50": {"max_epochs": 100},
    "context_hrnet_w32_coco": {"max_epochs": 210},
    "synthcrowd": {"max_epochs": 6, "gradient_clip_val": 1.0},
}

#: Overrides that let each preset build a Trainer on a CPU-only machine: the GPU presets on the CPU, with two
#: processes instead of eight (and one node for slurm) and fp32 (CPU bf16 is the cpu preset's business).
ON_CPU = {
    "cpu": [],
    "ddp_cpu": [],
    "gpu": ["trainer.accelerator=cpu", "trainer.precision=32-true"],
    "ddp": ["trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=32-true"],
    "slurm": ["trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=32-true", "trainer.num_nodes=1"],
}


def compose_fit(experiment: str, overrides: list[str]):
    with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
        return compose(config_name="fit", overrides=[f"experiment={experiment}", *overrides])


def launch_check(strategy) -> None:
    """The cluster environment's check of the trainer's devices and nodes, which the launcher makes first when
    fitting starts (not when the Trainer is built)."""
    launcher = strategy.launcher
    launcher.cluster_environment.validate_settings(num_devices=launcher.num_processes, num_nodes=launcher.num_nodes)


def build_trainer(cfg, root):
    return instantiate(cfg.trainer, logger=False, enable_checkpointing=False, default_root_dir=str(root),
                       _convert_="all")


@pytest.fixture
def no_cluster(monkeypatch):
    """No SLURM or torchelastic variables from the machine running the tests: Lightning would pick them up."""
    for name in list(os.environ):
        if name.startswith("SLURM_") or name in ("TORCHELASTIC_RUN_ID", "MASTER_ADDR", "MASTER_PORT"):
            monkeypatch.delenv(name)
    return monkeypatch


def slurm_allocation(monkeypatch, nodes: int, tasks_per_node: int, node: int, local: int) -> None:
    """The variables srun sets for one task of an allocation of ``nodes`` x ``tasks_per_node`` tasks."""
    names = ",".join(f"gpu{i:02d}" for i in range(nodes))
    env = {
        "SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "ochmr_r50", "SLURM_NNODES": str(nodes),
        "SLURM_JOB_NUM_NODES": str(nodes), "SLURM_NODELIST": names, "SLURM_JOB_NODELIST": names,
        "SLURM_NTASKS": str(nodes * tasks_per_node), "SLURM_NTASKS_PER_NODE": str(tasks_per_node),
        "SLURM_PROCID": str(node * tasks_per_node + local), "SLURM_LOCALID": str(local), "SLURM_NODEID": str(node),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def test_cpu_precision_follows_the_hardware_module():
    assert CPU_PRECISION in ("bf16-mixed", "32-true")
    assert CPU_PRECISION == ("bf16-mixed" if hardware.cpu_has_native_bf16() else "32-true")


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiments_default_trainer(experiment):
    """The paper experiments train with 8-GPU DDP by default, the synthcrowd ones on one CPU process."""
    cfg = compose_fit(experiment, [])
    expected = "ddp" if experiment in PAPER_EXPERIMENTS else "cpu"
    resolved = OmegaConf.to_container(cfg.trainer, resolve=True)
    assert {k: resolved.get(k, LIGHTNING_DEFAULTS.get(k)) for k in EXPECTED[expected]} == EXPECTED[expected]


@pytest.mark.parametrize(("experiment", "trainer"), CASES)
def test_trainer_preset_resolves(experiment, trainer):
    resolved = OmegaConf.to_container(compose_fit(experiment, [f"trainer={trainer}"]).trainer, resolve=True)
    assert resolved["_target_"] == "lightning.Trainer"
    got = {k: resolved.get(k, LIGHTNING_DEFAULTS.get(k)) for k in EXPECTED[trainer]}
    assert got == EXPECTED[trainer]
    assert {k: resolved.get(k) for k in EXPERIMENT_TRAINER[experiment]} == EXPERIMENT_TRAINER[experiment]
    if trainer in ("cpu", "ddp_cpu"):
        assert resolved["precision"] in ("bf16-mixed", "32-true")


@pytest.mark.parametrize(("experiment", "trainer"), CASES)
def test_trainer_preset_instantiates_on_cpu(experiment, trainer, no_cluster, tmp_path):
    if trainer == "slurm":  # one node with two tasks, seen from its first task
        slurm_allocation(no_cluster, nodes=1, tasks_per_node=2, node=0, local=0)
    cfg = compose_fit(experiment, [f"trainer={trainer}", *ON_CPU[trainer]])
    expected = EXPECTED[trainer]
    resolved = OmegaConf.to_container(cfg.trainer, resolve=True)
    t = build_trainer(cfg, tmp_path)
    strategy = t.strategy

    assert t.num_nodes == resolved["num_nodes"] == 1
    assert t.num_devices == resolved["devices"]
    assert all(device.type == "cpu" for device in getattr(strategy, "parallel_devices", None) or [strategy.root_device])
    assert t.precision == resolved["precision"]
    assert type(strategy.precision_plugin) is (MixedPrecision if t.precision == "bf16-mixed" else Precision)
    assert t._accelerator_connector.use_distributed_sampler is False
    assert t.max_epochs == EXPERIMENT_TRAINER[experiment]["max_epochs"]
    assert t.global_rank == t.local_rank == t.node_rank == 0

    if expected["strategy"] == "auto":
        assert type(strategy) is SingleDeviceStrategy
        assert t.world_size == 1
        return
    assert type(strategy) is DDPStrategy
    assert t.world_size == strategy.world_size == 2
    assert strategy._get_process_group_backend() == "gloo"
    # Lightning hands sync_batchnorm=True to the strategy as a layer-sync plugin applied when fitting starts
    if expected["sync_batchnorm"]:
        assert isinstance(strategy._layer_sync, TorchSyncBatchNorm)
    else:
        assert strategy._layer_sync is None
    assert isinstance(strategy.launcher, _SubprocessScriptLauncher)
    launch_check(strategy)  # what the launcher checks first when fitting starts
    if trainer == "slurm":
        # srun starts every process: the launcher starts none itself
        assert type(strategy.cluster_environment) is SLURMEnvironment
        assert strategy.cluster_environment.auto_requeue is True
        assert strategy.cluster_environment.creates_processes_externally
    else:
        assert type(strategy.cluster_environment) is LightningEnvironment
        assert not strategy.cluster_environment.creates_processes_externally


@pytest.mark.parametrize("experiment", PAPER_EXPERIMENTS)
def test_slurm_preset_shape_matches_a_two_node_allocation(experiment, no_cluster, tmp_path):
    """The slurm preset as it is (2 nodes x 8 devices, accelerator on the CPU) in its allocation of
    --nodes=2 --ntasks-per-node=8, seen from task 3 of the second node; Lightning takes the ranks from SLURM."""
    slurm_allocation(no_cluster, nodes=2, tasks_per_node=8, node=1, local=3)
    cfg = compose_fit(experiment, ["trainer=slurm", "trainer.accelerator=cpu", "trainer.precision=32-true"])
    t = build_trainer(cfg, tmp_path)
    assert type(t.strategy) is DDPStrategy
    assert type(t.strategy.cluster_environment) is SLURMEnvironment
    assert isinstance(t.strategy._layer_sync, TorchSyncBatchNorm)
    assert (t.num_nodes, t.num_devices, t.world_size) == (2, 8, 16)
    assert (t.node_rank, t.local_rank, t.global_rank) == (1, 3, 11)
    launch_check(t.strategy)
    assert SLURMEnvironment.resolve_root_node_address(os.environ["SLURM_NODELIST"]) == "gpu00"


def test_slurm_preset_refuses_an_allocation_of_another_shape(no_cluster, tmp_path):
    """trainer.devices must match --ntasks-per-node: Lightning says so when fitting starts, before any step."""
    slurm_allocation(no_cluster, nodes=2, tasks_per_node=4, node=0, local=0)
    cfg = compose_fit("ochmr_r50", ["trainer=slurm", "trainer.accelerator=cpu", "trainer.precision=32-true"])
    t = build_trainer(cfg, tmp_path)
    with pytest.raises(ValueError, match="--ntasks-per-node=4"):
        launch_check(t.strategy)


@pytest.mark.parametrize("trainer", ["gpu", "ddp", "slurm"])
def test_gpu_presets_without_a_gpu_say_so(trainer, no_cluster, tmp_path):
    """On a machine without a GPU the GPU presets stop at the Trainer with Lightning's own message."""
    if torch.cuda.is_available() or torch.backends.mps.is_available():
        pytest.skip("this machine has a GPU")
    if trainer == "slurm":
        slurm_allocation(no_cluster, nodes=2, tasks_per_node=8, node=0, local=0)
    cfg = compose_fit("ochmr_r50", [f"trainer={trainer}"])
    assert cfg.trainer.accelerator == "gpu" and cfg.trainer.precision == "bf16-mixed"
    with pytest.raises(InstantiationException) as raised:
        build_trainer(cfg, tmp_path)
    cause = raised.value.__cause__
    assert isinstance(cause, MisconfigurationException)
    assert "gpu" in str(cause).lower() or "cuda" in str(cause).lower()
