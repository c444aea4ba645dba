"""HRNet (Sun et al., CVPR 2019) with the official pose model's module structure and state-dict key names.

Key names follow ``lib/models/pose_hrnet.py`` of the official code (conv1, bn1, conv2, bn2, layer1,
transition1..3, stage2..4 of HighResolutionModules with ``branches`` and ``fuse_layers``, final_layer), so
its COCO checkpoints load key-for-key. Where the official code stores ``None`` in a ModuleList (identity
transitions and the diagonal of ``fuse_layers``) this one stores a parameter-free ``nn.Identity``: the
state-dict keys are the same. The ResNet-style blocks are HRNet's own (BatchNorm momentum 0.1, BasicBlock
without bias), written here because torchvision has no HRNet.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

#: Downsampling of HRNet's lowest-resolution branch: input sides must be multiples of it.
HRNET_STRIDE = 32

BN_MOMENTUM = 0.1


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (expansion 1)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + residual)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> 1x1 residual block (expansion 4)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


BLOCKS: dict[str, type[BasicBlock] | type[Bottleneck]] = {"BASIC": BasicBlock, "BOTTLENECK": Bottleneck}


@dataclass(frozen=True)
class StageConfig:
    """One HRNet stage, as ``MODEL.EXTRA.STAGEk`` of the official configs.

    Attributes:
        num_modules: how many HighResolutionModules the stage stacks.
        num_blocks: residual blocks per branch, one entry per branch.
        num_channels: channels per branch (before block expansion), highest resolution first.
        block: "BASIC" or "BOTTLENECK".
    """

    num_modules: int
    num_blocks: tuple[int, ...]
    num_channels: tuple[int, ...]
    block: str = "BASIC"

    @property
    def num_branches(self) -> int:
        return len(self.num_channels)


@dataclass(frozen=True)
class HRNetConfig:
    """Stages 2-4 of an HRNet pose model (stage 1 is four 64-channel Bottlenecks in every variant)."""

    stage2: StageConfig
    stage3: StageConfig
    stage4: StageConfig

    @classmethod
    def from_width(cls, width: int) -> HRNetConfig:
        """The official config of HRNet-W``width``: channels w, 2w, 4w, 8w; 1/4/3 modules; 4 blocks each."""
        c = (width, 2 * width, 4 * width, 8 * width)
        return cls(
            stage2=StageConfig(1, (4, 4), c[:2]),
            stage3=StageConfig(4, (4, 4, 4), c[:3]),
            stage4=StageConfig(3, (4, 4, 4, 4), c),
        )


def _conv_bn(cin: int, cout: int, kernel: int, stride: int, relu: bool) -> nn.Sequential:
    """Conv (no bias) + BatchNorm (+ ReLU), the unit of HRNet's transitions and fuse layers."""
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class HighResolutionModule(nn.Module):
    """Parallel branches at 1/1, 1/2, ... of the top resolution, then exchange across resolutions.

    ``fuse_layers[i][j]`` brings branch j to branch i's resolution and width: 1x1 conv + BN + nearest
    upsampling when j > i, a chain of stride-2 3x3 convs when j < i, identity when j == i. With
    ``multi_scale_output=False`` only the highest-resolution output is produced.
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        num_blocks: tuple[int, ...],
        in_channels: tuple[int, ...],
        num_channels: tuple[int, ...],
        multi_scale_output: bool = True,
    ) -> None:
        super().__init__()
        n = len(num_channels)
        if not (len(num_blocks) == len(in_channels) == n):
            raise ValueError(
                f"HRNet module: num_blocks {num_blocks}, in_channels {in_channels} and num_channels "
                f"{num_channels} must have one entry per branch"
            )
        self.num_branches = n
        self.branches = nn.ModuleList(
            self._make_branch(block, num_blocks[i], in_channels[i], num_channels[i]) for i in range(n)
        )
        self.out_channels = tuple(c * block.expansion for c in num_channels)
        self.fuse_layers = self._make_fuse_layers(multi_scale_output) if n > 1 else None
        self.relu = nn.ReLU(inplace=False)

    @staticmethod
    def _make_branch(
        block: type[BasicBlock] | type[Bottleneck], blocks: int, cin: int, channels: int
    ) -> nn.Sequential:
        cout = channels * block.expansion
        downsample = None
        if cin != cout:
            downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, 1, bias=False), nn.BatchNorm2d(cout, momentum=BN_MOMENTUM)
            )
        layers = [block(cin, channels, 1, downsample)]
        layers += [block(cout, channels) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def _make_fuse_layers(self, multi_scale_output: bool) -> nn.ModuleList:
        ch = self.out_channels
        fuse_layers = nn.ModuleList()
        for i in range(self.num_branches if multi_scale_output else 1):
            row = nn.ModuleList()
            for j in range(self.num_branches):
                if j > i:
                    row.append(
                        nn.Sequential(
                            nn.Conv2d(ch[j], ch[i], 1, 1, 0, bias=False),
                            nn.BatchNorm2d(ch[i]),
                            nn.Upsample(scale_factor=2 ** (j - i), mode="nearest"),
                        )
                    )
                elif j == i:
                    row.append(nn.Identity())
                else:
                    # i - j stride-2 convs: all keep branch j's width and end in ReLU, except the last.
                    steps = [_conv_bn(ch[j], ch[j], 3, 2, relu=True) for _ in range(i - j - 1)]
                    steps.append(_conv_bn(ch[j], ch[i], 3, 2, relu=False))
                    row.append(nn.Sequential(*steps))
            fuse_layers.append(row)
        return fuse_layers

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        """(B, C_i, H / 2^i, W / 2^i) per branch -> the same layout (only branch 0 without multi-scale)."""
        xs = [branch(x) for branch, x in zip(self.branches, xs, strict=True)]
        if self.fuse_layers is None:
            return xs
        out = []
        for row in self.fuse_layers:
            y = row[0](xs[0])
            for j in range(1, self.num_branches):
                y = y + row[j](xs[j])
            out.append(self.relu(y))
        return out


class HRNet(nn.Module):
    """HRNet pose network (``PoseHighResolutionNet``) with the official key names.

    Args:
        width: 32 (HRNet-W32, channels 32/64/128/256) or 48 (HRNet-W48) -- any positive width works.
        num_joints: output channels of ``final_layer`` (17 for the COCO model); None builds no final layer
            and :meth:`forward` returns the features.
        final_conv_kernel: kernel of ``final_layer`` (1 in the official configs).
        config: explicit stage config; default :meth:`HRNetConfig.from_width`.
    """

    def __init__(
        self,
        width: int = 32,
        num_joints: int | None = 17,
        final_conv_kernel: int = 1,
        config: HRNetConfig | None = None,
    ) -> None:
        super().__init__()
        cfg = config or HRNetConfig.from_width(width)
        self.config = cfg
        self.conv1 = nn.Conv2d(3, 64, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(64, 64, 3, 2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(64, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        downsample = nn.Sequential(
            nn.Conv2d(64, 256, 1, 1, bias=False), nn.BatchNorm2d(256, momentum=BN_MOMENTUM)
        )
        self.layer1 = nn.Sequential(
            Bottleneck(64, 64, 1, downsample), *(Bottleneck(256, 64) for _ in range(3))
        )

        # Built in the official order (transition1, stage2, transition2, ...) so state-dict keys come out
        # in the same order as the official checkpoint's.
        channels = self._branch_channels(cfg.stage2)
        self.transition1 = self._make_transition((256,), channels)
        self.stage2, pre = self._make_stage(cfg.stage2, channels, multi_scale_output=True)
        channels = self._branch_channels(cfg.stage3)
        self.transition2 = self._make_transition(pre, channels)
        self.stage3, pre = self._make_stage(cfg.stage3, channels, multi_scale_output=True)
        channels = self._branch_channels(cfg.stage4)
        self.transition3 = self._make_transition(pre, channels)
        self.stage4, pre = self._make_stage(cfg.stage4, channels, multi_scale_output=False)
        self.out_channels = pre[0]

        self.final_layer: nn.Conv2d | None = None
        if num_joints is not None:
            self.final_layer = nn.Conv2d(
                pre[0], num_joints, final_conv_kernel, 1, 1 if final_conv_kernel == 3 else 0
            )
        self.init_weights()

    @staticmethod
    def _branch_channels(cfg: StageConfig) -> tuple[int, ...]:
        return tuple(c * BLOCKS[cfg.block].expansion for c in cfg.num_channels)

    @staticmethod
    def _make_transition(pre: tuple[int, ...], cur: tuple[int, ...]) -> nn.ModuleList:
        layers = nn.ModuleList()
        for i, cout in enumerate(cur):
            if i < len(pre):
                layers.append(nn.Identity() if pre[i] == cout else _conv_bn(pre[i], cout, 3, 1, relu=True))
            else:
                # New lower-resolution branches grow from the last existing one by stride-2 convs.
                steps = []
                for j in range(i + 1 - len(pre)):
                    out = cout if j == i - len(pre) else pre[-1]
                    steps.append(_conv_bn(pre[-1], out, 3, 2, relu=True))
                layers.append(nn.Sequential(*steps))
        return layers

    @staticmethod
    def _make_stage(
        cfg: StageConfig, in_channels: tuple[int, ...], multi_scale_output: bool
    ) -> tuple[nn.Sequential, tuple[int, ...]]:
        block = BLOCKS[cfg.block]
        modules = []
        for i in range(cfg.num_modules):
            last = i == cfg.num_modules - 1
            module = HighResolutionModule(
                block, cfg.num_blocks, in_channels, cfg.num_channels, multi_scale_output or not last
            )
            modules.append(module)
            in_channels = module.out_channels
        return nn.Sequential(*modules), in_channels

    def init_weights(self) -> None:
        """The official initialisation: conv weights N(0, 0.001), conv biases 0, BatchNorm 1 / 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.001)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) with H, W multiples of 32 -> (B, width, H/4, W/4) highest-resolution features."""
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] % HRNET_STRIDE or x.shape[3] % HRNET_STRIDE:
            raise ValueError(
                f"HRNet takes (B, 3, H, W) images with H and W multiples of {HRNET_STRIDE} (its lowest branch is at "
                f"1/{HRNET_STRIDE}); got {tuple(x.shape)}. Resize or pad the crop, e.g. to 256 x 256 or 256 x 192"
            )
        x = self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))))
        xs = [self.layer1(x)]
        for transition, stage in (
            (self.transition1, self.stage2),
            (self.transition2, self.stage3),
            (self.transition3, self.stage4),
        ):
            # Existing branches pass through their transition; new ones grow from the lowest resolution.
            inputs = [t(xs[i] if i < len(xs) else xs[-1]) for i, t in enumerate(transition)]
            xs = stage(inputs)
        return xs[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, num_joints, H/4, W/4) heatmaps, or the features without a final layer."""
        features = self.forward_features(x)
        return features if self.final_layer is None else self.final_layer(features)
