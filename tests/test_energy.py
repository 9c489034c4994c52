"""Energy from action counts: hand-counted actions x overridden per-action energies, the YAML
overrides, and the in-code checks failing when a figure is wrong."""

import dataclasses

import numpy as np
import pytest

from hwsim import cost, energy
from hwsim.accel import load_accelerator
from hwsim.cost import evaluate
from hwsim.layer import Layer, LayerGraph
from hwsim.mapping import fixed_candidates, untiled
from hwsim.workload import LayerArrays

# 8 channels, 3x3, 10x10 -> 8x8, 16 filters: Sr = 72, Sc = 16, T = 64, on an 8x8 WS array.
SMALL = Layer("s", "conv", 1, 8, 16, (10, 10), (8, 8), (3, 3))
PRICES = {"energy": {"mac_pj": {8: 0.5}}, "dram": {"pj_per_bit": 10.0}, "array": {
    "rows": 8, "cols": 8}, "buffers": {name: {"size_bytes": 1 << 20, "read_pj_per_byte": 1.0,
                                              "write_pj_per_byte": 2.0}
                                       for name in ("weight", "input", "output")}}


def test_energy_is_hand_counted_actions_times_given_prices():
    accel = load_accelerator("systolic_32", PRICES)
    row = evaluate(LayerGraph("t", (1,), (SMALL,)), accel, mappings={"s": untiled(SMALL)}).iloc[0]
    macs = 64 * 16 * 72
    dram = 16 * 72 + 8 * 100 + 16 * 64          # weights, input, output: each crosses once
    # SRAM, by hand: weights read once into the array (1152 B); each input element read once
    # per column fold (2); 9 row folds = 9 accumulation passes over 1024 outputs at 4 B (8
    # reads back), the finished outputs read once for DRAM; writes: the DRAM fills of weights
    # and inputs and 9 partial-sum passes.
    reads = 1152 + 64 * 72 * 2 + 1024 * 8 * 4 + 1024
    writes = 1152 + 800 + 1024 * 9 * 4
    assert row.dram_bytes == dram
    assert (row.sram_reads_bytes, row.sram_writes_bytes) == (reads, writes)
    assert row.mac_energy_pj == macs * 0.5
    assert row.dram_energy_pj == dram * 8 * 10.0
    assert row.sram_energy_pj == reads * 1.0 + writes * 2.0
    assert row.energy_pj == macs * 0.5 + dram * 80.0 + reads + 2 * writes


def test_prices_come_from_the_tech_table_unless_overridden():
    base = load_accelerator("systolic_32")
    q = LayerArrays.from_layers((SMALL,))
    table = energy.action_energies(base, q)
    # horowitz45: 8x8 multiply 0.2 pJ, 32-bit add 0.1 pJ, DRAM 1950 pJ per 64 bits.
    assert float(table.pe_mults[0]) == pytest.approx(0.2)
    assert float(table.pe_adds[0]) == pytest.approx(0.1)
    assert table.dram_bits == pytest.approx(1950 / 64)
    priced = energy.action_energies(load_accelerator("systolic_32", PRICES), q)
    assert (float(priced.pe_mults[0]), float(priced.pe_adds[0])) == (0.5, 0.0)
    assert (priced.weight_sram_read_bytes, priced.output_sram_write_bytes) == (1.0, 2.0)


@pytest.mark.parametrize("override, message", [
    ({"energy": {"mac_bits": 3}}, "energy.mac_bits: unknown key"),
    ({"energy": {"mac_pj": {8: "cheap"}}}, r"energy.mac_pj.8: expected float"),
    ({"energy": {"mac_pj": {8: -1.0}}}, "energy.mac_pj: bits and pJ must be > 0"),
    ({"buffers": {"weight": {"read_pj_per_byte": 0}}}, "read_pj_per_byte must be > 0"),
])
def test_bad_energy_overrides_are_one_line_errors(override, message):
    with pytest.raises(ValueError, match=message):
        load_accelerator("systolic_32", override)


def _costs(accel):
    m = untiled(SMALL).bind(accel)
    cand = fixed_candidates([m])
    q = LayerArrays.from_layers((SMALL,)).view(cand.layer)
    return cost.candidate_costs(accel, q, cand), q


def test_energy_check_recomputes_independently():
    accel = load_accelerator("systolic_32", PRICES)
    c, q = _costs(accel)
    energy.check_energy(c, accel, q)
    # A record that lost its DRAM bits, or energy parts that drop a count, fail the check.
    broken = dict(c, counts=dataclasses.replace(c["counts"], dram_bits=c["counts"].dram_bits / 2))
    with pytest.raises(AssertionError, match="energy_pj of layer 0"):
        energy.check_energy(dict(broken, energy_pj=energy.energy_breakdown(
            broken["counts"], energy.action_energies(accel, q))["energy_pj"]), accel, q)
    with pytest.raises(AssertionError, match="sram_reads_bytes"):
        energy.check_energy(dict(c, sram_reads_bytes=c["sram_reads_bytes"] + 1), accel, q)


def test_latency_below_its_bounds_is_caught():
    accel = load_accelerator("systolic_32", PRICES)
    c, q = _costs(accel)
    cost._checked(c, accel, q)
    with pytest.raises(AssertionError, match="latency_cycles below"):
        cost._checked(dict(c, latency_cycles=c["compute_cycles"] - 10), accel, q)
    with pytest.raises(AssertionError, match="compulsory"):
        cost._checked(dict(c, dram_bytes=np.zeros(1)), accel, q)
