"""hwsim: hardware cost simulator and analytical model for compressed CNNs."""

from .layer import Layer, LayerGraph
from .trace import trace

__all__ = ["Layer", "LayerGraph", "trace"]
