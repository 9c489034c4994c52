"""Whole-network regression figures (ZigZag style): totals of whole models on the presets.

When a figure changes on purpose, the failure message prints the line to paste into GOLDEN.
"""

import functools

import pytest

from hwsim.accel import load_accelerator
from hwsim.cost import evaluate, hardware_totals
from hwsim.trace import trace
from models import create_model

# (model, accelerator): (dram_bytes, latency_cycles, energy_pj) with the default objective.
GOLDEN = {
    ("resnet18", "systolic_32"): (13550868, 1642678, 4.29785e+09),
    ("resnet18", "eyeriss_like"): (13274772, 7671661, 3.18985e+09),
    ("resnet18", "mlg_gen"): (13934804, 3483899, 4.37299e+09),
    ("mlg_resnet18", "systolic_32"): (3897442, 3606235, 2.45753e+09),
    ("mlg_resnet18", "eyeriss_like"): (3354562, 9454284, 2.70623e+09),
    ("mlg_resnet18", "mlg_gen"): (2707945, 1936544, 2.09973e+09),
    ("resnet50", "systolic_32"): (79930384, 7466731, 2.65015e+10),
    ("resnet50", "eyeriss_like"): (70089392, 42527037, 2.05487e+10),
    ("resnet50", "mlg_gen"): (86491280, 21622820, 2.80841e+10),
}
SHAPES = {"resnet18": (3, 32, 32), "mlg_resnet18": (3, 32, 32), "resnet50": (3, 224, 224)}


@functools.cache
def traced(model):
    return trace(create_model(model), SHAPES[model])


@pytest.mark.parametrize("model, accel_name", sorted(GOLDEN))
def test_network_totals(model, accel_name):
    graph, accel = traced(model), load_accelerator(accel_name)
    t = hardware_totals(evaluate(graph, accel), graph, accel)
    got = (t["dram_bytes"], t["latency_cycles"], t["energy_pj"])
    line = (f'    ("{model}", "{accel_name}"): ({got[0]:.0f}, {got[1]:.0f}, '
            f'{got[2]:.6g}),')
    assert got == pytest.approx(GOLDEN[model, accel_name], rel=1e-5), (
        f"{model} on {accel_name} changed; if on purpose, paste into GOLDEN:\n{line}")
