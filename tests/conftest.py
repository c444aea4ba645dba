"""Test-wide settings: CPU only, no network, a private cache, few threads."""

import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
# One cache for the whole suite (synthetic body model, SynthCrowd), inside the checkout and git-ignored.
os.environ.setdefault("OCHMR_CACHE", str(Path(__file__).resolve().parents[1] / ".cache"))
# The suite runs in parallel processes (pytest-xdist, ``make test``): the cores are shared out among them, so that
# each process and every training subprocess it starts computes on its own share instead of all on every core. A
# serial run (``make test TEST_WORKERS=0``) leaves the training subprocesses every core.
_WORKERS = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
THREADS = max(1, min(2, (os.cpu_count() or 1) // int(_WORKERS or 1)))
if _WORKERS is not None:
    os.environ["OMP_NUM_THREADS"] = str(THREADS)

import lightning as L  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

import ochmr_lit.lit  # noqa: E402, F401  (torchvision must be imported before the first EGL context: it segfaults after)
from ochmr_lit.vis import render as render_module  # noqa: E402
from ochmr_lit.vis.render import RendererUnavailableError  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Real annotated fixtures (COCO, CrowdPose, OCHuman images and annotation files) committed with the tests;
#: tests/data/README.md says where they come from and what each is for.
FIXTURES = Path(__file__).resolve().parent / "data"
#: The files under FIXTURES that the tests read.
FIXTURE_FILES = (
    "coco/000000000785.jpg", "coco/000000040083.jpg", "coco/000000196141.jpg", "coco/000000197388.jpg",
    "coco/test_coco.json", "coco/test_coco_det_AP_H_56.json",
    "crowdpose/103319.jpg", "crowdpose/106848.jpg", "crowdpose/test_crowdpose.json",
    "crowdpose/test_crowdpose_det_AP_40.json",
    "ochuman/000817.jpg", "ochuman/003799.jpg", "ochuman/003896.jpg", "ochuman/test_ochuman.json",
)
#: The complete CrowdPose val annotations (2.7 MB) are not committed: ``OCHMR_CROWDPOSE_VAL`` names the file.
#: Tests that need it skip without it, in CI too.
CROWDPOSE_VAL_ENV = "OCHMR_CROWDPOSE_VAL"

torch.set_num_threads(THREADS)


class EndProcessGroup(L.Callback):
    """Ends a spawned DDP worker's process group together with the other ranks when the trainer is done.

    Left to interpreter shutdown, each gloo worker tears its group down on its own while the other rank may still
    be writing its results; now and then one of them aborts (``terminate called without an active exception``).
    A barrier, then ``destroy_process_group`` in every rank, ends them in step.
    """

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if dist.is_available() and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


def in_ci() -> bool:
    """Whether the tests run in CI (``CI=true``, as CI services set it)."""
    return os.environ.get("CI", "").strip().lower() == "true"


def require_fixture(*paths: Path) -> None:
    """Skips the test when a fixture file is missing; in CI (``CI=true``) fails it instead, naming the file.

    The fixtures travel with the repository, so a missing one in CI is a broken checkout (an LFS pointer, a
    sparse checkout, a file left out of a commit), not a reason to let the tests that read it pass unseen.
    """
    missing = [str(p) for p in paths if not Path(p).is_file()]
    if not missing:
        return
    message = f"fixture file(s) missing: {', '.join(missing)}"
    if in_ci():
        pytest.fail(f"{message} (CI=true: a missing fixture fails the test instead of skipping it)", pytrace=False)
    pytest.skip(message)


#: ``OCHMR_TEST_WITHOUT_RENDERER=1`` runs the suite as on a machine without headless OpenGL (EGL): every test
#: that draws a mesh must then skip (fail under CI=true) through :func:`require_renderer`, and nothing else fail.
WITHOUT_RENDERER_ENV = "OCHMR_TEST_WITHOUT_RENDERER"


def _no_renderer():
    raise RendererUnavailableError(f"headless OpenGL switched off for this test session ({WITHOUT_RENDERER_ENV}=1)")


#: The renderer's own context factory, kept for the tests of its error (whatever the switch above says).
REAL_GET_CONTEXT = render_module.get_context
if os.environ.get(WITHOUT_RENDERER_ENV, "").strip() == "1":
    render_module.get_context = _no_renderer


def require_renderer() -> None:
    """The one renderer policy of the suite: a test that needs headless OpenGL (EGL) calls this first.

    Meshes are drawn with it and SynthCrowd is rendered with it. Without EGL the test skips with the reason
    (which packages to install); in CI (``CI=true``) it fails instead, as a missing fixture does. A test that
    reaches the renderer without asking first (through a fixture that generates SynthCrowd, say) is reported
    the same way by :func:`pytest_runtest_makereport`, never as an error of its own.
    """
    try:
        render_module.get_context()
    except RendererUnavailableError as error:
        if in_ci():
            pytest.fail(f"{error} (CI=true: a test that needs the renderer fails instead of skipping)",
                        pytrace=False)
        pytest.skip(str(error))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A test (or its fixture) stopped by a missing renderer skips outside CI: :func:`require_renderer`'s policy."""
    outcome = yield
    report = outcome.get_result()
    if call.excinfo is None or not call.excinfo.errisinstance(RendererUnavailableError) or in_ci():
        return
    report.outcome = "skipped"
    report.longrepr = (str(item.path), item.location[1] or 0, f"Skipped: {call.excinfo.value}")


#: Session fixtures too slow to build once per parallel process: every test that uses one runs in the same
#: process (``make test`` distributes with ``--dist loadgroup``), which builds it once.
SHARED_SLOW_FIXTURES = ("tiny_tables",)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    for item in items:
        for name in SHARED_SLOW_FIXTURES:
            if name in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.xdist_group(name))


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """The real annotated fixtures (COCO, CrowdPose, OCHuman) in tests/data; see tests/data/README.md."""
    require_fixture(*(FIXTURES / name for name in FIXTURE_FILES))
    return FIXTURES


@pytest.fixture(scope="session")
def crowdpose_val_file() -> Path:
    """The complete CrowdPose val annotation file: optional, so its tests skip without it (in CI too)."""
    named = os.environ.get(CROWDPOSE_VAL_ENV)
    if not named:
        pytest.skip(f"optional CrowdPose val annotations: set {CROWDPOSE_VAL_ENV} to crowdpose_val.json "
                    "(crowdpose-api/annotations in the CrowdPose repository) to run this test")
    path = Path(named).expanduser()
    if not path.is_file():
        pytest.fail(f"{CROWDPOSE_VAL_ENV}={named}: no such file", pytrace=False)
    return path


@pytest.fixture(scope="session")
def tiny_synthcrowd(tmp_path_factory) -> Path:
    """A tiny SynthCrowd (train 4, val 2, test 2 images at 128x128), generated once per test session."""
    from ochmr_lit.data.synthcrowd import ensure_synthcrowd

    root = tmp_path_factory.mktemp("synthcrowd")
    ensure_synthcrowd(root, {"train": 4, "val": 2, "test": 2}, seed=0, image_size=(128, 128))
    return root


#: Shrinks any SynthCrowd experiment to seconds on a CPU (configs/debug/tiny.yaml: 4/2/2 images of 128x128, the
#: splits of :func:`tiny_synthcrowd`; batches of 2 on 64 px crops; ResNet-18; CSV logs only).
TINY_OVERRIDES = ["debug=tiny"]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_synthcrowd):
    """One tiny run of the default pipeline (context estimator, then OCHMR on its predictions)."""
    from hydra import compose, initialize_config_module

    from ochmr_lit.runner import run_fit

    run_dir = tmp_path_factory.mktemp("tiny_run")
    with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
        cfg = compose(config_name="fit", overrides=[
            "experiment=synthcrowd", f"run_dir={run_dir}", f"++data.root={tiny_synthcrowd}", "trainer.max_epochs=1",
            "++context_stage.trainer.max_epochs=1", "++context_stage.data={crop_size:64,map_size:16}",
            *TINY_OVERRIDES, "logger=default"])  # W&B too: its files are checked
    return run_dir, run_fit(cfg)


