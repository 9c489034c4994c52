"""Gating cost semantics: hand-built gates of known density against hand-counted cycles and
energy, realized speed-up never above the ideal one, and the whole-model summary."""

import dataclasses

import numpy as np
import pytest
import torch
from cost_helpers import accel_with, run_untiled  # noqa: E402
from hypothesis import given, settings
from hypothesis import strategies as st

import models
from hwsim import trace
from hwsim.accel import load_accelerator
from hwsim.cost import evaluate, tile_costs
from hwsim.gating import gating_summary, ungated
from hwsim.layer import Layer, LayerGraph
from hwsim.mapping import LOOP_ORDERS, Mapping, untiled
from hwsim.tech import HOROWITZ45, add_energy_pj, mult_energy_pj

# 8 channels, 3x3, 10x10 -> 8x8, 64 filters: Sr = 72, T = 64; on an 8x8 array 8 column folds.
# Channel 8k is the only gated-on channel of column fold k, at these shares:
FOLD_BUSIEST = [1.0, 0.5, 0.25, 0.0, 0.0, 0.0, 0.0, 0.125]
DENSITY = tuple(d if c % 8 == 0 else 0.0 for c in range(64) for d in [FOLD_BUSIEST[c // 8]])
BASE = 0.25  # pt = 4: 2 of the 8 input channels, 18 of the 72 reduction rows
CG = Layer("cg", "conv", 1, 8, 64, (10, 10), (8, 8), (3, 3), gate_base_fraction=BASE,
           gate_channel_density=DENSITY,
           mac_density=BASE + (1 - BASE) * sum(DENSITY) / 64)
DENSE = dataclasses.replace(CG, gate_base_fraction=0.0, gate_channel_density=(),
                            mac_density=1.0)


@pytest.mark.parametrize("flow,gated,dense", [
    # WS: 8 col folds x (9 row folds' fill 22 + 3 base row folds x 64 pixels)
    #     + 6 rest row folds x 64 pixels x sum of the busiest shares (1.875).
    ("ws", 8 * (9 * 22 + 3 * 64) + 6 * 64 * 1.875, (22 + 64) * 9 * 8),
    # OS: 8 pixel folds x (8 col folds x (fill 14 + 18 base rows) + 54 rest rows x 4 busy folds).
    ("os", 8 * (8 * (14 + 18) + 54 * 4), (14 + 72) * 8 * 8),
    # IS: 8 pixel folds x (9 row folds' fill 22 + 3 base folds x 64 filters + 6 x 4 filters on).
    ("is", 8 * (9 * 22 + 3 * 64 + 6 * 4), (22 + 64) * 9 * 8),
])
def test_hand_built_channel_gates_give_the_hand_counted_cycles(flow, gated, dense):
    accel = accel_with(rows=8, cols=8, dataflow=flow)
    row, base = run_untiled(CG, accel), run_untiled(DENSE, accel)
    assert base.compute_cycles == dense
    assert row.compute_cycles == gated
    assert row.gating_speedup == pytest.approx(dense / gated)
    assert row.flop_reduction == pytest.approx(1 / CG.mac_density)
    assert row.gating_speedup <= row.flop_reduction
    assert row.gating_mode == "channel"
    # MAC energy: executed MACs only, each an 8x8 multiply and a 32-bit add.
    per_mac = mult_energy_pj(HOROWITZ45, 8, 8) + add_energy_pj(HOROWITZ45, 32)
    assert row.mac_energy_pj == pytest.approx(CG.macs * CG.mac_density * per_mac)


SMALL = Layer("s", "conv", 1, 8, 16, (10, 10), (8, 8), (3, 3))  # dense WS fold: 1548 cycles


def test_hand_built_precision_gates_give_the_formula_cycles_and_energy():
    gated = dataclasses.replace(SMALL, act_bits=8, pred_bits=2, lsb_density=0.25)
    bits = 2 + 0.25 * 6  # effective bits = pred + density * (bits - pred)
    serial = accel_with("bitserial_32", rows=8, cols=8)
    row, dense = run_untiled(gated, serial), run_untiled(SMALL, serial)
    assert row.compute_cycles == np.ceil(1548 * bits) and dense.compute_cycles == 1548 * 8
    assert row.gating_mode == "skip" and row.gating_speedup == pytest.approx(8 / bits)
    pe = mult_energy_pj(HOROWITZ45, 16, 1) + add_energy_pj(HOROWITZ45, 32)
    assert row.mac_energy_pj == pytest.approx(SMALL.macs * bits * pe)
    parallel = accel_with(rows=8, cols=8)
    row, dense = run_untiled(gated, parallel), run_untiled(SMALL, parallel)
    assert row.compute_cycles == dense.compute_cycles and row.gating_speedup == 1.0
    assert row.gating_mode == "gate" and row.ideal_speedup == pytest.approx(8 / bits)
    per_mac = mult_energy_pj(HOROWITZ45, 8, 8) * bits / 8 + add_energy_pj(HOROWITZ45, 32)
    assert row.mac_energy_pj == pytest.approx(SMALL.macs * per_mac)


def test_layer_checks_channel_gating_fields():
    with pytest.raises(ValueError, match="disagrees with gate_base_fraction"):
        dataclasses.replace(CG, mac_density=0.9)
    with pytest.raises(ValueError, match="needs out_channels=64 values"):
        dataclasses.replace(CG, gate_channel_density=(1.0,) * 3)
    with pytest.raises(ValueError, match="gate_base_fraction needs gate_channel_density"):
        dataclasses.replace(DENSE, gate_base_fraction=0.5)


@settings(max_examples=60, deadline=None)
@given(out_channels=st.sampled_from([8, 16, 32, 64, 128]),
       in_channels=st.sampled_from([4, 8, 16, 64]), partitions=st.sampled_from([1, 2, 4]),
       flow=st.sampled_from(["ws", "os", "is"]), size=st.sampled_from([8, 32]),
       seed=st.integers(0, 2 ** 16), sparsity=st.floats(0.0, 1.0))
def test_channel_gating_realized_speedup_never_exceeds_ideal(out_channels, in_channels,
                                                             partitions, flow, size, seed,
                                                             sparsity):
    rng = np.random.default_rng(seed)
    density = tuple(float(d) for d in rng.uniform(0, 1, out_channels)
                    * (rng.uniform(0, 1, out_channels) > sparsity))
    base = 1 / partitions
    layer = Layer("g", "conv", 1, in_channels, out_channels, (8, 8), (8, 8), (3, 3),
                  padding=(1, 1), gate_base_fraction=base, gate_channel_density=density,
                  mac_density=base + (1 - base) * sum(density) / out_channels)
    row = evaluate(LayerGraph("t", (1,), (layer,)),
                   accel_with(rows=size, cols=size, dataflow=flow)).iloc[0]
    assert 0 < row.gating_speedup <= row.flop_reduction * (1 + 1e-9)


def test_gating_summary_compares_with_all_gates_on():
    model = models.create_model("cg_resnet20", in_channels=1, width=0.5)
    torch.manual_seed(0)
    graph = trace(model, (1, 16, 16), calib=[torch.rand(4, 1, 16, 16)])
    for name in ("bitserial_32", "systolic_32"):
        accel = load_accelerator(name)
        costs = evaluate(graph, accel)
        summary = gating_summary(graph, accel, costs)
        dense = evaluate(ungated(graph), accel)
        assert summary["gated_layers"] == 9 and summary["gating_mode"] == "channel"
        assert 1 <= summary["realized_speedup"] <= summary["ideal_speedup"]
        assert summary["gated_layers_realized_speedup"] <= summary["gated_layers_ideal_speedup"]
        assert summary["realized_speedup"] == pytest.approx(
            dense["compute_cycles"].sum() / costs["compute_cycles"].sum(), rel=0.05)
        assert summary["energy_saving"] == pytest.approx(
            summary["ungated_energy_pj"] / costs["energy_pj"].sum())
        assert (costs["gating_speedup"] <= costs["flop_reduction"] + 1e-9).all()


@settings(max_examples=80, deadline=None)
@given(in_channels=st.sampled_from([2, 4, 8, 12]), out_channels=st.sampled_from([3, 8, 20]),
       partitions=st.sampled_from([1, 2, 4]), hw=st.integers(3, 9), data=st.data(),
       flow=st.sampled_from(["ws", "os", "is"]), size=st.sampled_from([4, 8]),
       seed=st.integers(0, 2 ** 16))
def test_channel_gated_tile_sums_equal_evaluate(in_channels, out_channels, partitions, hw, data,
                                                flow, size, seed):
    """The per-tile function and the closed form over candidates agree for gated layers."""
    rng = np.random.default_rng(seed)
    density = tuple(float(d) for d in rng.uniform(0, 1, out_channels)
                    * (rng.uniform(0, 1, out_channels) > 0.3))
    base = 1 / partitions
    layer = Layer("g", "conv", data.draw(st.integers(1, 2)), in_channels, out_channels,
                  (hw, hw), (hw, hw), (3, 3), padding=(1, 1), gate_base_fraction=base,
                  gate_channel_density=density,
                  mac_density=base + (1 - base) * sum(density) / out_channels)
    sizes = [data.draw(st.integers(1, d)) for d in untiled(layer).dims]
    mapping = Mapping(layer, *sizes, loop_order=data.draw(st.sampled_from(LOOP_ORDERS)))
    accel = accel_with(rows=size, cols=size, dataflow=flow)
    row = evaluate(LayerGraph("t", (1,), (layer,)), accel, mappings={"g": mapping}).iloc[0]
    tiles = tile_costs(row.mapping, accel)
    assert tiles.compute_cycles.sum() == pytest.approx(row.compute_cycles, rel=1e-9)
    assert row.gating_speedup <= row.flop_reduction * (1 + 1e-9)
