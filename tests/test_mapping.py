"""Mapper: tile-size candidates, refetch counts and DRAM traffic against hand counts."""

import dataclasses

import numpy as np
import pytest

from hwsim.accel import load_accelerator
from hwsim.cost import DEFAULT_OBJECTIVE, evaluate, hardware_totals, search_mappings, tile_sum
from hwsim.layer import Layer, LayerGraph
from hwsim.mapping import Mapping, tile_sizes, untiled
from hwsim.trace import trace
from models import create_model

BIG = {"weight": {"size_bytes": 1 << 24}, "input": {"size_bytes": 1 << 24},
       "output": {"size_bytes": 1 << 24}}


def graph(*layers):
    return LayerGraph("t", (3, 8, 8), tuple(layers))


def mapping(layer, filters, channels, rows, order):
    return dataclasses.replace(untiled(layer), tile_filters=filters, tile_channels=channels,
                               tile_rows=rows, loop_order=order)


def test_tile_sizes_and_tile_sum():
    assert list(tile_sizes(56)) == [1, 2, 4, 7, 8, 14, 16, 28, 32, 56]
    # 10 cut into tiles of 4: sizes 4, 4, 2.
    assert tile_sum(np.array(10), np.array(4), lambda t: t) == 10
    assert tile_sum(np.array(10), np.array(4), lambda t: np.ceil(t / 3)) == 2 + 2 + 1


CONV = Layer("c", "conv", 1, 64, 64, (8, 8), (8, 8), (3, 3), padding=(1, 1))


@pytest.mark.parametrize("order,weight,inputs", [
    # K (2 tiles) and P (2 tiles) loops; C is one tile. P innermost: weights stay, inputs come
    # back once per filter tile.
    (("K", "C", "P"), 1, 2),
    # P outermost: the filter tiles cycle inside it, so weights come back per row tile.
    (("P", "K", "C"), 2, 1),
])
def test_refetch_by_loop_order(order, weight, inputs):
    accel = load_accelerator("systolic_32", {"buffers": BIG})
    df = evaluate(graph(CONV), accel, mappings={"c": mapping(CONV, 32, 64, 4, order)})
    row = df.iloc[0]
    assert (row.weight_fetches, row.input_fetches, row.output_visits) == (weight, inputs, 1)
    assert row.num_tiles == 4
    assert row.weight_dram_bytes == CONV.weight_bytes * weight
    # Halo: 2 row tiles of 4 output rows read 6 input rows each, minus one padding row at the
    # top and one at the bottom: 10 of 8 rows.
    assert row.ifmap_dram_bytes == CONV.input_bytes * 10 / 8 * inputs
    assert row.ofmap_dram_bytes == CONV.output_bytes


def test_partial_sums_spill_when_channels_outside():
    accel = load_accelerator("systolic_32", {"buffers": BIG})
    m = mapping(CONV, 64, 16, 4, ("C", "K", "P"))  # 4 channel tiles outside P (2 row tiles)
    row = evaluate(graph(CONV), accel, mappings={"c": m}).iloc[0]
    assert row.output_visits == 4
    psum_bytes = CONV.output_elements * 4
    assert row.ofmap_dram_bytes == CONV.output_bytes + 2 * 3 * psum_bytes


def test_transactions_cover_bytes():
    accel = load_accelerator("systolic_32")
    row = evaluate(graph(CONV), accel).iloc[0]
    assert row.dram_transactions * 64 >= row.dram_bytes
    # Hand count, untiled: weights 36864 B = 576 bursts; each of the 64 input and 64 output
    # channel planes is 64 B = 1 burst.
    big = load_accelerator("systolic_32", {"buffers": BIG})
    row = evaluate(graph(CONV), big, mappings={"c": untiled(CONV)}).iloc[0]
    assert row.dram_transactions == 576 + 64 + 64


