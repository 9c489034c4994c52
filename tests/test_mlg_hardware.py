"""MLG on the accelerator model: traced MLG layers against hand-derived oracles.

The semantics are docs/architecture.md, Compression on hardware.

DRAM holds the compressed factors, re-fetched with every weight pass; the weights are
regenerated with every pass (on the ``weight_gen`` unit when there is one, else on the array)
and the generated dense weights are written into the weight buffer. Oracles are computed from
the modules' own tensors, not from ``hw_stats()``.
"""

import dataclasses
import math

import numpy as np
import pytest
import torch

from hwsim.accel import load_accelerator
from hwsim.cost import evaluate
from hwsim.layer import LayerGraph
from hwsim.mapping import untiled
from hwsim.tech import HOROWITZ45, mac_energy_pj
from hwsim.trace import trace
from models import create_model
from models.layers.mlg import MLGConv2d

# An 8-bit generator, so generator and array run a b-bit MAC in the same ceil(b/8)^2 passes.
GEN_8BIT = {"weight_gen": {"macs_per_cycle": 256, "bits": 8}}
BIG = {"weight": {"size_bytes": 1 << 24}, "input": {"size_bytes": 1 << 24},
       "output": {"size_bytes": 1 << 24}}
WIDTH, MLG = 0.25, {"base_out": 11}  # quarter-width 2-11-3-6-3 (experiments/configs/mlg_small)
SHAPE, BATCH = (3, 32, 32), 2  # batch 2: the small weight buffer makes some layers stream twice


@pytest.fixture(scope="module")
def graphs():
    torch.manual_seed(0)
    model = create_model("mlg_resnet18", width=WIDTH, mlg=MLG)
    mlg = trace(model, SHAPE, batch=BATCH, name="mlg_resnet18")
    dense = trace(create_model("resnet18", width=WIDTH), SHAPE, batch=BATCH, name="resnet18")
    modules = {name: m for name, m in model.named_modules()
               if isinstance(m, MLGConv2d) and m.plan is not None}
    return mlg, dense, modules


def levels(bits: int) -> int:
    return 2 ** bits - 1


def oracle(module: MLGConv2d, weight_bits: int) -> dict:
    """Compressed bits, generation MACs and widest generation operand, from the tensors.

    The folded BatchNorm bias travels with the factors at the weight precision. MACs: U·W^b
    costs |U|·k² (each U row times a B_i x k² basis), V·W1 costs |V|·C_i·k². What a filter x
    channel tile needs: V by output channel; with V, U (or a 1x1's basis) by input channel and
    a two-level basis by every tile, whose U·W^b is rebuilt per filter tile; without V the
    basis is per output channel.
    """
    area = module.kernel_size[0] * module.kernel_size[1]
    rows = module.in_channels // module.groups
    u, v = module.coeff_in, module.coeff_out
    q_b = module.basis_quantizer.bits
    q_u, q_v = module.coeff_in_quantizer.bits, module.coeff_out_quantizer.bits
    basis_bits = module.basis().numel() * q_b
    bits = basis_bits + module.out_channels * weight_bits
    macs, operands, w1_levels = 0, [q_b], levels(q_b)
    if u is not None:
        bits += u.numel() * q_u
        macs += u.numel() * area
        operands.append(q_u)
        w1_levels *= module.base_in * levels(q_u)
    if v is not None:
        bits += v.numel() * q_v
        macs += v.numel() * rows * area
        operands += [math.ceil(math.log2(w1_levels + 1)), q_v]
    if v is None:
        split = {"out_bits": basis_bits, "in_bits": 0, "shared_bits": 0, "in_macs": 0}
    elif u is None:
        split = {"out_bits": v.numel() * q_v, "in_bits": basis_bits, "shared_bits": 0,
                 "in_macs": 0}
    else:
        split = {"out_bits": v.numel() * q_v, "in_bits": u.numel() * q_u,
                 "shared_bits": basis_bits, "in_macs": u.numel() * area}
    return {"storage_bits": bits, "gen_macs": macs, "gen_bits": max(operands), **split}


