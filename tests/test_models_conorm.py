"""CoNorm against the paper's listing (OCHMR supplementary, section 4), re-typed below."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from ochmr_lit.models import CoNorm


class ListingCoNorm(nn.Module):
    """Listing 1 of the OCHMR supplementary, as printed (comments and docstrings left out)."""

    def __init__(self, num_channels, hidden_channels=128):
        super().__init__()
        self.phi_latent = nn.Sequential(nn.Conv2d(2, hidden_channels, kernel_size=3, padding=1), nn.ReLU())
        self.phi_scale = nn.Conv2d(hidden_channels, num_channels, kernel_size=3, padding=1)
        self.phi_bias = nn.Conv2d(hidden_channels, num_channels, kernel_size=3, padding=1)

    def forward(self, X, context):
        context = F.interpolate(context, size=X.size()[2:], mode="bilinear", align_corners=False)
        lambda_ = self.phi_latent(context)
        scale = self.phi_scale(lambda_)
        bias = self.phi_bias(lambda_)
        return X * scale + bias


@pytest.mark.parametrize(
    ("channels", "hidden", "feature_hw", "context_hw"),
    [(64, 128, (16, 16), (16, 16)), (32, 16, (7, 9), (64, 48)), (8, 4, (28, 28), (5, 3))],
)
def test_matches_paper_listing_for_same_weights(channels, hidden, feature_hw, context_hw):
    torch.manual_seed(0)
    listing = ListingCoNorm(channels, hidden)
    ours = CoNorm(channels, hidden)
    # Same parameter names and shapes: the listing's state dict loads strictly.
    assert list(ours.state_dict()) == list(listing.state_dict())
    ours.load_state_dict(listing.state_dict(), strict=True)
    x = torch.randn(2, channels, *feature_hw)
    ctx = torch.rand(2, 2, *context_hw)
    expected = listing(x, ctx)
    out = ours(x, ctx)
    assert out.shape == (2, channels, *feature_hw)
    assert torch.equal(out, expected)


def test_layers_and_parameter_count():
    block = CoNorm(512)  # after ResNet-50 layer2, the paper's best depth
    assert [name for name, _ in block.named_children()] == ["phi_latent", "phi_scale", "phi_bias"]
    conv = block.phi_latent[0]
    assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.padding) == (2, 128, (3, 3), (1, 1))
    assert isinstance(block.phi_latent[1], nn.ReLU)
    for head in (block.phi_scale, block.phi_bias):
        assert (head.in_channels, head.out_channels, head.kernel_size, head.padding) == (
            128,
            512,
            (3, 3),
            (1, 1),
        )
    # 2*128*9 + 128 (latent) + 2 * (128*512*9 + 512) (scale, bias)
    assert sum(p.numel() for p in block.parameters()) == 1_183_104


def test_affine_modulation_with_constant_scale_and_bias():
    torch.manual_seed(1)
    block = CoNorm(4, hidden_channels=8)
    with torch.no_grad():
        for head, value in ((block.phi_scale, 2.0), (block.phi_bias, -0.5)):
            head.weight.zero_()
            head.bias.fill_(value)
    x = torch.randn(3, 4, 5, 6)
    out = block(x, torch.rand(3, 2, 10, 12))
    torch.testing.assert_close(out, 2.0 * x - 0.5, rtol=0, atol=0)


def test_context_resized_bilinearly_without_corner_alignment():
    # Centre-tap unit weights make scale = 1 + the resized local map, so the output exposes the resize.
    block = CoNorm(1, hidden_channels=1)
    with torch.no_grad():
        latent = block.phi_latent[0]
        latent.weight.zero_()
        latent.weight[0, 0, 1, 1] = 1.0
        latent.bias.zero_()
        block.phi_scale.weight.zero_()
        block.phi_scale.weight[0, 0, 1, 1] = 1.0
        block.phi_scale.bias.fill_(1.0)
        block.phi_bias.weight.zero_()
        block.phi_bias.bias.zero_()
    ctx = torch.zeros(1, 2, 2, 2)
    ctx[0, 0] = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    out = block(torch.ones(1, 1, 4, 4), ctx)
    # Bilinear 2x2 -> 4x4, align_corners=False: first row [0, .25, .75, 1], first column [0, .5, 1.5, 2]
    # (align_corners=True would give thirds).
    assert out[0, 0, 0].tolist() == [1.0, 1.25, 1.75, 2.0]
    assert out[0, 0, :, 0].tolist() == [1.0, 1.5, 2.5, 3.0]


def test_gradients_reach_parameters_and_context():
    torch.manual_seed(2)
    block = CoNorm(6, hidden_channels=5)
    x = torch.randn(2, 6, 8, 8, requires_grad=True)
    ctx = torch.rand(2, 2, 16, 16, requires_grad=True)
    block(x, ctx).square().sum().backward()
    for name, p in block.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert ctx.grad is not None and ctx.grad.abs().sum() > 0
    assert x.grad is not None and x.grad.abs().sum() > 0
