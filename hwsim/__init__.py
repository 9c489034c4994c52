"""hwsim: hardware cost simulator and analytical model for compressed CNNs.

trace turns a model into a LayerGraph, load_accelerator reads a spec, evaluate maps and costs
every layer, evaluate_record returns the whole result record, simulate replays the mapped tiles
event by event.

The public names load on first use (PEP 562), so ``import hwsim`` and the command line's help
do not import torch, pandas or numpy.
"""

import importlib
import sys
import types

# public name -> the module that holds it
_HOMES = {
    "Layer": "layer", "LayerGraph": "layer",
    "accelerator_dict": "accel", "list_accelerators": "accel", "load_accelerator": "accel",
    "evaluate": "cost", "hardware_totals": "cost", "search_mappings": "cost",
    "evaluate_record": "record",
    "simulate": "des",
    "scalesim_files": "export",
    "trace": "trace",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name == "__version__":  # the version checkpoints and run.yaml record
        from models.provenance import hwsim_version

        return hwsim_version()
    if name not in _HOMES:
        raise AttributeError(f"module 'hwsim' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted({*globals(), *_HOMES})


class _Package(types.ModuleType):
    """Keeps ``hwsim.trace`` the function: importing the submodule of the same name would
    otherwise rebind the package attribute to the module."""

    def __setattr__(self, name, value):
        if isinstance(value, types.ModuleType) and _HOMES.get(name) == name:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
