"""PyTorch side of hwsim: model registry, layers, architectures, data and training.

Never imports ``hwsim``; the simulator reads models only through tracing and ``hw_stats()``.
"""

from . import densenet, gating, mlg, mobilenet, resnet, resrep  # noqa: F401  (register the zoo)
from .registry import (
    create_model,
    default_input_shape,
    list_models,
    model_arguments,
    model_builder,
    register_model,
)

__all__ = ["create_model", "default_input_shape", "list_models", "model_arguments",
           "model_builder", "register_model"]
