"""Analytical cost: hand-counted cycles per dataflow and precision mode, compression semantics,
totals, and properties over random layers and accelerators."""

import dataclasses

import numpy as np
import pytest
from cost_helpers import BIG, accel_with, run_untiled  # noqa: E402
from hypothesis import given, settings
from hypothesis import strategies as st

from hwsim.accel import load_accelerator
from hwsim.cost import COLUMNS, OBJECTIVES, evaluate, hardware_totals, search_mappings
from hwsim.layer import Layer, LayerGraph
from hwsim.mapping import untiled
from hwsim.tech import HOROWITZ45, mac_energy_pj

# 8 channels, 3x3, 10x10 -> 8x8, 16 filters: Sr = 72, Sc = 16, T = 64.
SMALL = Layer("s", "conv", 1, 8, 16, (10, 10), (8, 8), (3, 3))


def test_resnet50_conv1_ws_fold_model():
    # (2*32 + 32 + 12544 - 2) * ceil(147/32) * ceil(64/32) = 12638 * 5 * 2
    conv1 = Layer("conv1", "conv", 1, 3, 64, (224, 224), (112, 112), (7, 7), (2, 2), (3, 3))
    row = run_untiled(conv1, accel_with())
    assert row.compute_cycles == 126_380
    assert row.utilization <= row.compute_utilization <= 1


@pytest.mark.parametrize("flow,cycles", [
    ("ws", (2 * 8 + 8 + 64 - 2) * 9 * 2),    # T streams; Sr=72 over 8 rows, Sc=16 over 8 cols
    ("os", (8 + 8 + 72 - 2) * 8 * 2),        # Sr streams; T=64 over rows, Sc over cols; no preload
    ("is", (2 * 8 + 8 + 16 - 2) * 9 * 8),    # Sc streams; Sr over rows, T=64 over cols
])
def test_dataflows_hand_count(flow, cycles):
    assert run_untiled(SMALL, accel_with(rows=8, cols=8, dataflow=flow)).compute_cycles == cycles


def test_tiles_add_fills():
    accel = accel_with(rows=8, cols=8)
    g = LayerGraph("t", (1,), (SMALL,))
    # Two row tiles of 4: each pays the fill, (2*22 + 64) * 9 * 2.
    m = dataclasses.replace(untiled(SMALL), tile_rows=4)
    assert evaluate(g, accel, mappings={"s": m}).iloc[0].compute_cycles == 108 * 18
    # Channel tiles of 3, 3, 2: Sr tiles 27, 27, 18 take 4 + 4 + 3 row folds.
    m = dataclasses.replace(untiled(SMALL), tile_channels=3)
    assert evaluate(g, accel, mappings={"s": m}).iloc[0].compute_cycles == 86 * 11 * 2


@pytest.mark.parametrize("mode,bits,wbits,scale", [
    ("bit_parallel", 8, 8, 1),
    ("bit_parallel", 8, 16, 2),        # 16-bit weights on 8-bit MACs: two passes
    ("bit_serial_act", 8, 8, 8),       # Stripes: ceil(8 / 1) activation bit-cycles
    ("bit_serial_act", 4, 8, 4),
    ("bit_serial_both", 4, 4, 0.25),   # Loom: 4 * 4 / 8^2
    ("bit_fusion", 4, 4, 0.25),        # 1 / (floor(8/4) * floor(8/4))
    ("bit_fusion", 2, 8, 0.25),        # 1 / (floor(8/2) * floor(8/8))
    ("bit_fusion", 16, 8, 2),          # 16-bit activations fuse two bricks
])
def test_precision_modes_scale_cycles(mode, bits, wbits, scale):
    layer = dataclasses.replace(SMALL, act_bits=bits, weight_bits=wbits)
    row = run_untiled(layer, accel_with(rows=8, cols=8, precision_mode=mode))
    assert row.cycles_per_mac == scale
    assert row.compute_cycles == np.ceil(1548 * scale)