def save_module_checkpoint(module: L.LightningModule, folder: Path) -> str:
    """``folder/model.ckpt``: a Lightning checkpoint of ``module`` as it is (untrained modules for evaluate tests)."""
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False)
    trainer.strategy.connect(module)
    path = folder / "model.ckpt"
    trainer.save_checkpoint(path)
    return str(path)


def compose_evaluate(overrides: list[str]):
    """The ``evaluate`` entry point's config composed with ``overrides``."""
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
        return compose(config_name="evaluate", overrides=overrides)


def checkpoint_weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    """The floating-point tensors of a Lightning checkpoint's state dict."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    return {k: v for k, v in state["state_dict"].items() if v.is_floating_point()}


def assert_same_weights(a: dict, b: dict, tolerance: float = 1e-5) -> None:
    """Same keys and every tensor within ``tolerance`` (what an exactly resumed run must end with)."""
    assert a.keys() == b.keys()
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst < tolerance, f"weights differ by up to {worst}"


def run_reproduce(*args: str) -> subprocess.CompletedProcess:
    """``python -m ochmr_lit.reproduce`` in a subprocess (CPU, offline), as a user runs it."""
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", WANDB_MODE="offline", PYTHONPATH=str(REPO_ROOT))
    return subprocess.run([sys.executable, "-m", "ochmr_lit.reproduce", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=1200)


def tiny_table_settings(out: Path, synthcrowd: Path, *extra: str) -> list[str]:
    """Settings that shrink every run of a reproduction table to seconds (tiny SynthCrowd, one epoch)."""
    everything = ",".join(f"'{o}'" for o in [f"++data.root={synthcrowd}", *TINY_OVERRIDES, "logger=csv",
                                             "trainer.max_epochs=1", "trainer.enable_progress_bar=false"])
    return [f"out={out}", f"overrides=[{everything}]",
            "regressor_overrides=[model.backbone=resnet18,model.context_input_size=64]", "budget.cpu=[]",
            "context_budget.cpu=[]", *extra]


@pytest.fixture(scope="session")
def tiny_tables(tmp_path_factory, tiny_synthcrowd):
    """The detector-sweep table, then the occlusion table (seed 0) reusing its runs, at tiny sizes.

    Returns ``(root, sweep, occlusion)``: ``<out>/cpu`` and the two completed processes.
    """
    out = tmp_path_factory.mktemp("reproduction")
    sweep = run_reproduce("table=detector_sweep", *tiny_table_settings(out, tiny_synthcrowd))
    occlusion = run_reproduce("table=occlusion", "seeds=[0]", *tiny_table_settings(out, tiny_synthcrowd))
    return out / "cpu", sweep, occlusion
