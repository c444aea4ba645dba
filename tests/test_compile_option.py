"""``model.compile``: torch.compile of the trained network, with eager outputs and eager state-dict keys."""

from __future__ import annotations

import copy
import inspect

import lightning as L
import pytest
import torch
from torch._dynamo.utils import counters
from torch.utils.data import DataLoader, TensorDataset

from ochmr_lit.lit import ContextEstimatorModule, MeshRegressorModule
from ochmr_lit.models import ContextEstimator, MeshRegressor
from ochmr_lit.models.hmr import RegressorOutput

TINY = {"backbone": "resnet18", "crop_size": 64, "num_vis": 0}


def _tiny_regressor(**kwargs) -> MeshRegressorModule:
    """A ResNet-18 OCHMR module (CoNorm at depth 2, GT context) for 64 px crops, in eval mode."""
    torch.manual_seed(0)
    return MeshRegressorModule(**TINY, **kwargs).eval()


def _inputs(batch_size: int = 2, crop_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Random crops and (B, 2, crop/4, crop/4) context maps."""
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(batch_size, 3, crop_size, crop_size, generator=generator)
    context = torch.rand(batch_size, 2, crop_size // 4, crop_size // 4, generator=generator)
    return images, context


def _flat(out: RegressorOutput) -> torch.Tensor:
    """rotmat, betas and cam of a regressor output as one (B, 24 x 9 + 10 + 3) tensor."""
    return torch.cat([out.rotmat.flatten(1), out.betas, out.cam], dim=1)


def _outputs(module: MeshRegressorModule, images: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
    """The flattened outputs of one forward without gradients."""
    with torch.no_grad():
        return _flat(module(images, context))


class _Predicting(MeshRegressorModule):
    """The module with a ``predict_step`` on (images, context) batches, so a Trainer can run it."""

    def predict_step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return _flat(self(*batch))


@pytest.mark.slow
def test_compiled_regressor_matches_eager_and_checkpoints_load_both_ways(tmp_path):
    torch._dynamo.reset()
    counters.clear()
    torch.manual_seed(0)
    compiled = _Predicting(**TINY, compile=True)
    eager = _tiny_regressor()
    eager.load_state_dict(compiled.state_dict())
    images, context = _inputs()
    reference = _outputs(eager, images, context)
    assert reference.shape == (2, 24 * 9 + 10 + 3)

    # The Trainer calls configure_model, which compiles self.model in place; the forward runs compiled.
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, inference_mode=False,
                        default_root_dir=tmp_path)
    (result,) = trainer.predict(compiled, DataLoader(TensorDataset(images, context), batch_size=2))
    assert counters["stats"]["unique_graphs"] >= 1, "the compiled module ran eagerly"
    impl = compiled.model._compiled_call_impl
    compiled.configure_model()  # the Trainer calls the hook for every stage: a second call is a no-op
    assert impl is not None and compiled.model._compiled_call_impl is impl
    assert type(compiled.model) is MeshRegressor and eager.model._compiled_call_impl is None
    assert list(compiled.state_dict()) == list(eager.state_dict())
    assert not any("_orig_mod" in key for key in compiled.state_dict())
    torch.testing.assert_close(result, reference, atol=1e-4, rtol=1e-4)

    # The compiled run's checkpoint loads into an eager module, which gives the same outputs.
    path = tmp_path / "compiled.ckpt"
    trainer.save_checkpoint(path)
    restored = MeshRegressorModule.load_from_checkpoint(path, compile=False).eval()
    assert not restored.hparams.compile and restored.model._compiled_call_impl is None
    torch.testing.assert_close(_outputs(restored, images, context), reference, atol=1e-4, rtol=1e-4)

    # An eager module's weights load strictly into the compiled one, which then gives the eager outputs.
    with torch.no_grad():
        eager.model.fc1.bias.add_(0.1)  # new weights: the outputs match only if loading took effect
    changed = _outputs(eager, images, context)
    assert (changed - reference).abs().max() > 1e-3
    compiled.load_state_dict(eager.state_dict(), strict=True)
    torch.testing.assert_close(_outputs(compiled.eval(), images, context), changed, atol=1e-4, rtol=1e-4)


def test_compile_off_by_default_and_bad_mode_named():
    regressor = _tiny_regressor()
    regressor.configure_model()
    assert regressor.hparams.compile is False and regressor.model._compiled_call_impl is None
    estimator = ContextEstimatorModule(compile=True, compile_mode="fastest")
    with pytest.raises(ValueError, match=r"model\.compile_mode='fastest'"):
        estimator.configure_model()
    assert estimator.model._compiled_call_impl is None


def test_context_estimator_compiles_in_place_with_eager_keys():
    eager_keys = list(ContextEstimatorModule().state_dict())
    module = ContextEstimatorModule(compile=True, compile_mode="reduce-overhead")
    module.configure_model()
    assert type(module.model) is ContextEstimator and module.model._compiled_call_impl is not None
    assert list(module.state_dict()) == eager_keys and not any("_orig_mod" in key for key in eager_keys)
    copied = copy.deepcopy(module)  # a copy (or a module pickled into another process) comes back eager ...
    assert copied.model._compiled_call_impl is None
    copied.configure_model()  # ... and the hook compiles it again
    assert copied.model._compiled_call_impl is not None


@pytest.mark.parametrize(("model", "experiment", "target"), [("ochmr", "synthcrowd", MeshRegressorModule),
                                                              ("spin", "synthcrowd_spin", MeshRegressorModule),
                                                              ("context_hrnet", "synthcrowd_context",
                                                               ContextEstimatorModule)])
def test_model_configs_carry_compile_off_and_the_override_reaches_the_module(model, experiment, target):
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="ochmr_lit.configs", version_base="1.3"):
        default = compose(config_name="fit", overrides=[f"experiment={experiment}", f"model={model}"])
        on = compose(config_name="fit", overrides=[f"experiment={experiment}", f"model={model}", "model.compile=true",
                                                   "model.compile_mode=max-autotune"])
    assert default.model.compile is False and default.model.compile_mode is None
    assert on.model.compile is True and on.model.compile_mode == "max-autotune"
    assert {"compile", "compile_mode"} <= set(inspect.signature(target.__init__).parameters)
