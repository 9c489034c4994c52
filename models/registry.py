"""Model registry: ``@register_model`` stores a builder under its name, ``create_model`` builds it.

Builders take keyword arguments only; ``create_model`` checks every keyword against the builder's
signature (name and type of its default) so a typo in a config or on the command line is a
one-line error, not a silently ignored setting.
"""

import difflib
import inspect
from collections.abc import Callable

import torch
import torch.nn as nn

from .arguments import check_type

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module] | None = None, *,
                   input_hw: tuple[int, int] = (32, 32)):
    """Register ``fn`` under its function name; ``input_hw`` is its default input size.

    Use as ``@register_model`` or ``@register_model(input_hw=(224, 224))``.
    """
    def decorate(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if builder.__name__ in _MODELS:
            raise ValueError(f"model {builder.__name__!r} is registered twice")
        builder.input_hw = tuple(input_hw)
        _MODELS[builder.__name__] = builder
        return builder

    return decorate(fn) if fn is not None else decorate


def default_input_shape(name: str, in_channels: int | None = None) -> tuple[int, int, int]:
    """(C, H, W) the model ``name`` is built for; C from ``in_channels`` or the builder default."""
    channels = in_channels if in_channels is not None else model_arguments(name).get(
        "in_channels", 3)
    return (channels, *model_builder(name).input_hw)


def _zoo() -> dict[str, Callable[..., nn.Module]]:
    """The registry with the bundled zoo registered (``import models`` alone loads no torch)."""
    from . import densenet, gating, mlg, mobilenet, resnet, resrep  # noqa: F401

    return _MODELS


def list_models() -> list[str]:
    return sorted(_zoo())


def model_builder(name: str) -> Callable[..., nn.Module]:
    """The registered builder for ``name``; unknown names list the closest registered ones."""
    if not isinstance(name, str):
        raise ValueError(f"model name must be a string, got {name!r}; available: "
                         f"{', '.join(list_models())}")
    if name not in _zoo():
        close = difflib.get_close_matches(name, _MODELS, n=3, cutoff=0.4)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise KeyError(f"unknown model {name!r}: {hint}available: {', '.join(list_models())}")
    return _MODELS[name]


def model_arguments(name: str) -> dict[str, object]:
    """Keyword arguments of the builder for ``name`` with their defaults."""
    sig = inspect.signature(model_builder(name))
    return {p.name: p.default for p in sig.parameters.values()}


MAX_PARAMS = 2 ** 28  # 1 GiB of fp32 weights, 10x ResNet-50
PROBE_ABOVE = {"width": 2.0, "num_classes": 1000, "in_channels": 16, "growth": 64}


def check_arguments(name: str, kwargs: dict) -> dict:
    """``kwargs`` checked against the builder of ``name`` (names, types, sizes); ints given for
    float arguments become floats. Raises a one-line ValueError naming the argument."""
    allowed = model_arguments(name)
    checked = {}
    for key, value in kwargs.items():
        if key not in allowed:
            raise ValueError(
                f"model {name}: unknown argument {key!r}; allowed: {', '.join(allowed)}")
        checked[key] = check_type(name, key, value, allowed[key])
    return checked


def create_model(name: str, **kwargs) -> nn.Module:
    """Build the registered model ``name`` with checked keyword arguments.

    When a sizing argument is past the zoo's usual range (``PROBE_ABOVE``) the model is first
    built on the meta device (no memory) to count its parameters, so a model too large to
    allocate (more than ``MAX_PARAMS``) is a one-line error instead of an allocation failure or
    the out-of-memory killer. (Not always: the meta device's first use imports ~2 s of torch.)
    """
    checked = check_arguments(name, kwargs)
    builder = model_builder(name)
    if any(isinstance(checked.get(key), (int, float)) and checked[key] > bound
           for key, bound in PROBE_ABOVE.items()):
        try:
            with torch.device("meta"):
                params = sum(p.numel() for p in builder(**checked).parameters())
        except (NotImplementedError, RuntimeError):  # a builder that needs real tensors
            params = 0
        if params > MAX_PARAMS:
            shown = ", ".join(f"{k}={v!r}" for k, v in checked.items() if not callable(v))
            raise ValueError(f"model {name}({shown}): {params:,} parameters, more than the "
                             f"{MAX_PARAMS:,} allowed; lower width, num_classes or in_channels")
    return builder(**checked)