def test_precision_gating_skips_on_bit_serial_and_gates_on_bit_parallel():
    gated = dataclasses.replace(SMALL, pred_bits=3, lsb_density=0.25)
    serial = accel_with(rows=8, cols=8, precision_mode="bit_serial_act")
    # 3 prediction bit-cycles for every MAC + 5 LSB bit-cycles for a quarter of them.
    assert run_untiled(gated, serial).cycles_per_mac == 3 + 0.25 * 5
    assert run_untiled(gated, serial).gating_mode == "skip"
    assert run_untiled(gated, serial).mac_energy_pj < run_untiled(SMALL, serial).mac_energy_pj
    parallel = accel_with(rows=8, cols=8)
    on, off = run_untiled(gated, parallel), run_untiled(SMALL, parallel)
    assert on.gating_mode == "gate" and off.gating_mode == "none"
    assert on.compute_cycles == off.compute_cycles
    assert on.mac_energy_pj < off.mac_energy_pj


def test_channel_gating_speedup_below_flop_reduction():
    layer = Layer("g", "conv", 1, 64, 64, (8, 8), (8, 8), (3, 3), padding=(1, 1),
                  mac_density=0.3)
    row = run_untiled(layer, accel_with())
    dense = run_untiled(dataclasses.replace(layer, mac_density=1.0), accel_with())
    # ceil(0.3 * 64) = 20 filters take one 32-column fold instead of two: 2x, not 3.33x.
    assert row.gating_speedup == 2.0
    assert row.flop_reduction == pytest.approx(1 / 0.3)
    assert dense.compute_cycles == 2 * row.compute_cycles
    assert row.mac_energy_pj == pytest.approx(0.3 * dense.mac_energy_pj)


def test_depthwise_packs_groups_on_ws_only():
    dw = Layer("dw", "conv", 1, 32, 32, (8, 8), (8, 8), (3, 3), padding=(1, 1), groups=32)
    # WS: floor(32/9) = 3 groups side by side per fold, ceil(32/3) = 11 folds of (96+64-2).
    ws = run_untiled(dw, accel_with())
    assert ws.group_packing == 3 and ws.compute_cycles == 158 * 11
    # OS: one group at a time, (32 + 32 - 2 + 9) * ceil(64/32) * ceil(1/32) per group.
    assert run_untiled(dw, accel_with(dataflow="os")).compute_cycles == 71 * 2 * 32


def test_vector_layers_on_array_edge():
    add = Layer("add", "add", 1, 64, 64, (8, 8), (8, 8), inputs=("a", "b"))
    row = run_untiled(add, accel_with())
    assert row.compute_cycles == 64 * 64 / 32    # one element op per column per cycle
    assert row.dram_bytes == 3 * 64 * 64        # two operands in, one result out
    assert row.macs == 0 and row.mac_energy_pj > 0


def test_mlg_generation_and_regeneration():
    layer = Layer("m", "conv", 1, 64, 64, (8, 8), (8, 8), (3, 3), padding=(1, 1),
                  weight_storage_bits=8000, gen_macs=1000, gen_bits=8)
    accel = load_accelerator("mlg_gen", {"buffers": BIG,
                                         "weight_gen": {"macs_per_cycle": 256, "bits": 8}})
    row = run_untiled(layer, accel)
    assert row.weight_dram_bytes == 1000                  # compressed factors only
    assert row.gen_macs == 1000
    assert row.gen_cycles == 1000 / 256                   # on the 256 MAC/cycle unit
    assert row.gen_energy_pj == pytest.approx(1000 * mac_energy_pj(HOROWITZ45, 8, 8, 16))
    # Streamed twice (P outside K, two filter and two row tiles): fetched and generated twice,
    # and the dense weights are written into the weight buffer twice (the input buffer also
    # takes the 2-row halo: 2 rows x 8 columns x 64 channels).
    twice = dataclasses.replace(untiled(layer), tile_filters=32, tile_rows=4,
                                loop_order=("P", "K", "C"))
    g = LayerGraph("t", (1,), (layer,))
    row2 = evaluate(g, accel, mappings={"m": twice}).iloc[0]
    assert row2.weight_fetches == 2
    assert row2.weight_dram_bytes == 2000 and row2.gen_macs == 2000
    assert row2.sram_writes_bytes - row.sram_writes_bytes == layer.dense_weight_bytes + 2 * 8 * 64
    # Without a generator the array regenerates: 1000 MACs over 1024 PEs on top of compute.
    plain = run_untiled(layer, accel_with())
    dense = run_untiled(dataclasses.replace(layer, gen_macs=0), accel_with())
    assert plain.compute_cycles == dense.compute_cycles + 1000 / 1024


