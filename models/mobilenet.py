"""MobileNetV2, CIFAR variant: stride-1 stem and stride 1 in the second stage (32x32 inputs)."""

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import ConvFactory, LinearFactory, plain_conv, plain_linear
from .registry import register_model
from .resnet import scaled

# (expansion, out_channels, blocks, first stride) as Sandler et al. 2018, Table 2, with the
# CIFAR change of stride 1 in the second row.
STAGES = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
          (6, 160, 3, 2), (6, 320, 1, 1)]


class InvertedResidual(nn.Module):
    """1x1 expansion (absent when ``expansion`` is 1, as the paper and torchvision), 3x3
    depthwise, 1x1 linear projection; a residual add when the shapes allow."""

    def __init__(self, in_channels: int, out_channels: int, expansion: int, stride: int,
                 conv: ConvFactory):
        super().__init__()
        hidden = in_channels * expansion
        self.use_residual = stride == 1 and in_channels == out_channels
        self.expands = expansion != 1
        if self.expands:
            self.conv1 = conv(in_channels, hidden, 1)
            self.bn1 = nn.BatchNorm2d(hidden)
        self.conv2 = conv(hidden, hidden, 3, stride=stride, padding=1, groups=hidden)
        self.bn2 = nn.BatchNorm2d(hidden)
        self.conv3 = conv(hidden, out_channels, 1)
        self.bn3 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu6(self.bn1(self.conv1(x))) if self.expands else x
        out = F.relu6(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return out + x if self.use_residual else out


class MobileNetV2(nn.Module):
    def __init__(self, num_classes: int, in_channels: int, width: float, conv: ConvFactory,
                 linear: LinearFactory):
        super().__init__()
        stem = scaled(32, width)
        self.conv1 = conv(in_channels, stem, 3, stride=1, padding=1)
        self.bn1 = nn.BatchNorm2d(stem)
        blocks, current = [], stem
        for expansion, out, n, stride in STAGES:
            out = scaled(out, width)
            for j in range(n):
                blocks.append(InvertedResidual(current, out, expansion, stride if j == 0 else 1,
                                               conv))
                current = out
        self.blocks = nn.Sequential(*blocks)
        last = scaled(1280, max(1.0, width))
        self.conv2 = conv(current, last, 1)
        self.bn2 = nn.BatchNorm2d(last)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = linear(last, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu6(self.bn1(self.conv1(x)))
        out = F.relu6(self.bn2(self.conv2(self.blocks(out))))
        return self.fc(torch.flatten(self.pool(out), 1))


@register_model
def mobilenetv2(num_classes: int = 10, in_channels: int = 3, width: float = 1.0,
                conv: ConvFactory = plain_conv, linear: LinearFactory = plain_linear) -> nn.Module:
    """MobileNetV2 (Sandler et al. 2018), CIFAR variant; width < 1 keeps the 1280-wide head."""
    return MobileNetV2(num_classes, in_channels, width, conv, linear)
