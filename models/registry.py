"""Model registry: ``@register_model`` stores a builder under its name, ``create_model`` builds it.

Builders take keyword arguments only; ``create_model`` checks every keyword against the builder's
signature (name and type of its default) so a typo in a config or on the command line is a
one-line error, not a silently ignored setting.
"""

import difflib
import inspect
import math
from collections.abc import Callable

import torch
import torch.nn as nn

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


def list_models() -> list[str]:
    return sorted(_MODELS)


def model_builder(name: str) -> Callable[..., nn.Module]:
    """The registered builder for ``name``; unknown names list the closest registered ones."""
    if not isinstance(name, str):
        raise ValueError(f"model name must be a string, got {name!r}; available: "
                         f"{', '.join(list_models())}")
    if name not in _MODELS:
        close = difflib.get_close_matches(name, _MODELS, n=3, cutoff=0.4)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise KeyError(f"unknown model {name!r}: {hint}available: {', '.join(list_models())}")
    return _MODELS[name]


def model_arguments(name: str) -> dict[str, object]:
    """Keyword arguments of the builder for ``name`` with their defaults."""
    sig = inspect.signature(model_builder(name))
    return {p.name: p.default for p in sig.parameters.values()}


# Builder arguments that size the network: a finite number > 0 (0 or -1 would silently build
# one-channel layers, NaN or inf fail deep inside torch).
POSITIVE_ARGUMENTS = ("num_classes", "in_channels", "width", "growth")
MAX_ARGUMENT = 2 ** 20  # no zoo dimension comes near this; larger ones only exhaust memory
MAX_PARAMS = 2 ** 28  # 1 GiB of fp32 weights, 10x ResNet-50
PROBE_ABOVE = {"width": 2.0, "num_classes": 1000, "in_channels": 16, "growth": 64}


def _check_type(model: str, key: str, value: object, default: object) -> object:
    if callable(default) and not isinstance(default, type):
        if not callable(value):  # a factory (conv=..., linear=...) set from Python only
            raise ValueError(f"model {model}: argument {key!r} must be a callable (set it from "
                             f"Python, not a config), got {value!r}")
        return value
    if default is None or value is None or isinstance(default, dict):
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(
                f"model {model}: argument {key!r} must be true or false, got {value!r}")
        return value
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(default, (int, float, str)) and (
            not isinstance(value, type(default)) or isinstance(value, bool)):
        raise ValueError(
            f"model {model}: argument {key!r} must be {type(default).__name__}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"model {model}: argument {key!r} must be a finite number, got {value}")
    if key in POSITIVE_ARGUMENTS and not 0 < value <= MAX_ARGUMENT:
        raise ValueError(f"model {model}: argument {key!r} must be > 0 and at most "
                         f"{MAX_ARGUMENT}, got {value!r}")
    return value


def check_arguments(name: str, kwargs: dict) -> dict:
    """``kwargs`` checked against the builder of ``name`` (names, types, sizes); ints given for
    float arguments become floats. Raises a one-line ValueError naming the argument."""
    allowed = model_arguments(name)
    checked = {}
    for key, value in kwargs.items():
        if key not in allowed:
            raise ValueError(
                f"model {name}: unknown argument {key!r}; allowed: {', '.join(allowed)}")
        checked[key] = _check_type(name, key, value, allowed[key])
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
