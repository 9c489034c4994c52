"""The factory seams: architectures ask a factory for every conv, conv-BN pair and classifier.

A compressed variant (MLG, ResRep compactors, gating) passes its own factory with the same call
signature instead of copying the architecture. ``ConvBNFactory`` builds a conv and the
normalization after it as a pair the block stores under its own names (``conv1`` / ``bn1``), so
the plain models keep their state-dict keys; ``prunable`` marks the convs a channel-pruning
method may narrow (ResRep's internal layers), which the plain factory ignores.
"""

from typing import Protocol

from torch import nn


class ConvFactory(Protocol):
    def __call__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, groups: int = 1, bias: bool = False) -> nn.Module: ...


class LinearFactory(Protocol):
    def __call__(self, in_features: int, out_features: int, bias: bool = True) -> nn.Module: ...


class ConvBNFactory(Protocol):
    def __call__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, prunable: bool = False) -> tuple[nn.Module, nn.Module]: ...


def plain_conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
               padding: int = 0, groups: int = 1, bias: bool = False) -> nn.Module:
    return nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                     groups=groups, bias=bias)


def plain_linear(in_features: int, out_features: int, bias: bool = True) -> nn.Module:
    return nn.Linear(in_features, out_features, bias=bias)


def conv_bn_from(conv: ConvFactory) -> ConvBNFactory:
    """The plain conv-BN factory over ``conv``: a bias-free conv and its BatchNorm."""
    def make(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
             padding: int = 0, prunable: bool = False) -> tuple[nn.Module, nn.Module]:
        return (conv(in_channels, out_channels, kernel_size, stride=stride, padding=padding),
                nn.BatchNorm2d(out_channels))

    return make
