"""Energy from action counts: what each layer does, counted per action, times the energy of
one action (Accelergy's idea), and a check that recomputes the total another way.

``ActionCounts`` is the record ``hwsim.cost`` builds per layer (or candidate) from its cycles
and traffic; ``ActionEnergies`` holds the per-action energies of an accelerator: its named tech
table with the YAML's overrides applied.
"""

from dataclasses import dataclass, fields

import numpy as np

from . import mapping as mp
from .accel import Accelerator
from .tech import add_energy_pj, get_tech, mac_energy_pj, mult_energy_pj, sram_pj_per_byte


@dataclass(frozen=True)
class ActionCounts:
    """What each layer does, counted per action (arrays, one entry per layer or candidate).

    ``pe_mults`` / ``pe_adds``: PE-cycles of the array's MACs (executed MACs x cycles per MAC;
    the multiplies scaled by the activation bits computed under precision gating on a
    bit-parallel array); ``vector_ops``: pool / add / concat element ops; ``gen_ops``: weight
    generation operations of the unit that runs them; per buffer the SRAM bytes read and
    written; ``dram_bits``: bits crossing the DRAM interface.
    """

    pe_mults: np.ndarray
    pe_adds: np.ndarray
    vector_ops: np.ndarray
    gen_ops: np.ndarray
    weight_sram_read_bytes: np.ndarray
    weight_sram_write_bytes: np.ndarray
    input_sram_read_bytes: np.ndarray
    input_sram_write_bytes: np.ndarray
    output_sram_read_bytes: np.ndarray
    output_sram_write_bytes: np.ndarray
    dram_bits: np.ndarray


@dataclass(frozen=True)
class ActionEnergies:
    """Energy of one action of each kind (pJ), field for field with ``ActionCounts``."""

    pe_mults: np.ndarray
    pe_adds: np.ndarray
    vector_ops: np.ndarray
    gen_ops: np.ndarray
    weight_sram_read_bytes: float
    weight_sram_write_bytes: float
    input_sram_read_bytes: float
    input_sram_write_bytes: float
    output_sram_read_bytes: float
    output_sram_write_bytes: float
    dram_bits: float

    def take(self, index: np.ndarray) -> "ActionEnergies":
        """The per-layer energies at ``index`` (one entry per candidate)."""
        return ActionEnergies(**{f.name: _take_array(getattr(self, f.name), index)
                                 for f in fields(self)})


def _take_array(value, index):
    return value[index] if isinstance(value, np.ndarray) else value


ENERGY_PARTS = {"mac_energy_pj": ("pe_mults", "pe_adds", "vector_ops"),
                "sram_energy_pj": tuple(f"{t}_sram_{a}_bytes" for t in mp.TENSORS
                                        for a in ("read", "write")),
                "dram_energy_pj": ("dram_bits",), "gen_energy_pj": ("gen_ops",)}


def gated_fraction(accel: Accelerator, q) -> np.ndarray:
    """Fraction of a MAC's multiply that switches: on a bit-parallel array precision gating
    computes pred_bits for every output and the LSBs for the lsb_density fraction."""
    if accel.array.precision_mode != "bit_parallel":
        return np.ones_like(q.act_bits)
    a, pred = q.act_bits, q.pred_bits
    return np.where(pred > 0, (pred + q.lsb_density * (a - pred)) / a, 1.0)


def action_counts(accel: Accelerator, q, pe_cycles, gen_ops, reads, writes, dram_bytes):
    """The action-count record of each layer from its cycles and traffic."""
    gated = gated_fraction(accel, q)
    vector = q.is_vector > 0
    pe = np.where(vector, 0.0, pe_cycles)
    return ActionCounts(
        pe_mults=pe * gated, pe_adds=pe, vector_ops=np.where(vector, q.vector_ops, 0.0),
        gen_ops=gen_ops, **{f"{t}_sram_read_bytes": reads[t] for t in mp.TENSORS},
        **{f"{t}_sram_write_bytes": writes[t] for t in mp.TENSORS}, dram_bits=dram_bytes * 8)


