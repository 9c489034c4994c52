"""Energy tables reproduce their cited figures; interpolation is log-log."""

import math

import numpy as np
import pytest

from hwsim.tech import (
    EYERISS_NORMALIZED,
    HOROWITZ45,
    add_energy_pj,
    get_tech,
    mac_energy_pj,
    mult_energy_pj,
    sram_pj_per_byte,
)


def test_horowitz_reference_points():
    assert mult_energy_pj(HOROWITZ45, 8, 8) == pytest.approx(0.2)
    assert mult_energy_pj(HOROWITZ45, 32, 32) == pytest.approx(3.1)
    assert add_energy_pj(HOROWITZ45, 8) == pytest.approx(0.03)
    # 64-bit SRAM reads: 10 pJ at 8 KB, 20 pJ at 32 KB, 100 pJ at 1 MB.
    assert sram_pj_per_byte(HOROWITZ45, 8 * 1024) * 8 == pytest.approx(10)
    assert sram_pj_per_byte(HOROWITZ45, 32 * 1024) * 8 == pytest.approx(20)
    assert sram_pj_per_byte(HOROWITZ45, 1024 * 1024) * 8 == pytest.approx(100)
    # DRAM 1.3-2.6 nJ per 64-bit access.
    assert 1300 <= HOROWITZ45.dram_pj_per_bit * 64 <= 2600


def test_loglog_interpolation_is_geometric_mean_halfway():
    # 16 KB lies halfway between 8 KB and 32 KB on a log axis: energy is the geometric mean.
    assert sram_pj_per_byte(HOROWITZ45, 16 * 1024) * 8 == pytest.approx(math.sqrt(10 * 20))
    # 16x16 lies halfway (in log w*a) between 8x8 and 32x32.
    assert mult_energy_pj(HOROWITZ45, 16, 16) == pytest.approx(math.sqrt(0.2 * 3.1))
    sizes = 2.0 ** np.arange(8, 24)
    assert np.all(np.diff(sram_pj_per_byte(HOROWITZ45, sizes)) > 0)


def test_eyeriss_ratios():
    mac16 = float(mac_energy_pj(EYERISS_NORMALIZED, 16, 16, 32))
    assert mac16 == pytest.approx(1.0)
    # Per 16-bit access: global buffer 6x, RF 1x, DRAM 200x a MAC.
    assert sram_pj_per_byte(EYERISS_NORMALIZED, 108 * 1024) * 2 == pytest.approx(6 * mac16)
    assert sram_pj_per_byte(EYERISS_NORMALIZED, 512) * 2 == pytest.approx(mac16)
    assert EYERISS_NORMALIZED.dram_pj_per_bit * 16 == pytest.approx(200 * mac16)


def test_get_tech():
    assert get_tech("horowitz45") is HOROWITZ45
    with pytest.raises(ValueError, match="unknown tech table 'x'; known: eyeriss_normalized"):
        get_tech("x")
