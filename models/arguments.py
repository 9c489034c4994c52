"""Type and size checks of model builder arguments, without torch.

``models.registry.create_model`` applies them against a builder's defaults; the command line
applies the same checks against ``hwsim.catalog``'s copy of those defaults before torch loads.
"""

import math

# Builder arguments that size the network: a finite number > 0 (0 or -1 would silently build
# one-channel layers, NaN or inf fail deep inside torch).
POSITIVE_ARGUMENTS = ("num_classes", "in_channels", "width", "growth")
MAX_ARGUMENT = 2 ** 20  # no zoo dimension comes near this; larger ones only exhaust memory


def check_type(model: str, key: str, value: object, default: object) -> object:
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
        kind = "a finite number" if isinstance(default, float) else type(default).__name__
        raise ValueError(f"model {model}: argument {key!r} must be {kind}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"model {model}: argument {key!r} must be a finite number, got {value}")
    if key in POSITIVE_ARGUMENTS and not 0 < value <= MAX_ARGUMENT:
        raise ValueError(f"model {model}: argument {key!r} must be > 0 and at most "
                         f"{MAX_ARGUMENT}, got {value!r}")
    return value
