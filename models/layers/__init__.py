"""Layers the architectures are built from; compressed layers define ``hw_stats()``."""

from .conv import ConvFactory, LinearFactory, plain_conv, plain_linear

__all__ = ["ConvFactory", "LinearFactory", "plain_conv", "plain_linear"]