def test_vector_tiles_fill_dram_bursts():
    """A residual add's tiles all cost the same bytes and cycles; the search takes ones whose
    chunks fill 64 B bursts. Hand count: 2 inputs + 1 output x 64 channel planes of 32x32
    bytes = 16 bursts each (one-row tiles would take 32)."""
    add = Layer("a", "add", 1, 64, 64, (32, 32), (32, 32), inputs=("x", "y"))
    for objective in ("balanced", "dram_bytes", "energy_pj"):
        row = evaluate(graph(add), load_accelerator("systolic_32"), objective=objective).iloc[0]
        assert row.dram_transactions == 3 * 64 * 16, objective


def test_search_is_deterministic_and_replayable():
    accel = load_accelerator("mlg_gen")
    layers = (Layer("a", "conv", 1, 256, 256, (14, 14), (14, 14), (3, 3), padding=(1, 1)),
              Layer("b", "conv", 1, 256, 512, (14, 14), (7, 7), (1, 1), (2, 2)))
    first = search_mappings(graph(*layers), accel)
    assert first == search_mappings(graph(*layers), accel)
    assert all(isinstance(m, Mapping) for m in first.values())
    searched = evaluate(graph(*layers), accel)
    replayed = evaluate(graph(*layers), accel, mappings=first)
    assert searched.equals(replayed)
    with pytest.raises(dataclasses.FrozenInstanceError):
        first["a"].tile_rows = 3


def test_weights_of_big_layers_stream_on_mlg_gen():
    layer = Layer("big", "conv", 1, 512, 512, (7, 7), (7, 7), (3, 3), padding=(1, 1))
    row = evaluate(graph(layer), load_accelerator("mlg_gen")).iloc[0]
    assert row.tile_filters * row.tile_channels * 9 <= 8192  # half of the 16 KB weight buffer
    assert row.num_tiles > 1


def test_smallest_tile_too_big_names_layer_and_buffer():
    accel = load_accelerator("systolic_32", {"buffers": {"output": {"size_bytes": 256}}})
    with pytest.raises(ValueError, match=r"^Layer c: the smallest tile that fills the array .* "
                                         r"needs \d+ B of the output buffer, which has 256 B"):
        evaluate(graph(CONV), accel)
    with pytest.raises(ValueError, match="Layer c: the given mapping's tile needs"):
        evaluate(graph(CONV), accel, mappings={"c": untiled(CONV)})


def test_objectives():
    accel = load_accelerator("systolic_32")
    layer = Layer("l", "conv", 1, 64, 256, (56, 56), (56, 56))
    results = {obj: evaluate(graph(layer), accel, objective=obj).iloc[0]
               for obj in ("dram_bytes", "energy_pj", "latency_cycles")}
    assert results["dram_bytes"].dram_bytes <= results["latency_cycles"].dram_bytes
    assert results["latency_cycles"].latency_cycles <= results["dram_bytes"].latency_cycles
    assert results["energy_pj"].energy_pj <= results["dram_bytes"].energy_pj
    with pytest.raises(ValueError, match="objective must be one of"):
        evaluate(graph(layer), accel, objective="area")


def test_default_objective_balances_latency_and_dram():
    """On CIFAR ResNet-18 the default gives up at most 5% of either optimum, where each
    single objective gives up more of the other figure."""
    graph = trace(create_model("resnet18"), (3, 32, 32))
    for accel in (load_accelerator("systolic_32"), load_accelerator("bitfusion_16")):
        totals = {obj: hardware_totals(evaluate(graph, accel, objective=obj), graph, accel)
                  for obj in (DEFAULT_OBJECTIVE, "dram_bytes", "latency_cycles")}
        fastest, leanest = totals["latency_cycles"], totals["dram_bytes"]
        balanced = totals[DEFAULT_OBJECTIVE]
        assert balanced["latency_cycles"] <= 1.05 * fastest["latency_cycles"]
        assert balanced["dram_bytes"] <= 1.05 * leanest["dram_bytes"]
        assert fastest["dram_bytes"] > 1.05 * leanest["dram_bytes"]
