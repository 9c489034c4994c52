"""Event-driven simulation: hand-counted schedules of small tile streams, bounds over random
streams, and cross-checks against the analytical model on whole networks."""

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwsim.accel import DRAM, load_accelerator
from hwsim.des import link_cycles, replay


@dataclasses.dataclass(frozen=True)
class Costs:
    """Hand-made per-tile costs with the fields of ``cost.TileCosts`` that the DES reads."""

    weight_read_bytes: np.ndarray
    input_read_bytes: np.ndarray
    psum_read_bytes: np.ndarray
    output_write_bytes: np.ndarray
    gen_cycles: np.ndarray
    compute_cycles: np.ndarray


def costs(weight, inputs, writes, compute, psum=None, gen=None):
    arrays = [np.asarray(a, dtype=float) for a in (weight, inputs, writes, compute)]
    n = len(arrays[0])
    zeros = np.zeros(n)
    return Costs(weight_read_bytes=arrays[0], input_read_bytes=arrays[1],
                 psum_read_bytes=zeros if psum is None else np.asarray(psum, float),
                 output_write_bytes=arrays[2],
                 gen_cycles=zeros if gen is None else np.asarray(gen, float),
                 compute_cycles=arrays[3])


def accel(name="systolic_32", bw=32.0, double=(True, True, True)):
    """A preset with a 32 B/cycle, 64 B burst link (2 cycles a burst) and chosen buffering."""
    base = load_accelerator(name)
    buffers = tuple(dataclasses.replace(b, double_buffered=d) for b, d in zip(base.buffers, double))
    return dataclasses.replace(base, buffers=buffers,
                               dram=DRAM(bw_bytes_per_cycle=bw, transaction_bytes=64))


def test_link_moves_whole_bursts():
    dram = DRAM(bw_bytes_per_cycle=32, transaction_bytes=64)
    assert link_cycles(np.array([0, 1, 64, 65, 640]), dram).tolist() == [0, 2, 2, 4, 20]


def test_one_tile_is_serial():
    # weights [0, 20], inputs [20, 40], compute [40, 140], write-back [140, 160]
    sim = replay({"a": costs([640], [640], [640], [100])}, accel())
    row = sim.layers.loc["a"]
    assert sim.latency_cycles == 160
    assert row.latency_cycles_des == 160
    assert row.array_wait_data_cycles == 40
    assert row.transfer_cycles_des == 60
    assert row.dram_busy_fraction == pytest.approx(60 / 160)
    assert row.array_busy_fraction == pytest.approx(100 / 160)


def test_double_buffering_hides_the_stream():
    # Weights once, 4 input tiles of 20 cycles, 4 write-backs of 20: compute-bound, so only the
    # first loads and the last write-back show: 20 + 20 + 4 * 100 + 20.
    c = costs([640, 0, 0, 0], [640] * 4, [640] * 4, [100] * 4)
    sim = replay({"a": c}, accel())
    compute = sim.timeline[sim.timeline.activity == "compute"]
    assert compute.start.tolist() == [40, 140, 240, 340]
    assert sim.latency_cycles == 460
    assert sim.layers.loc["a"].array_wait_data_cycles == 40
    # Tile 2's input waits for a free input and output bank from t=60 to t=160 (tile 0's
    # write-back), tile 3's from 180 to 260.
    assert sim.layers.loc["a"].dma_wait_space_cycles == 100 + 80


def test_single_buffering_serializes():
    c = costs([640, 0, 0, 0], [640] * 4, [640] * 4, [100] * 4)
    sim = replay({"a": c}, accel(double=(False, False, False)))
    assert sim.latency_cycles == 20 + 4 * (20 + 100 + 20)


def test_next_layer_weights_prefetch_inputs_wait_for_producer():
    layers = {"a": costs([640], [640], [640], [100]), "b": costs([640], [640], [640], [100])}
    sim = replay(layers, accel())
    # b's weights load during a's compute [40, 60]; its inputs wait for a's write-back (160).
    assert sim.latency_cycles == 300
    assert sim.layers.latency_cycles_des.tolist() == [140, 160]
    assert sim.layers.loc["b"].array_wait_data_cycles == 40
    waits = sim.timeline[sim.timeline.activity == "wait_producer"]
    assert waits[["start", "end"]].values.tolist() == [[60, 160]]
    # One weight bank: b's weights load only once a is done with its bank.
    single = replay(layers, accel(double=(False, True, True)))
    assert single.latency_cycles == 320


def test_generator_pipelines_with_the_array():
    # Two weight tiles of 64 B (2 cycles), each regenerated in 50 cycles on the unit.
    c = costs([64, 64], [640, 0], [64, 64], [10, 10], gen=[50, 50])
    sim = replay({"a": c}, accel("mlg_gen"))
    gen = sim.timeline[sim.timeline.resource == "gen"]
    assert gen[["start", "end"]].values.tolist() == [[2, 52], [52, 102]]
    assert sim.latency_cycles == 114
    assert sim.layers.loc["a"].gen_busy_fraction == pytest.approx(100 / 114)
    # Without a generator the array generates: costs.compute_cycles hold it already.
    assert replay({"a": c}, accel()).latency_cycles == 2 + 20 + 10 + 10 + 2


@st.composite
def streams(draw):
    layers = {}
    for i in range(draw(st.integers(1, 3))):
        n = draw(st.integers(1, 6))
        col = st.lists(st.sampled_from([0, 1, 64, 300, 2048]), min_size=n, max_size=n)
        layers[f"l{i}"] = costs(draw(col), draw(col), draw(col),
                                draw(st.lists(st.integers(0, 200), min_size=n, max_size=n)),
                                psum=draw(col),
                                gen=draw(st.lists(st.sampled_from([0, 30]), min_size=n,
                                                  max_size=n)))
    return layers


@settings(max_examples=60, deadline=None)
@given(layers=streams(), name=st.sampled_from(["systolic_32", "mlg_gen", "eyeriss_like"]),
       double=st.tuples(st.booleans(), st.booleans(), st.booleans()))
def test_bounds_on_random_streams(layers, name, double):
    hw = accel(name, double=double)
    sim = replay(layers, hw)
    compute = sum(c.compute_cycles.sum() for c in layers.values())
    gen = sum(c.gen_cycles.sum() for c in layers.values()) if hw.weight_gen else 0
    transfer = sim.layers.transfer_cycles_des.sum()
    assert max(compute, transfer, gen) - 1e-9 <= sim.latency_cycles
    assert sim.latency_cycles <= compute + transfer + gen + 1e-9
    for column in ("dram_busy_fraction", "gen_busy_fraction", "array_busy_fraction"):
        assert sim.layers[column].between(0, 1 + 1e-9).all()
    free = replay(layers, dataclasses.replace(hw, dram=DRAM(bw_bytes_per_cycle=math.inf)))
    if hw.weight_gen is None:
        assert free.latency_cycles == compute
    idle = {name: dataclasses.replace(c, compute_cycles=0 * c.compute_cycles,
                                      gen_cycles=0 * c.gen_cycles) for name, c in layers.items()}
    assert replay(idle, hw).latency_cycles == pytest.approx(transfer, rel=1e-12)
