"""Named, cited energy tables: MAC energy by operand bits, SRAM energy by size, DRAM per bit.

Energy = action count x energy per action (Accelergy's idea). Each table carries its citation,
which travels with every saved result. Between reference points energies are interpolated
log-log (power law); outside them the end segment's slope is extended.
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TechTable:
    """Energy per action of one technology.

    ``mult_pj``: (w_bits * a_bits, pJ) of one multiply; ``add_pj``: (bits, pJ) of one add;
    ``sram_pj_per_byte``: (size_bytes, pJ per byte read or written; writes are assumed to cost
    what reads cost); ``dram_pj_per_bit``: off-chip access energy per bit moved.
    """

    name: str
    citation: str
    mult_pj: tuple[tuple[float, float], ...]
    add_pj: tuple[tuple[float, float], ...]
    sram_pj_per_byte: tuple[tuple[float, float], ...]
    dram_pj_per_bit: float


def loglog_interp(points: tuple[tuple[float, float], ...], x) -> np.ndarray:
    """Power-law interpolation through ``points`` (sorted by x), extrapolated at both ends."""
    xs = np.log([p[0] for p in points])
    ys = np.log([p[1] for p in points])
    lx = np.log(np.maximum(np.asarray(x, dtype=float), 1e-12))
    seg = np.clip(np.searchsorted(xs, lx) - 1, 0, len(xs) - 2)
    slope = (ys[seg + 1] - ys[seg]) / (xs[seg + 1] - xs[seg])
    return np.exp(ys[seg] + slope * (lx - xs[seg]))


def mult_energy_pj(tech: TechTable, weight_bits, act_bits) -> np.ndarray:
    """One multiply of a ``weight_bits`` x ``act_bits`` operand pair (scales with w*a)."""
    return loglog_interp(tech.mult_pj, np.asarray(weight_bits) * np.asarray(act_bits))


def add_energy_pj(tech: TechTable, bits) -> np.ndarray:
    """One add of ``bits``-wide operands."""
    return loglog_interp(tech.add_pj, bits)


def mac_energy_pj(tech: TechTable, weight_bits, act_bits, accum_bits) -> np.ndarray:
    """One multiply-accumulate: multiply at the operand bits plus an add at ``accum_bits``."""
    return mult_energy_pj(tech, weight_bits, act_bits) + add_energy_pj(tech, accum_bits)


def sram_pj_per_byte(tech: TechTable, size_bytes) -> np.ndarray:
    """Energy per byte accessed in an SRAM of ``size_bytes`` (log-log in size)."""
    return loglog_interp(tech.sram_pj_per_byte, size_bytes)


# Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014, 45 nm:
# 8-bit add 0.03 pJ, 32-bit add 0.1 pJ, 8-bit mult 0.2 pJ, 32-bit mult 3.1 pJ; 64-bit SRAM
# read 10 pJ (8 KB), 20 pJ (32 KB), 100 pJ (1 MB); DRAM 1.3-2.6 nJ per 64-bit access (we take
# the midpoint, 1.95 nJ / 64 bit).
HOROWITZ45 = TechTable(
    name="horowitz45",
    citation="M. Horowitz, 'Computing's energy problem (and what we can do about it)', "
             "ISSCC 2014 (45 nm); DRAM taken at the midpoint of 1.3-2.6 nJ per 64-bit access",
    mult_pj=((8 * 8, 0.2), (32 * 32, 3.1)),
    add_pj=((8, 0.03), (32, 0.1)),
    sram_pj_per_byte=((8 * 1024, 10 / 8), (32 * 1024, 20 / 8), (1024 * 1024, 100 / 8)),
    dram_pj_per_bit=1950 / 64,
)


def _horowitz_mac16_pj() -> float:
    """16-bit multiply plus 32-bit add in horowitz45: the unit of the normalized table."""
    return float(mac_energy_pj(HOROWITZ45, 16, 16, 32))


# Chen, Emer, Sze, "Eyeriss: a spatial architecture for energy-efficient dataflow for CNNs",
# ISCA 2016 (65 nm): energy per 16-bit access normalized to one 16-bit MAC: RF (0.5 KB) 1x,
# NoC 2x, global buffer (108 KB) 6x, DRAM 200x. The absolute unit (1 MAC = 1 pJ) is our
# assumption; the MAC's dependence on bits keeps the horowitz45 shape scaled to that unit. Only
# the global buffer and DRAM levels are modelled (no RF / NoC level in hwsim's memory model).
_UNIT_PJ = 1.0
_SCALE = _UNIT_PJ / _horowitz_mac16_pj()
EYERISS_NORMALIZED = TechTable(
    name="eyeriss_normalized",
    citation="Y.-H. Chen, J. Emer, V. Sze, 'Eyeriss: a spatial architecture for energy-"
             "efficient dataflow for convolutional neural networks', ISCA 2016 (65 nm): DRAM "
             "200x, global buffer 6x, NoC 2x, RF 1x of a 16-bit MAC; 1 MAC = 1 pJ assumed",
    mult_pj=tuple((x, y * _SCALE) for x, y in HOROWITZ45.mult_pj),
    add_pj=tuple((x, y * _SCALE) for x, y in HOROWITZ45.add_pj),
    sram_pj_per_byte=((512, 1 * _UNIT_PJ / 2), (108 * 1024, 6 * _UNIT_PJ / 2)),
    dram_pj_per_bit=200 * _UNIT_PJ / 16,
)

TECH_TABLES = {table.name: table for table in (HOROWITZ45, EYERISS_NORMALIZED)}


def get_tech(name: str) -> TechTable:
    """Look up a table by name; unknown names list the known ones."""
    if name not in TECH_TABLES:
        raise ValueError(f"unknown tech table {name!r}; known: {', '.join(sorted(TECH_TABLES))}")
    return TECH_TABLES[name]


__all__ = [
    "EYERISS_NORMALIZED",
    "HOROWITZ45",
    "TECH_TABLES",
    "TechTable",
    "add_energy_pj",
    "get_tech",
    "loglog_interp",
    "mac_energy_pj",
    "mult_energy_pj",
    "sram_pj_per_byte",
]
