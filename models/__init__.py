"""PyTorch side of hwsim: model registry, layers, architectures, data and training.

Never imports ``hwsim``; the simulator reads models only through tracing and ``hw_stats()``.
The registry's names load on first use (with torch and the zoo), so torch-free helpers such as
``models.arguments`` and ``models.provenance`` import without them.
"""

import importlib

__all__ = ["create_model", "default_input_shape", "list_models", "model_arguments",
           "model_builder", "register_model"]


def __getattr__(name: str):
    if name in __all__:
        return getattr(importlib.import_module(".registry", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
