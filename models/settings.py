"""A method's settings section (``mlg``, ``resrep``, ``pg``, ``cg``) read into its frozen config."""

import math
from dataclasses import fields, replace
from typing import TypeVar

Settings = TypeVar("Settings")


def settings_from_dict(section: str, given: object, defaults: Settings) -> Settings:
    """``defaults`` (a frozen dataclass) with the keys of config section ``section`` replaced.

    None keeps the defaults; a section that is not a mapping, or a key that is not a field, is a
    one-line error naming the section, and so is a NaN or infinite number (it passes every
    ``<`` / ``>`` range check). The dataclass checks the values it is given itself.
    """
    if given is None:
        return defaults
    kind = type(defaults).__name__.removesuffix("Config")
    if not isinstance(given, dict):
        raise ValueError(f"{section} must be a mapping of {kind} settings, got {given!r}")  # noqa: TRY004
    allowed = [f.name for f in fields(defaults)]
    for key in given:
        if key not in allowed:
            raise ValueError(f"{section}: unknown key {key!r}; allowed: {', '.join(allowed)}")
        value = given[key]
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{section}.{key}: must be a finite number, got {value!r}")
    return replace(defaults, **given)
