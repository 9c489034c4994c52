"""PyTorch side of hwsim: model registry, layers, architectures, data and training.

Never imports ``hwsim``; the simulator reads models only through tracing and ``hw_stats()``.
"""

from . import densenet, mobilenet, resnet  # noqa: F401  (register the zoo)
from . import mlg  # noqa: F401  (MLG models and training plug-ins)
from .registry import (create_model, default_input_shape, list_models, model_arguments,
                       model_builder, register_model)

__all__ = ["create_model", "default_input_shape", "list_models", "model_arguments",
           "model_builder", "register_model"]
