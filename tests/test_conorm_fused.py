"""CoNorm's two output convolutions run as one: same outputs, gradients and state dict as the paper's listing."""

from __future__ import annotations

import pytest
import torch
from test_models_conorm import ListingCoNorm
from torch.utils._python_dispatch import TorchDispatchMode

from ochmr_lit.models import CoNorm


class ConvCounter(TorchDispatchMode):
    """Counts the convolutions dispatched while active."""

    def __init__(self) -> None:
        super().__init__()
        self.convolutions = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket is torch.ops.aten.convolution:
            self.convolutions += 1
        return func(*args, **(kwargs or {}))


def _pair(channels: int, hidden: int, seed: int = 0) -> tuple[ListingCoNorm, CoNorm]:
    torch.manual_seed(seed)
    listing = ListingCoNorm(channels, hidden)
    ours = CoNorm(channels, hidden)
    ours.load_state_dict(listing.state_dict(), strict=True)
    return listing, ours


def _forward_backward(block: torch.nn.Module, x: torch.Tensor, ctx: torch.Tensor, weights: torch.Tensor):
    x = x.clone().requires_grad_(True)
    ctx = ctx.clone().requires_grad_(True)
    out = block(x, ctx)
    (out * weights).sum().backward()
    grads = {name: p.grad.clone() for name, p in block.named_parameters()}
    return out.detach(), grads, x.grad, ctx.grad


PARAMETERS = [
    "phi_latent.0.weight", "phi_latent.0.bias", "phi_scale.weight", "phi_scale.bias", "phi_bias.weight", "phi_bias.bias"
]


def _compare(channels, hidden, feature_hw, context_hw, channels_last=False, dtype=torch.float32):
    listing, ours = _pair(channels, hidden)
    listing, ours = listing.to(dtype), ours.to(dtype)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, channels, *feature_hw, generator=gen).to(dtype)
    ctx = torch.rand(2, 2, *context_hw, generator=gen).to(dtype)
    weights = torch.randn(2, channels, *feature_hw, generator=gen).to(dtype)
    if channels_last:
        listing, ours = listing.to(memory_format=torch.channels_last), ours.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    return _forward_backward(listing, x, ctx, weights), _forward_backward(ours, x, ctx, weights)


@pytest.mark.parametrize(
    ("channels", "hidden", "feature_hw", "context_hw"),
    [(64, 128, (16, 16), (16, 16)), (32, 16, (7, 9), (64, 48)), (8, 4, (28, 28), (5, 3))],
)
def test_outputs_and_gradients_equal_the_listing_to_1e6(channels, hidden, feature_hw, context_hw):
    # float64: the one difference, the summation order of the latent's gradient, stays far below 1e-6
    (out_ref, grads_ref, gx_ref, gc_ref), (out, grads, gx, gc) = _compare(
        channels, hidden, feature_hw, context_hw, dtype=torch.float64
    )
    torch.testing.assert_close(out, out_ref, rtol=0, atol=1e-6)
    assert list(grads) == list(grads_ref) == PARAMETERS
    for name in PARAMETERS:
        assert grads_ref[name].abs().max() > 0, name
        torch.testing.assert_close(grads[name], grads_ref[name], rtol=0, atol=1e-6, msg=name)
    torch.testing.assert_close(gx, gx_ref, rtol=0, atol=1e-6)
    torch.testing.assert_close(gc, gc_ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("channels_last", [False, True])
def test_float32_training_layout(channels_last):
    """ResNet-18 layer-2 size in float32: outputs and head gradients bit-identical, upstream gradients equal up
    to summation order (one backward over 2C channels instead of two over C, then a sum)."""
    (out_ref, grads_ref, gx_ref, gc_ref), (out, grads, gx, gc) = _compare(
        128, 128, (28, 28), (56, 56), channels_last=channels_last
    )
    assert torch.equal(out, out_ref)
    assert torch.equal(gx, gx_ref)
    for name in ("phi_scale.weight", "phi_scale.bias", "phi_bias.weight", "phi_bias.bias"):
        assert torch.equal(grads[name], grads_ref[name]), name
    for name in ("phi_latent.0.weight", "phi_latent.0.bias"):
        scale = grads_ref[name].abs().max().item()
        torch.testing.assert_close(grads[name], grads_ref[name], rtol=0, atol=1e-5 * scale, msg=name)
    torch.testing.assert_close(gc, gc_ref, rtol=0, atol=1e-5 * gc_ref.abs().max().item())


def test_state_dict_keys_and_shapes_unchanged():
    listing, ours = _pair(512, 128)
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == {
        k: tuple(v.shape) for k, v in listing.state_dict().items()
    }
    assert tuple(ours.state_dict()["phi_scale.weight"].shape) == (512, 128, 3, 3)
    assert tuple(ours.state_dict()["phi_bias.bias"].shape) == (512,)
    # no fused copy is stored: the parameters are exactly the listing's
    assert sum(p.numel() for p in ours.parameters()) == 1_183_104


def test_one_convolution_for_both_heads():
    listing, ours = _pair(16, 8)
    x, ctx = torch.randn(1, 16, 6, 6), torch.rand(1, 2, 12, 12)
    counts = []
    for block in (listing, ours):
        with torch.no_grad(), ConvCounter() as counter:
            block(x, ctx)
        counts.append(counter.convolutions)
    assert counts == [3, 2]  # latent + scale + bias, against latent + (scale, bias) fused


def test_weight_changes_are_seen_by_the_next_forward():
    """Nothing is cached: edits, state-dict loads and optimizer steps all reach the fused convolution."""
    listing, ours = _pair(8, 4)
    x, ctx = torch.randn(2, 8, 5, 5), torch.rand(2, 2, 10, 10)
    with torch.no_grad():
        ours(x, ctx)  # a first forward, before the changes
        for block in (listing, ours):
            block.phi_bias.weight.mul_(-3.0)
            block.phi_scale.bias.add_(0.5)
    torch.testing.assert_close(ours(x, ctx), listing(x, ctx), rtol=0, atol=1e-6)

    opts = [torch.optim.SGD(b.parameters(), lr=0.1) for b in (listing, ours)]
    for _ in range(3):
        for block, opt in zip((listing, ours), opts, strict=True):
            opt.zero_grad()
            block(x, ctx).square().mean().backward()
            opt.step()
    torch.testing.assert_close(ours(x, ctx), listing(x, ctx), rtol=0, atol=1e-5)
    for (name, p), q in zip(ours.named_parameters(), listing.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6, msg=name)

    other = ListingCoNorm(8, 4)
    ours.load_state_dict(other.state_dict(), strict=True)
    torch.testing.assert_close(ours(x, ctx), other(x, ctx), rtol=0, atol=1e-6)


def test_bf16_autocast_matches_the_listing():
    listing, ours = _pair(32, 16)
    x, ctx = torch.randn(2, 32, 8, 8), torch.rand(2, 2, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        a, b = ours(x, ctx), listing(x, ctx)
        scale, shift = ours.scale_and_bias(torch.rand(2, 16, 8, 8))
    assert scale.dtype == shift.dtype == torch.bfloat16  # the fused convolution runs in bf16
    assert a.dtype == b.dtype == torch.float32  # fp32 features times bf16 scale
    assert torch.equal(a, b)