def dense_twin(graph: LayerGraph) -> LayerGraph:
    """The same layers with the weights stored dense at the same weight_bits, no generation."""
    layers = tuple(dataclasses.replace(layer, weight_storage_bits=None, stored_params=None,
                                       gen_macs=0, gen_bits=0, gen_in_macs=0, factor_out_bits=0,
                                       factor_in_bits=0, factor_shared_bits=0)
                   for layer in graph.layers)
    return dataclasses.replace(graph, layers=layers)


def mlg_rows(df, modules):
    rows = df.loc[list(modules)]
    assert len(rows) == len(modules) > 10
    return rows


def test_generated_weights_are_8_bit_and_factors_are_what_is_stored(graphs):
    mlg, _, modules = graphs
    for name, module in modules.items():
        layer, want = mlg[name], oracle(module, 8)
        assert layer.weight_bits == 8  # requantized on chip (MLGConfig default)
        assert layer.weight_bytes == want["storage_bits"] / 8
        assert layer.gen_macs == want["gen_macs"] and layer.gen_bits == want["gen_bits"]


@pytest.mark.parametrize("accel_name, generator", [("mlg_gen", GEN_8BIT), ("systolic_32", {})])
def test_factors_are_refetched_and_weights_regenerated_every_pass(graphs, accel_name, generator):
    mlg, _, modules = graphs
    df = evaluate(mlg, load_accelerator(accel_name, {"buffers": {"weight": {"size_bytes": 4096}},
                                                     **generator}))
    rows = mlg_rows(df, modules)
    assert (rows.weight_fetches > 1).any() and (rows.weight_fetches == 1).any()
    held = accel_name == "mlg_gen"  # its factor buffer holds these small layers' factors
    for name, row in rows.iterrows():
        layer, want = mlg[name], oracle(modules[name], 8)
        n_k = math.ceil(layer.filters_per_group / row.tile_filters)
        n_c = math.ceil(layer.in_channels / row.tile_channels)
        pass_bits = want["storage_bits"] + (0 if held else (
            want["out_bits"] * (n_c - 1) + want["in_bits"] * (n_k - 1)
            + want["shared_bits"] * (n_k * n_c - 1)))
        assert row.weight_dram_bytes == pytest.approx(pass_bits / 8 * row.weight_fetches)
        assert row.gen_macs == (want["gen_macs"] + want["in_macs"] * (n_k - 1)) * row.weight_fetches
        # Both the 8-bit generator and the 8-bit array run a b-bit MAC as ceil(b/8)^2 passes,
        # each costing one 8x8 multiply and a 16-bit add.
        passes = (-(-want["gen_bits"] // 8)) ** 2
        assert row.gen_energy_pj == pytest.approx(
            row.gen_macs * passes * float(mac_energy_pj(HOROWITZ45, 8, 8, 16)))


def test_generation_runs_on_the_weight_gen_unit(graphs):
    """256 MACs/cycle at 8-bit operands: a w-bit operand takes ceil(w/8) slices, so a w x w MAC
    takes ceil(w/8)^2 passes; the array's compute cycles do not change."""
    mlg, _, modules = graphs
    accel = load_accelerator("mlg_gen", GEN_8BIT)
    df = evaluate(mlg, accel)
    twin = evaluate(dense_twin(mlg), accel, mappings=dict(df["mapping"]))
    for name, row in mlg_rows(df, modules).iterrows():
        passes = math.ceil(oracle(modules[name], 8)["gen_bits"] / 8) ** 2
        assert row.gen_cycles == row.gen_macs * passes / 256
        assert row.compute_cycles == twin.loc[name, "compute_cycles"]
        assert row.latency_cycles >= row.gen_cycles


def test_generation_runs_on_the_array_without_a_unit(graphs):
    """systolic_32: generation takes the 32x32 8-bit array, ceil(w/8)^2 passes per MAC, on
    top of the layer's own compute cycles."""
    mlg, _, modules = graphs
    accel = load_accelerator("systolic_32")
    assert accel.weight_gen is None
    df = evaluate(mlg, accel)
    twin = evaluate(dense_twin(mlg), accel, mappings=dict(df["mapping"]))
    for name, row in mlg_rows(df, modules).iterrows():
        passes = math.ceil(oracle(modules[name], 8)["gen_bits"] / 8) ** 2
        on_array = row.gen_macs * passes / 1024
        assert row.gen_cycles == on_array
        assert row.compute_cycles == twin.loc[name, "compute_cycles"] + on_array


def test_weight_buffer_is_written_with_generated_dense_weights(graphs):
    mlg, _, modules = graphs
    accel = load_accelerator("mlg_gen", {"buffers": BIG})
    name = "layers.1.0.conv2"
    layer = mlg[name]
    # One pass vs two: P (2 images) outside K (2 filter tiles); inputs and outputs move once.
    once = untiled(layer)
    twice = dataclasses.replace(once, tile_filters=layer.out_channels // 2,
                                loop_order=("P", "K", "C"))
    single = LayerGraph("t", SHAPE, (layer,))
    a = evaluate(single, accel, mappings={name: once}).iloc[0]
    b = evaluate(single, accel, mappings={name: twice}).iloc[0]
    assert (a.weight_fetches, b.weight_fetches) == (1, 2)
    assert a.ifmap_dram_bytes == b.ifmap_dram_bytes and a.ofmap_dram_bytes == b.ofmap_dram_bytes
    dense_bytes = (layer.weight_count + layer.out_channels) * 8 / 8  # generated at 8 bits
    assert b.sram_writes_bytes - a.sram_writes_bytes == dense_bytes
    assert b.weight_dram_bytes - a.weight_dram_bytes == oracle(modules[name], 8)[
        "storage_bits"] / 8
    # Two passes, and each rebuilds U·W^b for its second filter tile.
    assert b.gen_macs == 2 * (a.gen_macs + oracle(modules[name], 8)["in_macs"])
    # The buffer receives the same bytes as for the dense layer: generated, not compressed.
    twin = evaluate(dense_twin(single), accel, mappings={name: twice}).iloc[0]
    assert b.sram_writes_bytes == twin.sram_writes_bytes
    assert twin.weight_dram_bytes == 2 * dense_bytes


@pytest.mark.parametrize("accel_name, overrides", [("mlg_gen", {"buffers": BIG}),
                                                   ("mlg_gen", None)])
def test_weight_dram_ratio_is_the_storage_ratio_when_fetched_once(graphs, accel_name, overrides):
    mlg, dense, modules = graphs
    accel = load_accelerator(accel_name, overrides)
    # The DRAM objective: the test is about what crosses DRAM when weights come in once.
    m, d = (evaluate(g, accel, objective="dram_bytes") for g in (mlg, dense))
    once = [name for name in modules
            if m.loc[name, "weight_fetches"] == 1 and d.loc[name, "weight_fetches"] == 1]
    assert len(once) >= 5
    for name in once:
        dense_bits = (dense[name].weight_count + dense[name].bias_count) * 8
        assert dense[name].weight_bits == mlg[name].weight_bits == 8
        assert m.loc[name, "weight_dram_bytes"] / d.loc[name, "weight_dram_bytes"] == (
            oracle(modules[name], 8)["storage_bits"] / dense_bits)
    if overrides is not None:  # every weight fits: whole-model totals follow the same rule
        assert (m.weight_fetches[m.op != "add"] == 1).all()
        compressed = sum(oracle(module, 8)["storage_bits"] for module in modules.values())
        fc = mlg["fc"].stored_weight_bits
        assert fc == (mlg["fc"].weight_count + mlg["fc"].bias_count) * 8
        dense_bits = sum((layer.weight_count + layer.bias_count) * 8 for layer in dense.layers)
        assert np.isclose(m.weight_dram_bytes.sum() / d.weight_dram_bytes.sum(),
                          (compressed + fc) / dense_bits, rtol=1e-12)