def test_factors_fetched_per_tile_unless_the_generator_holds_them():
    """A 2 x 4 (filters x channels) tiling: V bits are read once per channel tile (4x), U bits
    once per filter tile (2x), the basis once per tile (8x); U·W^b is rebuilt per filter tile."""
    layer = Layer("m", "conv", 1, 64, 64, (8, 8), (8, 8), (3, 3), padding=(1, 1),
                  weight_storage_bits=8000, gen_macs=1000, gen_bits=8, factor_out_bits=2000,
                  factor_in_bits=3000, factor_shared_bits=400, gen_in_macs=100)
    tiles = dataclasses.replace(untiled(layer), tile_filters=32, tile_channels=16)
    g = LayerGraph("t", (1,), (layer,))
    held = load_accelerator("mlg_gen", {"buffers": BIG})       # 48 KB factor buffer
    row = evaluate(g, held, mappings={"m": tiles}).iloc[0]
    assert row.weight_fetches == 1 and row.weight_dram_bytes == 1000
    assert row.gen_macs == 1000 + 100 * (2 - 1)
    for accel in (load_accelerator("mlg_gen", {"buffers": BIG,
                                               "weight_gen": {"factor_buffer_bytes": 0}}),
                  accel_with()):                                  # no generator at all
        row = evaluate(g, accel, mappings={"m": tiles}).iloc[0]
        # (8000 + 2000 (4-1) + 3000 (2-1) + 400 (8-1)) / 8
        assert row.weight_dram_bytes == (8000 + 6000 + 3000 + 2800) / 8
        assert row.gen_macs == 1100
    with pytest.raises(ValueError, match="add up to at most the stored weight bits"):
        dataclasses.replace(layer, factor_in_bits=7000)


def test_columns_and_totals():
    layers = (Layer("c", "conv", 1, 16, 32, (16, 16), (16, 16), (3, 3), padding=(1, 1)),
              Layer("p", "pool", 1, 32, 32, (16, 16), (8, 8), (2, 2), (2, 2)),
              Layer("fc", "linear", 1, 2048, 10, (1, 1), (1, 1)))
    g = LayerGraph("t", (16, 16, 16), layers)
    accel = load_accelerator("systolic_32")
    df = evaluate(g, accel)
    assert list(df.columns[1:len(COLUMNS) + 1]) == list(COLUMNS)
    totals = hardware_totals(df, g, accel)
    assert totals["latency_ms"] == pytest.approx(df.latency_cycles.sum() / 700e3)
    # Roofline by hand: 16*9*32*256 + 2048*10 MACs over 1024 PEs against the compulsory bytes
    # over 32 B/cycle.
    macs = 16 * 9 * 32 * 256 + 2048 * 10
    assert totals["roofline_latency_cycles"] == max(macs / 1024,
                                                    totals["compulsory_dram_bytes"] / 32)
    assert totals["roofline_latency_cycles"] <= totals["latency_cycles"]
    assert totals["compulsory_dram_bytes"] == sum(
        x.weight_bytes + x.input_bytes + x.output_bytes for x in layers)
    assert totals["tech"] == "horowitz45" and "Horowitz" in totals["tech_citation"]


# --- properties ---------------------------------------------------------------------------
@st.composite
def layers(draw):
    cin = draw(st.sampled_from([1, 3, 8, 16, 48, 64]))
    depthwise = draw(st.booleans()) and cin > 1
    cout = cin if depthwise else draw(st.sampled_from([1, 10, 16, 32, 96]))
    k = draw(st.sampled_from([1, 3, 5]))
    s = draw(st.sampled_from([1, 2]))
    hw = draw(st.integers(k, 20))
    pad = k // 2
    out = (hw + 2 * pad - k) // s + 1
    bits = draw(st.sampled_from([2, 4, 8, 16]))
    return Layer("l", "conv", draw(st.integers(1, 2)), cin, cout, (hw, hw), (out, out), (k, k),
                 (s, s), (pad, pad), groups=cin if depthwise else 1, weight_bits=bits,
                 act_bits=draw(st.sampled_from([4, 8])),
                 mac_density=draw(st.sampled_from([1.0, 0.5, 0.2])),
                 pred_bits=draw(st.sampled_from([0, 2])),
                 gen_macs=draw(st.sampled_from([0, 5000])), gen_bits=8)


