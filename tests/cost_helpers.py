"""Helpers the cost tests share: whole-layer buffers and the untiled evaluation."""

from hwsim.accel import load_accelerator
from hwsim.cost import evaluate
from hwsim.layer import LayerGraph
from hwsim.mapping import untiled

BIG = {"weight": {"size_bytes": 1 << 24}, "input": {"size_bytes": 1 << 24},
       "output": {"size_bytes": 1 << 24}}


def accel_with(name="systolic_32", **array):
    return load_accelerator(name, {"array": array, "buffers": BIG})


def run_untiled(layer, accel):
    """One row, with the whole layer as one tile (SCALE-Sim's view)."""
    g = LayerGraph("t", (1,), (layer,))
    return evaluate(g, accel, mappings={layer.name: untiled(layer)}).iloc[0]
