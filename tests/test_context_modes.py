"""Context diagnostics: OCHMR evaluated with its own context maps, another person's, or zeros."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import TINY_OVERRIDES, compose_evaluate, save_module_checkpoint
from hydra.utils import instantiate

from ochmr_lit.errors import ConfigError
from ochmr_lit.eval.context_modes import (
    CONTEXT_MODES,
    apply_context_mode,
    context_mode_list,
    context_mode_name,
    shuffled_indices,
)
from ochmr_lit.evaluate import evaluate
from ochmr_lit.lit import MeshRegressorModule
from ochmr_lit.models import ContextEstimator
from ochmr_lit.runner import context_modes

TINY = {"backbone": "resnet18", "crop_size": 64, "channels_last": False, "num_vis": 0}


def _ochmr() -> MeshRegressorModule:
    """An untrained OCHMR (CoNorm after layer 2, randomly initialised, so the maps change the features)."""
    torch.manual_seed(0)
    return MeshRegressorModule(**TINY, conorm_depths=[2], hidden_channels=16, context_source="gt").eval()


def _spin() -> MeshRegressorModule:
    torch.manual_seed(0)
    return MeshRegressorModule(**TINY, conorm_depths=[], context_source="none").eval()


def _batch(size: int = 4) -> dict:
    generator = torch.Generator().manual_seed(1)
    return {"image": torch.randn(size, 3, 64, 64, generator=generator),
            "centermaps": torch.rand(size, 2, 16, 16, generator=generator)}


def test_shuffle_is_a_derangement_for_every_batch_of_two_or_more():
    for size in range(2, 9):
        source = shuffled_indices(size)
        assert sorted(source.tolist()) == list(range(size))  # a permutation: every map is used once
        assert bool((source != torch.arange(size)).all()), source  # nobody keeps their own
        maps = torch.arange(size, dtype=torch.float32).reshape(size, 1, 1, 1).expand(size, 2, 4, 4)
        moved = apply_context_mode(maps, "shuffled")
        assert moved[:, 0, 0, 0].tolist() == source.tolist() and moved.shape == maps.shape
    assert shuffled_indices(1).tolist() == [0]  # one person: there is no other map
    assert torch.equal(apply_context_mode(maps, "zeroed"), torch.zeros_like(maps))
    assert apply_context_mode(maps, "true") is maps


def test_mode_names_and_lists_are_validated_with_the_key_and_the_choices():
    assert CONTEXT_MODES == ("true", "exact", "shuffled", "zeroed")
    assert context_mode_name(True) == "true" and context_mode_name(" Shuffled ") == "shuffled"
    assert context_mode_list([True, "zeroed", "zeroed", "shuffled"]) == ["true", "zeroed", "shuffled"]
    with pytest.raises(ValueError, match=r"^context_mode='sideways': unknown context mode; use one of true, "
                                         r"exact, shuffled, zeroed$"):
        context_mode_name("sideways")
    with pytest.raises(ValueError, match=r"^context_mode=False: unknown context mode"):
        context_mode_name(False)
    with pytest.raises(ValueError, match=r"^context_modes=\[\]: give at least one context mode"):
        context_mode_list([], "context_modes")
    base = ["ckpt_path=x.ckpt", "run_dir=unused"]
    assert context_modes(compose_evaluate(base)) == ["true"]
    assert context_modes(compose_evaluate([*base, "context_mode=true"])) == ["true"]  # YAML boolean
    assert context_modes(compose_evaluate([*base, "context_mode=[true,exact,shuffled,zeroed]"])) == list(CONTEXT_MODES)
    assert context_modes(compose_evaluate([*base, "context_modes=[zeroed,true]"])) == ["zeroed", "true"]
    with pytest.raises(ValueError, match=r"^context_modes='off': unknown context mode"):
        context_modes(compose_evaluate([*base, "context_modes=[off]"]))


def test_shuffled_context_changes_an_ochmr_prediction_to_its_neighbours_maps():
    module, batch = _ochmr(), _batch()
    with torch.no_grad():
        own = module.predict_batch(batch)
        module.context_mode = "shuffled"
        shuffled = module.predict_batch(batch)
        # exactly what the regressor predicts for the same crops with the maps rolled by one
        rolled = module(batch["image"], batch["centermaps"][[3, 0, 1, 2]])
    assert torch.equal(shuffled["rotmat"], rolled.rotmat) and torch.equal(shuffled["cam"], rolled.cam)
    change = (shuffled["vertices"] - own["vertices"]).norm(dim=-1).amax(dim=1)  # (B,) metres
    assert bool((change > 1e-5).all()), change  # every person's mesh moves
    module.train()  # training always sees the own maps
    assert torch.equal(module.context_for(batch), batch["centermaps"])


def test_zeroed_context_reaches_the_regressor_as_zeros():
    module, batch = _ochmr(), _batch()
    seen = []
    handle = module.model.register_forward_pre_hook(lambda _, args: seen.append(args[1].clone()))
    with torch.no_grad():
        module.predict_batch(batch)
        module.context_mode = "zeroed"
        zeroed = module.predict_batch(batch)
        module.context_mode = "true"
        own = module.predict_batch(batch)
    handle.remove()
    assert torch.equal(seen[0], batch["centermaps"]) and torch.equal(seen[2], batch["centermaps"])
    assert seen[1].shape == (4, 2, 16, 16) and not bool(seen[1].any())
    assert not torch.equal(zeroed["betas"], own["betas"])


def _predicted_context_ochmr(tmp_path) -> MeshRegressorModule:
    """An untrained OCHMR on predicted context, its estimator (HRNet-W16) from a checkpoint in the run format."""
    weights = {f"model.{k}": v for k, v in ContextEstimator(width=16).state_dict().items()}
    checkpoint = tmp_path / "context.ckpt"
    torch.save({"state_dict": weights, "hyper_parameters": {"width": 16},
                "run_config": {"data": {"crop_size": 64}}}, checkpoint)
    torch.manual_seed(0)
    return MeshRegressorModule(**TINY, conorm_depths=[2], hidden_channels=16, context_source="predicted",
                               context_checkpoint=str(checkpoint)).eval()


def test_exact_context_gives_a_predicted_context_model_the_annotations_maps(tmp_path):
    module, batch = _predicted_context_ochmr(tmp_path), _batch()
    calls = []
    module.context_net.register_forward_hook(lambda *_: calls.append(1))
    own = module.context_for(batch)
    assert calls and not torch.equal(own, batch["centermaps"])  # its own maps: the estimator's
    calls.clear()
    module.context_mode = "exact"
    assert torch.equal(module.context_for(batch), batch["centermaps"]) and not calls
    module.train()  # training always reads the model's own maps
    assert not torch.equal(module.context_for(batch), batch["centermaps"]) and calls


def test_spin_model_takes_only_its_own_context(tmp_path):
    module = _spin()
    module.context_mode = "true"
    with pytest.raises(ValueError, match=r"^context_mode=shuffled: this model is the SPIN baseline "
                                         r"\(model.context_source=none, no CoNorm block\)"):
        module.context_mode = "shuffled"
    with pytest.raises(ValueError, match="context_mode='upside': unknown context mode"):
        module.context_mode = "upside"
    assert module.context_mode == "true"
    checkpoint = save_module_checkpoint(module, tmp_path)
    cfg = compose_evaluate(["experiment=synthcrowd_spin", f"ckpt_path={checkpoint}", f"run_dir={tmp_path}",
                            "context_mode=[true,zeroed]"])
    with pytest.raises(ConfigError, match=r"^context_mode=zeroed: this model is the SPIN baseline"):
        evaluate(cfg)  # refused before any data is read: a user error, printed in one line by the entry point
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_evaluate_every_mode_writes_each_and_the_diagnostics(tmp_path, tiny_synthcrowd):
    checkpoint = save_module_checkpoint(_ochmr(), tmp_path)
    run_dir = tmp_path / "eval"
    cfg = compose_evaluate(["experiment=synthcrowd", f"ckpt_path={checkpoint}", f"run_dir={run_dir}",
                            f"++data.root={tiny_synthcrowd}", "logger=csv", "context_mode=[true,exact,shuffled,zeroed]",
                            *TINY_OVERRIDES])
    results = evaluate(cfg)["results"]
    root = run_dir / "results"
    per_mode = {mode: json.loads((root / f"context_{mode}" / "metrics.json").read_text()) for mode in CONTEXT_MODES}
    combined = json.loads((root / "metrics.json").read_text())
    assert set(combined["context_diagnostics"]) == set(CONTEXT_MODES)
    for mode, saved in per_mode.items():
        assert combined["context_diagnostics"][mode]["mpjpe"] == pytest.approx(saved["metrics"]["mpjpe"])
        assert set(saved["references"]) == {"constant", "oracle"}
        assert (root / f"context_{mode}" / "per_sample.csv").is_file()
    assert combined["metrics"] == per_mode["true"]["metrics"] and results["metrics"]["mpjpe"] > 0
    people = per_mode["true"]["metrics"]["count_none"] + per_mode["true"]["metrics"]["count_partial"]
    assert people + per_mode["true"]["metrics"]["count_heavy"] >= 2  # a batch of several people: a real shuffle
    assert per_mode["shuffled"]["metrics"]["mpjpe"] != per_mode["true"]["metrics"]["mpjpe"]
    assert per_mode["zeroed"]["metrics"]["mpjpe"] != per_mode["true"]["metrics"]["mpjpe"]
    assert per_mode["exact"]["metrics"] == per_mode["true"]["metrics"]  # a GT-context model's own maps are exact
    # the references do not depend on the maps
    assert per_mode["zeroed"]["references"]["oracle"]["mpjpe"] == pytest.approx(
        per_mode["true"]["references"]["oracle"]["mpjpe"])
    table = (root / "context_diagnostics.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| context")]
    assert [row.split("|")[1].strip() for row in rows] == list(CONTEXT_MODES)
    header = next(line for line in table.splitlines() if line.startswith("| context"))
    column = [c.strip() for c in header.split("|")].index("MPJPE all")
    assert [row.split("|")[column].strip() for row in rows] == [
        f"{per_mode[mode]['metrics']['mpjpe']:.1f}" for mode in CONTEXT_MODES]
    assert "#### context diagnostics" in (root / "table.md").read_text()


@pytest.mark.slow
def test_exact_context_equals_the_true_mode_on_the_annotated_centres(tiny_run, tiny_synthcrowd, tmp_path):
    """A predicted-context run evaluated with ``exact`` maps scores what it scores when its centre cache holds the
    annotated centres instead of the estimator's (the same maps, rendered by the same code)."""
    _, outcome = tiny_run
    base = ["experiment=synthcrowd", f"ckpt_path={outcome['checkpoint']}", f"++data.root={tiny_synthcrowd}",
            *TINY_OVERRIDES]
    exact = evaluate(compose_evaluate([*base, f"run_dir={tmp_path / 'exact'}", "context_modes=[true,exact]"]))
    diagnostics = exact["results"]["context_diagnostics"]
    assert diagnostics["exact"]["mpjpe"] != pytest.approx(diagnostics["true"]["mpjpe"])  # the estimator's maps differ

    predicted = np.load(tmp_path / "exact" / "predicted_centres" / "test.npz")
    datamodule = instantiate(compose_evaluate([*base, "run_dir=unused"]).data, _convert_="all")
    by_id = {r.sample_id: r for r in datamodule.load_records("test")[0]}
    people = [by_id[str(s)] for s in predicted["sample_id"]]
    others = [np.asarray(r.image_centers, np.float64).reshape(-1, 2) for r in people]
    annotated = tmp_path / "annotated"
    annotated.mkdir()
    np.savez(annotated / "test.npz", sample_id=predicted["sample_id"],
             centre=np.stack([np.asarray(r.center, np.float64)[:2] for r in people]),
             others_offset=np.concatenate([[0], np.cumsum([len(o) for o in others])]).astype(np.int64),
             others=np.concatenate(others), checkpoint=predicted["checkpoint"])
    on_annotated = evaluate(compose_evaluate([*base, f"run_dir={tmp_path / 'annotated_run'}",
                                              f"++data.predicted_centres={annotated}"]))["results"]["metrics"]
    for name in ("mpjpe", "pa_mpjpe", "pve", "kp_AP"):
        assert diagnostics["exact"][name] == pytest.approx(on_annotated[name], rel=1e-5, abs=1e-7)
