"""Tiles: the closed forms over candidates equal the sums over ``Mapping.tiles()``, and the
tiles themselves match hand counts."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwsim.accel import load_accelerator
from hwsim.cost import evaluate, tile_costs
from hwsim.layer import Layer, LayerGraph
from hwsim.mapping import LOOP_ORDERS, Mapping, Tile, untiled

BIG = {"weight": {"size_bytes": 1 << 26}, "input": {"size_bytes": 1 << 26},
       "output": {"size_bytes": 1 << 26}}


@st.composite
def layer_and_mapping(draw):
    op = draw(st.sampled_from(["conv", "conv", "conv", "linear", "pool", "add"]))
    cin = draw(st.sampled_from([1, 3, 5, 8, 16, 24]))
    if op in ("pool", "add"):
        k = draw(st.sampled_from([1, 2, 3])) if op == "pool" else 1
        s = draw(st.sampled_from([1, 2])) if op == "pool" else 1
        hw = draw(st.integers(k, 11))
        out = (hw - k) // s + 1
        layer = Layer("l", op, draw(st.integers(1, 2)), cin, cin, (hw, hw), (out, out), (k, k),
                      (s, s), inputs=("a", "b") if op == "add" else ())
    elif op == "linear":
        layer = Layer("l", "linear", draw(st.integers(1, 3)), cin * 8,
                      draw(st.sampled_from([3, 10, 40])), (1, 1), (1, 1))
    else:
        groups = draw(st.sampled_from([1, 1, cin])) if cin > 1 else 1
        cout = cin if groups > 1 else draw(st.sampled_from([1, 6, 16, 40]))
        k = draw(st.sampled_from([1, 2, 3, 5]))
        s = draw(st.sampled_from([1, 2, 3]))
        pad = draw(st.integers(0, k // 2 + 1))
        hw = draw(st.integers(max(k - 2 * pad, 1), 13))
        out = (hw + 2 * pad - k) // s + 1
        stored = None
        extra = {}
        if draw(st.booleans()) and groups == 1:    # a generated (MLG-like) layer
            dense_bits = cin * cout * k * k * 8
            stored = dense_bits // 4
            extra = dict(gen_macs=5 * cin * cout, gen_bits=8, gen_in_macs=cin * 3,
                         factor_out_bits=stored // 4, factor_in_bits=stored // 5,
                         factor_shared_bits=stored // 10)
        layer = Layer("l", "conv", draw(st.integers(1, 2)), cin, cout, (hw, hw), (out, out),
                      (k, k), (s, s), (pad, pad), groups=groups,
                      weight_bits=draw(st.sampled_from([4, 8, 16])),
                      mac_density=draw(st.sampled_from([1.0, 0.6])),
                      weight_storage_bits=stored, **extra)
    dims = untiled(layer).dims
    sizes = [draw(st.integers(1, d)) for d in dims]
    order = draw(st.sampled_from(LOOP_ORDERS)) if layer.has_weights else LOOP_ORDERS[0]
    return layer, Mapping(layer, *sizes, loop_order=order)


@st.composite
def accelerator(draw):
    name = draw(st.sampled_from(["systolic_32", "mlg_gen", "eyeriss_like"]))
    buffers = ({"shared": {"size_bytes": 1 << 26}} if name == "eyeriss_like" else BIG)
    return load_accelerator(name, {"buffers": buffers, "array": {
        "rows": draw(st.sampled_from([4, 8])), "cols": draw(st.sampled_from([4, 8])),
        "dataflow": draw(st.sampled_from(["ws", "os", "is"]))}})


@settings(max_examples=150, deadline=None)
@given(layer_and_mapping(), accelerator())
def test_tile_sums_equal_evaluate(case, accel):
    layer, m = case
    row = evaluate(LayerGraph("t", (1,), (layer,)), accel, mappings={"l": m}).iloc[0]
    bound = row.mapping
    tiles = list(bound.tiles())
    costs = tile_costs(bound, accel)
    assert len(tiles) == bound.num_tiles == row.num_tiles == len(costs.compute_cycles)
    assert [t.index for t in tiles] == list(range(len(tiles)))
    close = dict(rel=1e-9, abs=1e-6)
    assert costs.weight_read_bytes.sum() == pytest.approx(row.weight_dram_bytes, **close)
    assert costs.input_read_bytes.sum() == pytest.approx(row.ifmap_dram_bytes, **close)
    assert (costs.psum_read_bytes.sum() + costs.output_write_bytes.sum()
            == pytest.approx(row.ofmap_dram_bytes, **close))
    assert costs.gen_cycles.sum() == pytest.approx(row.gen_cycles, **close)
    assert costs.compute_cycles.sum() == pytest.approx(row.compute_cycles, **close)
    # The Tile objects carry the same bytes as the vectorized per-tile costs.
    for name in ("weight_read_bytes", "input_read_bytes", "psum_read_bytes",
                 "output_write_bytes", "stationary_changed"):
        assert [getattr(t, name) for t in tiles] == pytest.approx(list(getattr(costs, name)))
    # Every block is touched by some tile; sizes add up to the dimensions per index.
    g, k, c, _ = bound.dims
    assert sum(t.groups for t in tiles if t.filter == t.channel == t.row == 0) == g
    assert sum(t.filters for t in tiles if t.group == t.channel == t.row == 0) == k
    assert sum(t.channels for t in tiles if t.group == t.filter == t.row == 0) == c
    assert sum(t.rows for t in tiles if t.group == t.filter == t.channel == 0) == (
        layer.batch * layer.out_hw[0])


# 3 -> 32 channels, 3x3, 16x16 output: Sr = 27 rows, one fold on a 32x32 array.
STEM = Layer("stem", "conv", 1, 3, 32, (16, 16), (16, 16), (3, 3), padding=(1, 1))


@pytest.mark.parametrize("rows", [16, 8, 4, 2])
def test_fill_paid_once_while_the_weights_stay(rows):
    accel = load_accelerator("systolic_32")
    m = dataclasses.replace(untiled(STEM), tile_rows=rows)
    row = evaluate(LayerGraph("t", (1,), (STEM,)), accel, mappings={"stem": m}).iloc[0]
    # One fill (2*32 + 32 - 2) and 256 streamed pixels, whatever the row tiling.
    assert row.compute_cycles == 94 + 256
    changed = [t.stationary_changed for t in row.mapping.tiles()]
    assert changed == [True] + [False] * (16 // rows - 1)


def test_tiles_walk_the_loop_order_and_move_blocks_once():
    layer = Layer("c", "conv", 1, 8, 8, (4, 4), (4, 4), (3, 3), padding=(1, 1))
    m = Mapping(layer, 1, 4, 4, 2, ("C", "P", "K")).bind(load_accelerator("systolic_32"))
    tiles = list(m.tiles())
    assert all(isinstance(t, Tile) for t in tiles)
    assert [(t.channel, t.row, t.filter) for t in tiles[:4]] == [(0, 0, 0), (0, 0, 1),
                                                                 (0, 1, 0), (0, 1, 1)]
    # Weights: blocks (k, c) cycle inside P: every tile fetches 4x4x9 bytes.
    assert [t.weight_read_bytes for t in tiles] == [144] * 8
    # Inputs: block (c, p) stays across the K loop; rows 0-2 then 1-3 of 4 (padding free).
    assert [t.input_read_bytes for t in tiles[:4]] == [4 * 3 * 4, 0, 4 * 3 * 4, 0]
    # Outputs: channel tile 0 spills partial sums (32-bit) and tile 1 reads them back.
    assert tiles[0].output_write_bytes == 4 * 2 * 4 * 4 and tiles[0].psum_read_bytes == 0
    assert tiles[4].psum_read_bytes == 4 * 2 * 4 * 4
    assert tiles[4].output_write_bytes == 4 * 2 * 4  # finished 8-bit outputs


def test_strided_1x1_reads_only_what_it_uses():
    """A 1x1 stride-2 shortcut reads every other row and column: a quarter of its input."""
    layer = Layer("sc", "conv", 1, 64, 128, (16, 16), (8, 8), (1, 1), (2, 2))
    accel = load_accelerator("systolic_32", {"buffers": BIG})
    for m in (untiled(layer), dataclasses.replace(untiled(layer), tile_rows=3)):
        row = evaluate(LayerGraph("t", (1,), (layer,)), accel, mappings={"sc": m}).iloc[0]
        assert row.ifmap_dram_bytes == 64 * 8 * 8
        assert row.compulsory_dram_bytes == layer.weight_bytes + 64 * 8 * 8 + layer.output_bytes


def test_halo_rows_counted_per_tile():
    # 3x3 stride 1 pad 1 on 8 rows cut into 3 + 3 + 2 output rows: reads 4 + 5 + 3 = 12 rows.
    layer = Layer("c", "conv", 1, 2, 2, (8, 8), (8, 8), (3, 3), padding=(1, 1))
    m = dataclasses.replace(untiled(layer), tile_rows=3)
    row = evaluate(LayerGraph("t", (1,), (layer,)), load_accelerator("systolic_32"),
                   mappings={"c": m}).iloc[0]
    assert row.ifmap_dram_bytes == 2 * 12 * 8
    assert np.isclose(sum(t.input_read_bytes for t in row.mapping.tiles()), 2 * 12 * 8)
