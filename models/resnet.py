"""ResNet family: CIFAR ResNet-18 (MLG's variant), CIFAR ResNet-20/56, ImageNet ResNet-50.

Every conv-BN pair and the classifier come from the ``conv_bn`` / ``linear`` factories (by
default a plain conv-BN pair over the ``conv`` factory), so compressed variants reuse these
classes unchanged. ``channels`` is a per-layer channel plan: the widths of the blocks' inner
convs (the first conv of a basic block, the first two of a bottleneck), in order, so a pruned
network is rebuilt exactly from its arguments.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import (
    ConvBNFactory,
    ConvFactory,
    LinearFactory,
    conv_bn_from,
    plain_conv,
    plain_linear,
)
from .registry import register_model

SHORTCUTS = ("A", "B")


def scaled(channels: int, width: float) -> int:
    """Channel count under a width multiplier (at least 1)."""
    return max(1, int(round(channels * width)))


class PadShortcut(nn.Module):
    """Option-A shortcut (He et al. 2016): subsample by the stride and zero-pad the channels."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.stride = stride
        self.extra = out_channels - in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, ::self.stride, ::self.stride]
        return F.pad(x, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))


def make_shortcut(in_channels: int, out_channels: int, stride: int, shortcut: str,
                  conv_bn: ConvBNFactory) -> nn.Module:
    """Identity when shapes match, else option A (zero-pad) or B (1x1 conv + BN)."""
    if stride == 1 and in_channels == out_channels:
        return nn.Sequential()
    if shortcut == "A":
        return PadShortcut(in_channels, out_channels, stride)
    return nn.Sequential(*conv_bn(in_channels, out_channels, 1, stride=stride))


class BasicBlock(nn.Module):
    expansion = 1
    inner_layers = 1  # entries of the channel plan: the width of conv1

    def __init__(self, in_channels: int, channels: int, stride: int, shortcut: str,
                 conv_bn: ConvBNFactory, inner: tuple[int, ...]):
        super().__init__()
        self.conv1, self.bn1 = conv_bn(in_channels, inner[0], 3, stride=stride, padding=1,
                                       prunable=True)
        self.conv2, self.bn2 = conv_bn(inner[0], channels, 3, stride=1, padding=1)
        self.shortcut = make_shortcut(in_channels, channels, stride, shortcut, conv_bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck (stride on the 3x3, as torchvision)."""

    expansion = 4
    inner_layers = 2  # entries of the channel plan: the widths of conv1 and conv2

    def __init__(self, in_channels: int, channels: int, stride: int, shortcut: str,
                 conv_bn: ConvBNFactory, inner: tuple[int, ...]):
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1, self.bn1 = conv_bn(in_channels, inner[0], 1, prunable=True)
        self.conv2, self.bn2 = conv_bn(inner[0], inner[1], 3, stride=stride, padding=1,
                                       prunable=True)
        self.conv3, self.bn3 = conv_bn(inner[1], out_channels, 1)
        self.shortcut = make_shortcut(in_channels, out_channels, stride, shortcut, conv_bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


def inner_plan(block: type, stage_blocks: list[int], widths: list[int],
               channels: list[int] | None):
    """Iterator over each block's inner widths, from the plan ``channels`` or the stage widths."""
    default = [w for n, w in zip(stage_blocks, widths) for _ in range(n * block.inner_layers)]
    if channels is None:
        channels = default
    if (not isinstance(channels, (list, tuple)) or len(channels) != len(default)
            or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in channels)):
        raise ValueError(f"channels: expected a list of {len(default)} widths >= 1 (the inner "
                         f"convs of {sum(stage_blocks)} blocks), got {channels!r}")
    step = block.inner_layers
    return iter([tuple(channels[k:k + step]) for k in range(0, len(channels), step)])


