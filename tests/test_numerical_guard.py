"""Non-finite losses and gradients skip the step (counted) and stop the run after too many in a row."""

import lightning as L
import pytest
import torch
from conftest import EndProcessGroup
from torch.utils.data import DataLoader, TensorDataset

from ochmr_lit.lit.guard import NonFiniteError, NumericalGuardMixin, all_finite


class _Tiny(NumericalGuardMixin, L.LightningModule):
    def __init__(self, bad_steps: set[int], kind: str = "loss", max_consecutive: int = 20):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        self.bad_steps, self.kind = bad_steps, kind
        self.max_consecutive_nonfinite = max_consecutive
        self.snapshots = []

    def training_step(self, batch, batch_idx):
        self.snapshots.append(self.layer.weight.detach().clone())
        loss = self.layer(batch[0]).pow(2).mean()
        if batch_idx in self.bad_steps:
            loss = loss * float("nan") if self.kind == "loss" else loss + 1e30 * self.layer.weight.sum() * 1e30
        return self.guard_loss(loss)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=0.1)


def _fit(module, steps=6):
    data = DataLoader(TensorDataset(torch.ones(steps, 2)), batch_size=1)
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, data)
    return trainer


@pytest.mark.parametrize("kind", ["loss", "gradient"])
def test_bad_steps_leave_weights_untouched_and_are_counted(kind):
    module = _Tiny(bad_steps={2, 3}, kind=kind)
    _fit(module)
    snaps = module.snapshots
    assert torch.equal(snaps[3], snaps[2]) and torch.equal(snaps[4], snaps[3])  # steps 2 and 3 changed nothing
    assert not torch.equal(snaps[2], snaps[1]) and not torch.equal(snaps[5], snaps[4])  # the others did
    assert module._skipped_steps == 2
    assert torch.isfinite(module.layer.weight).all()


def test_too_many_consecutive_bad_steps_stop_the_run_with_advice():
    with pytest.raises(NonFiniteError, match="3 consecutive steps with a non-finite loss.*model.optim.lr"):
        _fit(_Tiny(bad_steps={1, 2, 3}, max_consecutive=3))


class _TinyChecked(_Tiny):
    """Checks in each DDP process that the skipped steps changed nothing, and reports to a file."""

    def __init__(self, bad_steps: set[int], report: str):
        super().__init__(bad_steps)
        self.report = report

    def on_train_end(self):
        snaps = self.snapshots
        untouched = torch.equal(snaps[3], snaps[2]) and torch.equal(snaps[4], snaps[3])
        moved = not torch.equal(snaps[2], snaps[1]) and not torch.equal(snaps[5], snaps[4])
        with open(f"{self.report}.{self.global_rank}", "w") as f:
            f.write(f"{untouched} {moved} {self._skipped_steps} {bool(torch.isfinite(self.layer.weight).all())}")


def test_bad_steps_are_skipped_under_ddp_too(tmp_path):
    """Lightning refuses a None step under DDP: the guard's zero loss + dropped gradients skip it instead."""
    module = _TinyChecked(bad_steps={2, 3}, report=str(tmp_path / "rank"))
    data = DataLoader(TensorDataset(torch.ones(12, 2)), batch_size=1)
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", devices=2, strategy="ddp_spawn", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[EndProcessGroup()])
    trainer.fit(module, data)
    for rank in (0, 1):
        assert (tmp_path / f"rank.{rank}").read_text() == "True True 2 True"


@pytest.mark.parametrize("bad", [None, float("inf"), float("-inf"), float("nan")])
@pytest.mark.parametrize("where", [0, 3])
def test_all_finite_agrees_with_a_check_per_tensor(bad, where):
    generator = torch.Generator().manual_seed(where)
    tensors = [torch.randn(5, 7, generator=generator) * 1e30, torch.randn(3, generator=generator),
               torch.randn(2, 2, generator=generator).bfloat16(), torch.randn(64, generator=generator)]
    if bad is not None:
        tensors[where].view(-1)[-1] = bad
    assert all_finite(tensors) is all(bool(torch.isfinite(t).all()) for t in tensors) is (bad is None)
    assert all_finite([]) is True