def action_energies(accel: Accelerator, q) -> ActionEnergies:
    """Per-action energies: the named tech table, with the accelerator's overrides applied.

    A PE-cycle is an m x m multiply (m x bits_per_cycle with bit-serial activations) plus an
    add at accum_bits; a vector op an add at act_bits; a generator operation a g x g MAC with
    a 2g-bit add (a PE-cycle with a 2m-bit add when the array generates). SRAM: per byte, by
    buffer size; DRAM: per bit.
    """
    tech = get_tech(accel.tech)
    array = accel.array
    act_width = array.bits_per_cycle if array.precision_mode == "bit_serial_act" else array.mac_bits
    mult = mult_energy_pj(tech, array.mac_bits, act_width)
    override = accel.energy.mac(array.mac_bits)
    pe_mult = np.full_like(q.accum_bits, override if override is not None else mult)
    pe_add = 0.0 * q.accum_bits if override is not None else add_energy_pj(tech, q.accum_bits)
    if accel.weight_gen is not None:
        unit = accel.weight_gen.bits
        gen = accel.energy.mac(unit) or mac_energy_pj(tech, unit, unit, 2 * unit)
    else:
        gen = override or mult + add_energy_pj(tech, 2 * array.mac_bits)
    sram = {}
    for t in mp.TENSORS:
        buffer = accel.buffer(t)
        table = float(sram_pj_per_byte(tech, buffer.size_bytes))
        sram[f"{t}_sram_read_bytes"] = buffer.read_pj_per_byte or table
        sram[f"{t}_sram_write_bytes"] = buffer.write_pj_per_byte or table
    return ActionEnergies(pe_mults=pe_mult, pe_adds=pe_add,
                          vector_ops=add_energy_pj(tech, q.act_bits),
                          gen_ops=np.full_like(q.accum_bits, float(gen)), **sram,
                          dram_bits=accel.dram.pj_per_bit or tech.dram_pj_per_bit)


def energy_breakdown(counts: ActionCounts, energies: ActionEnergies) -> dict[str, np.ndarray]:
    """Energy parts (pJ) = counts x per-action energies, and their total ``energy_pj``."""
    parts = {name: sum(getattr(counts, f) * getattr(energies, f) for f in actions)
             for name, actions in ENERGY_PARTS.items()}
    parts["energy_pj"] = sum(parts.values())
    return parts


def check_energy(c: dict, accel: Accelerator, q) -> None:
    """Recompute every layer's energy from its reported figures, not from the record's sums:
    MACs from executed MACs and cycles per MAC, DRAM from the per-tensor bytes, SRAM from the
    per-buffer bytes (which must add up to the reported reads and writes)."""
    e = action_energies(accel, q)
    counts = c["counts"]
    vector = q.is_vector > 0
    pe = np.where(vector, 0, c["executed_macs"] * c["cycles_per_mac"])
    mac = (pe * (gated_fraction(accel, q) * e.pe_mults + e.pe_adds)
           + np.where(vector, c["vector_ops"], 0) * e.vector_ops)
    dram = (c["weight_dram_bytes"] + c["ifmap_dram_bytes"] + c["ofmap_dram_bytes"]) * 8
    reads = [getattr(counts, f"{t}_sram_read_bytes") for t in mp.TENSORS]
    writes = [getattr(counts, f"{t}_sram_write_bytes") for t in mp.TENSORS]
    sram = sum(r * getattr(e, f"{t}_sram_read_bytes") + w * getattr(e, f"{t}_sram_write_bytes")
               for t, r, w in zip(mp.TENSORS, reads, writes, strict=True))
    total = mac + dram * e.dram_bits + sram + counts.gen_ops * e.gen_ops
    checks = {"energy_pj": (total, c["energy_pj"]),
              "sram_reads_bytes": (sum(reads), c["sram_reads_bytes"]),
              "sram_writes_bytes": (sum(writes), c["sram_writes_bytes"])}
    for name, (again, reported) in checks.items():
        close = np.isclose(again, reported, rtol=1e-9, atol=1e-6)
        if not close.all():
            bad = int(np.argmin(close))
            raise AssertionError(f"{name} of layer {bad}: recomputed {again[bad]}, "
                                 f"reported {reported[bad]}")


__all__ = [
    "ENERGY_PARTS",
    "ActionCounts",
    "ActionEnergies",
    "action_counts",
    "action_energies",
    "check_energy",
    "energy_breakdown",
    "gated_fraction",
]
