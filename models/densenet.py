"""DenseNet-121 (Huang et al. 2017), CIFAR variant: 3x3 stem of 2·growth channels, no max-pool."""

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import ConvFactory, LinearFactory, plain_conv, plain_linear
from .registry import register_model
from .resnet import scaled


class DenseLayer(nn.Module):
    """BN-ReLU-1x1(4·growth)-BN-ReLU-3x3(growth), output concatenated to the input."""

    def __init__(self, in_channels: int, growth: int, conv: ConvFactory):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = conv(in_channels, 4 * growth, 1)
        self.bn2 = nn.BatchNorm2d(4 * growth)
        self.conv2 = conv(4 * growth, growth, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return torch.cat([out, x], 1)


class Transition(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, conv: ConvFactory):
        super().__init__()
        self.bn = nn.BatchNorm2d(in_channels)
        self.conv = conv(in_channels, out_channels, 1)
        self.pool = nn.AvgPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.conv(F.relu(self.bn(x))))


class DenseNet(nn.Module):
    def __init__(self, block_layers: list[int], growth: int, num_classes: int, in_channels: int,
                 conv: ConvFactory, linear: LinearFactory, reduction: float = 0.5):
        super().__init__()
        current = 2 * growth
        self.conv1 = conv(in_channels, current, 3, padding=1)
        stages = []
        for i, n in enumerate(block_layers):
            for _ in range(n):
                stages.append(DenseLayer(current, growth, conv))
                current += growth
            if i < len(block_layers) - 1:
                out = int(current * reduction)
                stages.append(Transition(current, out, conv))
                current = out
        self.features = nn.Sequential(*stages)
        self.bn = nn.BatchNorm2d(current)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = linear(current, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn(self.features(self.conv1(x))))
        return self.fc(torch.flatten(self.pool(out), 1))


@register_model
def densenet121(num_classes: int = 10, in_channels: int = 3, width: float = 1.0,
                growth: int = 32, conv: ConvFactory = plain_conv,
                linear: LinearFactory = plain_linear) -> nn.Module:
    """DenseNet-121 CIFAR variant, growth 32 (scaled by ``width``)."""
    return DenseNet([6, 12, 24, 16], scaled(growth, width), num_classes, in_channels, conv,
                    linear)
