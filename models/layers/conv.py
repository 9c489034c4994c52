"""The conv factory seam: architectures ask a factory for every conv and the classifier.

A compressed variant (MLG, ResRep compactors, gating) passes its own factory with the same call
signature instead of copying the architecture.
"""

from typing import Protocol

from torch import nn


class ConvFactory(Protocol):
    def __call__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, groups: int = 1, bias: bool = False) -> nn.Module: ...


class LinearFactory(Protocol):
    def __call__(self, in_features: int, out_features: int, bias: bool = True) -> nn.Module: ...


def plain_conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
               padding: int = 0, groups: int = 1, bias: bool = False) -> nn.Module:
    return nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                     groups=groups, bias=bias)


def plain_linear(in_features: int, out_features: int, bias: bool = True) -> nn.Module:
    return nn.Linear(in_features, out_features, bias=bias)
