"""ResNet family: CIFAR ResNet-18 (MLG's variant), CIFAR ResNet-20/56, ImageNet ResNet-50.

Every conv and the classifier come from the ``conv`` / ``linear`` factories, so compressed
variants reuse these classes unchanged.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import ConvFactory, LinearFactory, plain_conv, plain_linear
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
                  conv: ConvFactory) -> nn.Module:
    """Identity when shapes match, else option A (zero-pad) or B (1x1 conv + BN)."""
    if stride == 1 and in_channels == out_channels:
        return nn.Sequential()
    if shortcut == "A":
        return PadShortcut(in_channels, out_channels, stride)
    return nn.Sequential(conv(in_channels, out_channels, 1, stride=stride),
                         nn.BatchNorm2d(out_channels))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int, shortcut: str,
                 conv: ConvFactory):
        super().__init__()
        self.conv1 = conv(in_channels, channels, 3, stride=stride, padding=1)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = conv(channels, channels, 3, stride=1, padding=1)
        self.bn2 = nn.BatchNorm2d(channels)
        self.shortcut = make_shortcut(in_channels, channels, stride, shortcut, conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck (stride on the 3x3, as torchvision)."""

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int, shortcut: str,
                 conv: ConvFactory):
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1 = conv(in_channels, channels, 1)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = conv(channels, channels, 3, stride=stride, padding=1)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = conv(channels, out_channels, 1)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.shortcut = make_shortcut(in_channels, out_channels, stride, shortcut, conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """Stages of residual blocks over a stem; ``imagenet_stem`` picks 7x7/2 + max-pool."""

    def __init__(self, block: type, stage_blocks: list[int], stage_channels: list[int],
                 num_classes: int, in_channels: int, width: float, shortcut: str,
                 conv: ConvFactory, linear: LinearFactory, imagenet_stem: bool = False):
        super().__init__()
        if shortcut not in SHORTCUTS:
            raise ValueError(f"shortcut must be one of {', '.join(SHORTCUTS)}, got {shortcut!r}")
        channels = [scaled(c, width) for c in stage_channels]
        stem = channels[0] if block is BasicBlock or not imagenet_stem else scaled(64, width)
        if imagenet_stem:
            self.conv1 = conv(in_channels, stem, 7, stride=2, padding=3)
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        else:
            self.conv1 = conv(in_channels, stem, 3, stride=1, padding=1)
            self.maxpool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(stem)
        layers, current = [], stem
        for i, (n, c) in enumerate(zip(stage_blocks, channels)):
            blocks = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(block(current, c, stride, shortcut, conv))
                current = c * block.expansion
            layers.append(nn.Sequential(*blocks))
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = linear(current, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        out = self.pool(self.layers(out))
        return self.fc(torch.flatten(out, 1))


@register_model
def resnet18(num_classes: int = 10, in_channels: int = 3, width: float = 1.0,
             shortcut: str = "B", conv: ConvFactory = plain_conv,
             linear: LinearFactory = plain_linear) -> nn.Module:
    """CIFAR ResNet-18 as used by MLG: 3x3 stride-1 stem, no max-pool, 1x1 projections (B)."""
    return ResNet(BasicBlock, [2, 2, 2, 2], [64, 128, 256, 512], num_classes, in_channels,
                  width, shortcut, conv, linear)


@register_model
def resnet20(num_classes: int = 10, in_channels: int = 3, width: float = 1.0,
             shortcut: str = "A", conv: ConvFactory = plain_conv,
             linear: LinearFactory = plain_linear) -> nn.Module:
    """CIFAR ResNet-20 (He et al. 2016); default option-A zero-pad shortcuts as dnn-gating."""
    return ResNet(BasicBlock, [3, 3, 3], [16, 32, 64], num_classes, in_channels, width,
                  shortcut, conv, linear)


@register_model
def resnet56(num_classes: int = 10, in_channels: int = 3, width: float = 1.0,
             shortcut: str = "A", conv: ConvFactory = plain_conv,
             linear: LinearFactory = plain_linear) -> nn.Module:
    """CIFAR ResNet-56 (He et al. 2016); default option A, ResRep's setting is ``shortcut="B"``."""
    return ResNet(BasicBlock, [9, 9, 9], [16, 32, 64], num_classes, in_channels, width,
                  shortcut, conv, linear)


@register_model(input_hw=(224, 224))
def resnet50(num_classes: int = 1000, in_channels: int = 3, width: float = 1.0,
             shortcut: str = "B", conv: ConvFactory = plain_conv,
             linear: LinearFactory = plain_linear) -> nn.Module:
    """ImageNet ResNet-50 v1.5 (224x224 input, torchvision layout)."""
    return ResNet(Bottleneck, [3, 4, 6, 3], [64, 128, 256, 512], num_classes, in_channels,
                  width, shortcut, conv, linear, imagenet_stem=True)
