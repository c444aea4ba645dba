"""EMAWeights: the average follows its formula, validation and checkpoints use it, resume restores both."""

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ochmr_lit.lit.ema import RAW_STATE_KEY, EMAWeights


class Toy(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 1))
        self.register_buffer("faces", torch.arange(7))  # an integer buffer outside the network
        self.seen_in_validation: list[torch.Tensor] = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.mse_loss(self.model(x), y)

    def validation_step(self, batch, batch_idx):
        self.seen_in_validation.append(self.model[0].weight.detach().clone())

    def test_step(self, batch, batch_idx):
        return None

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _loader(n=64):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    return DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8)


def _trainer(tmp_path, callbacks, **kwargs):
    return L.Trainer(default_root_dir=tmp_path, accelerator="cpu", max_epochs=1, logger=False,
                     enable_progress_bar=False, enable_model_summary=False, callbacks=callbacks, **kwargs)


class Recorder(L.Callback):
    """Keeps every raw network state after each step, to recompute the average by hand."""

    def __init__(self):
        self.states = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.states.append({k: v.detach().clone() for k, v in pl_module.model.state_dict().items()})


def test_average_follows_the_formula_and_validation_uses_it(tmp_path):
    torch.manual_seed(0)
    module, recorder, ema = Toy(), Recorder(), EMAWeights(decay=0.9)
    initial = {k: v.detach().clone() for k, v in module.model.state_dict().items()}
    # the recorder runs first, so it sees the raw weights the average is updated with
    _trainer(tmp_path, [recorder, ema], num_sanity_val_steps=0).fit(module, _loader(), _loader(16))
    expected = {k: v.clone() for k, v in initial.items()}
    for n, state in enumerate(recorder.states):
        decay = min(0.9, (1 + n) / (10 + n))
        for k, v in state.items():
            expected[k] = expected[k] * decay + v * (1 - decay) if v.is_floating_point() else v.clone()
    assert ema.updates == len(recorder.states) == 8
    for k, v in module.model.state_dict().items():  # after training: the average is in the network
        assert torch.allclose(v.float(), expected[k].float(), atol=1e-6), k
    assert torch.allclose(module.seen_in_validation[0], expected["0.weight"], atol=1e-6)
    assert not torch.allclose(recorder.states[-1]["0.weight"], expected["0.weight"])
    assert torch.equal(module.faces, torch.arange(7))


def _checkpoint_with_raw_weights(tmp_path):
    """One epoch with the average, then a checkpoint written while the network holds the raw weights (as in the
    middle of training): (trainer, module, ema, recorder, path, loaded checkpoint)."""
    torch.manual_seed(0)
    module, recorder, ema = Toy(), Recorder(), EMAWeights(decay=0.9)
    trainer = _trainer(tmp_path, [recorder, ema], limit_val_batches=0)
    trainer.fit(module, _loader())
    path = tmp_path / "ema.ckpt"
    ema._swap_out(module)
    module.model.load_state_dict(recorder.states[-1])
    trainer.save_checkpoint(path)
    return trainer, module, ema, recorder, path, torch.load(path, weights_only=True)


def test_checkpoint_holds_the_average_and_resume_restores_the_raw_weights(tmp_path):
    _, _, ema, recorder, path, checkpoint = _checkpoint_with_raw_weights(tmp_path)
    assert torch.equal(checkpoint["state_dict"]["model.0.weight"], ema._average["0.weight"])
    assert torch.equal(checkpoint[RAW_STATE_KEY]["model.0.weight"], recorder.states[-1]["0.weight"])
    # resume: the network gets the raw weights back, the callback the average and its step count
    resumed_module, resumed = Toy(), EMAWeights(decay=0.9)
    _trainer(tmp_path, [resumed], limit_val_batches=0).fit(resumed_module, _loader(), ckpt_path=path)
    assert resumed.updates == 8  # nothing left to train in epoch 0: restored as saved
    assert torch.equal(resumed._average["0.weight"], ema._average["0.weight"])


def test_testing_from_a_checkpoint_evaluates_its_average(tmp_path):
    """``trainer.test(ckpt_path=...)`` (what ``select_checkpoint=best`` runs) must not put the raw weights back."""
    trainer, module, _, _, path, checkpoint = _checkpoint_with_raw_weights(tmp_path)
    assert not torch.equal(checkpoint["state_dict"]["model.0.weight"], checkpoint[RAW_STATE_KEY]["model.0.weight"])
    module.model[0].weight.data.zero_()  # whatever the network holds now, the test loads the checkpoint's average
    trainer.test(module, _loader(16), ckpt_path=path, verbose=False)
    assert torch.equal(module.model[0].weight, checkpoint["state_dict"]["model.0.weight"])
