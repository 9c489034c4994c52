"""Layers the architectures are built from; compressed layers define ``hw_stats()``."""

from .conv import ConvBNFactory, ConvFactory, LinearFactory, conv_bn_from, plain_conv, plain_linear

__all__ = ["ConvBNFactory", "ConvFactory", "LinearFactory", "conv_bn_from", "plain_conv",
           "plain_linear"]