class ResNet(nn.Module):
    """Stages of residual blocks over a stem; ``imagenet_stem`` picks 7x7/2 + max-pool.

    ``conv_bn`` (default: plain pairs over ``conv``) builds every conv with its BatchNorm;
    ``channels`` (default: the stage widths) gives the inner widths of every block in order.
    """

    def __init__(self, block: type, stage_blocks: list[int], stage_channels: list[int],
                 num_classes: int, in_channels: int, width: float, shortcut: str,
                 conv: ConvFactory, linear: LinearFactory, imagenet_stem: bool = False,
                 conv_bn: ConvBNFactory | None = None, channels: list[int] | None = None):
        super().__init__()
        if shortcut not in SHORTCUTS:
            raise ValueError(f"shortcut must be one of {', '.join(SHORTCUTS)}, got {shortcut!r}")
        conv_bn = conv_bn or conv_bn_from(conv)
        widths = [scaled(c, width) for c in stage_channels]
        plan = inner_plan(block, stage_blocks, widths, channels)
        stem = widths[0] if block is BasicBlock or not imagenet_stem else scaled(64, width)
        if imagenet_stem:
            self.conv1, self.bn1 = conv_bn(in_channels, stem, 7, stride=2, padding=3)
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        else:
            self.conv1, self.bn1 = conv_bn(in_channels, stem, 3, stride=1, padding=1)
            self.maxpool = nn.Identity()
        layers, current = [], stem
        for i, (n, c) in enumerate(zip(stage_blocks, widths)):
            blocks = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(block(current, c, stride, shortcut, conv_bn, next(plan)))
                current = c * block.expansion
            layers.append(nn.Sequential(*blocks))
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = linear(current, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        out = self.pool(self.layers(out))
        return self.fc(torch.flatten(out, 1))


# Architecture -> (block, blocks per stage, stage widths, ImageNet stem).
ARCHITECTURES = {"resnet18": (BasicBlock, [2, 2, 2, 2], [64, 128, 256, 512], False),
                 "resnet20": (BasicBlock, [3, 3, 3], [16, 32, 64], False),
                 "resnet56": (BasicBlock, [9, 9, 9], [16, 32, 64], False),
                 "resnet50": (Bottleneck, [3, 4, 6, 3], [64, 128, 256, 512], True)}


def build_resnet(arch: str, num_classes: int, in_channels: int, width: float, shortcut: str,
                 conv: ConvFactory = plain_conv, linear: LinearFactory = plain_linear,
                 conv_bn: ConvBNFactory | None = None,
                 channels: list[int] | None = None) -> ResNet:
    """The ``ARCHITECTURES`` entry ``arch`` built with the given factories and channel plan."""
    block, stage_blocks, stage_channels, imagenet_stem = ARCHITECTURES[arch]
    return ResNet(block, stage_blocks, stage_channels, num_classes, in_channels, width, shortcut,
                  conv, linear, imagenet_stem=imagenet_stem, conv_bn=conv_bn, channels=channels)


@register_model
def resnet18(num_classes: int = 10, in_channels: int = 3, width: float = 1.0,
             shortcut: str = "B", conv: ConvFactory = plain_conv,
             linear: LinearFactory = plain_linear) -> nn.Module:
    """CIFAR ResNet-18 as used by MLG: 3x3 stride-1 stem, no max-pool, 1x1 projections (B)."""
    return build_resnet("resnet18", num_classes, in_channels, width, shortcut, conv, linear)


@register_model
def resnet20(num_classes: int = 10, in_channels: int = 3, width: float = 1.0,
             shortcut: str = "A", conv: ConvFactory = plain_conv,
             linear: LinearFactory = plain_linear) -> nn.Module:
    """CIFAR ResNet-20 (He et al. 2016); default option-A zero-pad shortcuts as dnn-gating."""
    return build_resnet("resnet20", num_classes, in_channels, width, shortcut, conv, linear)


@register_model
def resnet56(num_classes: int = 10, in_channels: int = 3, width: float = 1.0,
             shortcut: str = "A", conv: ConvFactory = plain_conv,
             linear: LinearFactory = plain_linear) -> nn.Module:
    """CIFAR ResNet-56 (He et al. 2016); default option A, ResRep's setting is ``shortcut="B"``."""
    return build_resnet("resnet56", num_classes, in_channels, width, shortcut, conv, linear)


@register_model(input_hw=(224, 224))
def resnet50(num_classes: int = 1000, in_channels: int = 3, width: float = 1.0,
             shortcut: str = "B", conv: ConvFactory = plain_conv,
             linear: LinearFactory = plain_linear) -> nn.Module:
    """ImageNet ResNet-50 v1.5 (224x224 input, torchvision layout)."""
    return build_resnet("resnet50", num_classes, in_channels, width, shortcut, conv, linear)