@st.composite
def accelerators(draw):
    kb = draw(st.sampled_from([16, 32, 128]))
    shared = draw(st.booleans())
    buffers = ({"shared": {"size_bytes": 3 * kb * 1024, "bw_bytes_per_cycle": 64,
                           "double_buffered": draw(st.booleans())}} if shared else
               {name: {"size_bytes": kb * 1024, "bw_bytes_per_cycle": 64} for name in
                ("weight", "input", "output")})
    return {"array": {"rows": draw(st.sampled_from([4, 8, 16])),
                      "cols": draw(st.sampled_from([4, 8, 16])),
                      "dataflow": draw(st.sampled_from(["ws", "os", "is"])),
                      "precision_mode": draw(st.sampled_from(
                          ["bit_parallel", "bit_serial_act", "bit_serial_both", "bit_fusion"]))},
            "dram": {"bw_bytes_per_cycle": draw(st.sampled_from([4, 16, 64]))},
            "buffers": buffers}


def _spec(overrides):
    name = "systolic_32" if "weight" in overrides["buffers"] else "eyeriss_like"
    return load_accelerator(name, overrides)


def _scaled(overrides, section, key, factor):
    out = {k: dict(v) for k, v in overrides.items() if k != "buffers"}
    out["buffers"] = {n: dict(b) for n, b in overrides["buffers"].items()}
    if section == "buffers":
        for b in out["buffers"].values():
            b[key] *= factor
    else:
        out[section][key] *= factor
    return out


@settings(max_examples=50, deadline=None)
@given(layers(), accelerators())
def test_properties(layer, overrides):
    g = LayerGraph("t", (1,), (layer,))
    accel = _spec(overrides)
    row = evaluate(g, accel).iloc[0]
    assert row.dram_bytes >= row.compulsory_dram_bytes
    assert row.dram_transactions * accel.dram.transaction_bytes >= row.dram_bytes
    assert row.compute_cycles >= row.executed_macs * row.cycles_per_mac / accel.array.num_pes
    assert row.latency_cycles >= max(row.memory_cycles, row.compute_cycles)
    assert 0 < row.utilization <= 1
    # Monotone in the resource its objective measures: more buffer never costs DRAM bytes,
    # more bandwidth never costs latency.
    dram = evaluate(g, accel, objective="dram_bytes").iloc[0]
    bigger = evaluate(g, _spec(_scaled(overrides, "buffers", "size_bytes", 4)),
                      objective="dram_bytes").iloc[0]
    assert bigger.dram_bytes <= dram.dram_bytes
    fast = evaluate(g, accel, objective="latency_cycles").iloc[0]
    faster = evaluate(g, _spec(_scaled(overrides, "dram", "bw_bytes_per_cycle", 4)),
                      objective="latency_cycles").iloc[0]
    assert faster.latency_cycles <= fast.latency_cycles


SERIAL_MODES = ("bit_serial_act", "bit_serial_both", "bit_fusion")


@settings(max_examples=40, deadline=None)
@given(layers(), accelerators(), st.sampled_from(SERIAL_MODES), st.sampled_from([1, 2, 4]),
       st.sampled_from([2, 3, 4, 8]), st.integers(1, 8), st.sampled_from(OBJECTIVES))
def test_more_activation_bits_never_lower_cycles_with_the_mapping_fixed(
        layer, overrides, mode, bits_per_cycle, act_bits, extra_bits, objective):
    """On a bit-serial (or fused) array, a layer with wider activations takes at least as many
    cycles under the same mapping. The mapping is the one found for the wider layer (its tiles
    are the larger ones, so they fit the narrower layer too); with the search free the mapper
    may legitimately pick another mapping, so the search is not part of the relation."""
    overrides = {**overrides, "array": {**overrides["array"], "precision_mode": mode,
                                        "bits_per_cycle": bits_per_cycle}}
    accel = _spec(overrides)
    narrow = dataclasses.replace(layer, act_bits=act_bits)
    wide = dataclasses.replace(layer, act_bits=act_bits + extra_bits)
    graphs = [LayerGraph("t", (1,), (one,)) for one in (narrow, wide)]
    mappings = search_mappings(graphs[1], accel, objective)
    low, high = (evaluate(g, accel, mappings=mappings).iloc[0] for g in graphs)
    assert high.compute_cycles >= low.compute_cycles
    assert high.latency_cycles >= low.latency_cycles
    assert high.cycles_per_mac >= low.cycles_per_mac
