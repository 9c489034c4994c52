"""Event-driven simulation: hand-counted schedules of small tile streams, bounds over random
streams, and cross-checks against the analytical model on whole networks."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwsim.accel import DRAM, load_accelerator
from hwsim.des import ARBITRATION_BYTES, burst_cycles, bursts, replay

UNLIMITED = 2 ** 48  # DRAM bytes per cycle, the most a spec allows: a burst takes 2e-13 cycles


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
    assert bursts(np.array([0, 1, 64, 65, 640]), dram).tolist() == [0, 1, 1, 2, 10]
    assert burst_cycles(dram) == 2


def test_write_back_and_loads_share_the_link_in_batches():
    # Tile 0's 64-burst write-back (128 cycles) and tile 2's 10-burst load both ask for the link
    # when tile 0 is done (t=140): the link hands over every 16 bursts (ARBITRATION_BYTES), so
    # the load waits 32 cycles, not the whole 128 (tiles 1 and 2 share one output block).
    assert ARBITRATION_BYTES == 16 * 64
    c = costs([640, 0, 0], [640] * 3, [4096, 0, 64], [100, 100, 100])
    sim = replay({"a": c}, accel())
    link = sim.timeline[sim.timeline.resource == "dram"]
    link = link[link.activity.isin(["load", "store"])].sort_values("start")
    assert (link.end.to_numpy()[:-1] <= link.start.to_numpy()[1:]).all()  # one at a time
    assert link.activity.tolist()[:6] == ["load", "load", "load", "store", "load", "store"]
    load2 = link[(link.activity == "load") & (link.tile == 2)]
    assert load2[["start", "end"]].values.tolist() == [[172, 192]]


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
    # Tile 2's input waits for a free input bank from t=60 to t=140 (tile 0 done), tile 3's
    # from 180 to 240; their output banks are free again (write-backs done) when they ask.
    assert sim.layers.loc["a"].dma_wait_space_cycles == 80 + 60


def test_single_output_bank_waits_for_its_write_back():
    # Two tiles, one output bank: tile 1's output bank is free only once tile 0's block is in
    # DRAM (write-back [140, 160]), so its DMA waits from 60 to 160 and the array from 140.
    # The link is busy 100 cycles, 20 of them ([40, 60], tile 1's inputs) under compute.
    c = costs([640, 0], [640, 640], [640, 640], [100, 100])
    sim = replay({"a": c}, accel(double=(True, True, False)))
    row = sim.layers.loc["a"]
    assert sim.latency_cycles == 280
    assert (row.array_wait_data_cycles, row.dma_wait_space_cycles) == (60, 100)
    assert row.dram_under_compute_fraction == pytest.approx(20 / 100)
    assert np.isnan(row.gen_under_compute_fraction)  # no generator: nothing to hide


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
    # b reads the model input, not a: its inputs load right after its weights, during a.
    independent = replay(layers, accel(), producers={"b": ("input",)})
    assert independent.latency_cycles == 140 + 100 + 20
    with pytest.raises(ValueError, match="layer a reads a layer that runs after it"):
        replay(layers, accel(), producers={"a": ("b",)})


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


def test_in_code_checks_catch_a_lost_tile_and_a_wrong_window():
    from hwsim import des

    c = costs([640, 0, 0, 0], [640] * 4, [640] * 4, [100] * 4)
    hw = accel()
    sim = replay({"a": c}, hw)
    layers = (des.schedule("a", c, hw, ()),)
    timeline = sim.timeline.assign(layer=sim.timeline["layer"].cat.codes)
    lost = timeline.drop(index=timeline.index[timeline.activity == "compute"][-1])
    with pytest.raises(AssertionError, match="compute cycles"):
        des._check(sim.layers, lost, layers, sim.latency_cycles)
    with pytest.raises(AssertionError, match="layer windows"):
        des._check(sim.layers.assign(latency_cycles_des=400.0), timeline, layers, 460.0)


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


def raster(sim, resource, activities, length):
    """Per-cycle occupancy of a resource (every time in these streams is a whole cycle)."""
    busy = np.zeros(length, dtype=bool)
    rows = sim.timeline[(sim.timeline.resource == resource)
                        & sim.timeline.activity.isin(activities)]
    for start, end in zip(rows.start.astype(int), rows.end.astype(int)):
        busy[start:end] = True
    return busy


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
    # Busy and hidden fractions against a cycle-by-cycle count of the timeline.
    length = int(sim.latency_cycles)
    cycles = {unit: raster(sim, unit, acts, length) for unit, acts in (
        ("dram", ("load", "store")), ("gen", ("generate",)), ("array", ("compute",)))}
    ends = np.cumsum(sim.layers.latency_cycles_des.to_numpy()).astype(int)
    for i, (a, b) in enumerate(zip(np.r_[0, ends[:-1]], ends)):
        row = sim.layers.iloc[i]
        for unit in ("dram", "gen", "array"):
            busy = cycles[unit][a:b].sum()
            assert row[f"{unit}_busy_fraction"] * (b - a) == pytest.approx(busy, abs=1e-6)
            if unit != "array":
                hidden = (cycles[unit] & cycles["array"])[a:b].sum()
                assert (row[f"{unit}_under_compute_fraction"] == pytest.approx(hidden / busy)
                        if busy else np.isnan(row[f"{unit}_under_compute_fraction"]))
    totals = sim.totals()
    assert totals["array_busy_fraction"] * length == pytest.approx(cycles["array"].sum())
    if cycles["dram"].any():
        assert totals["dram_under_compute_fraction"] == pytest.approx(
            (cycles["dram"] & cycles["array"]).sum() / cycles["dram"].sum())
    free = replay(layers, dataclasses.replace(hw, dram=DRAM(bw_bytes_per_cycle=UNLIMITED)))
    if hw.weight_gen is None:
        assert free.latency_cycles == pytest.approx(compute, abs=1e-6)
    idle = {name: dataclasses.replace(c, compute_cycles=0 * c.compute_cycles,
                                      gen_cycles=0 * c.gen_cycles) for name, c in layers.items()}
    assert replay(idle, hw).latency_cycles == pytest.approx(transfer, rel=1e-12)


# --- whole networks: the real tiles of the mapper ----------------------------------------------
def _network(model, accel_name, **accel_overrides):
    from hwsim.cost import evaluate
    from hwsim.trace import trace
    from models import create_model

    graph = trace(create_model(model), (3, 32, 32))
    hw = load_accelerator(accel_name, accel_overrides or None)
    df = evaluate(graph, hw)
    return graph, hw, df


@pytest.fixture(scope="module")
def resnet18():
    return _network("resnet18", "systolic_32")


@pytest.fixture(scope="module")
def mlg_resnet18():
    return _network("mlg_resnet18", "mlg_gen")


def test_unlimited_bandwidth_is_compute_bound(resnet18, mlg_resnet18):
    from hwsim.des import simulate

    graph, hw, df = resnet18
    free = dataclasses.replace(hw, dram=DRAM(bw_bytes_per_cycle=UNLIMITED))
    sim = simulate(graph, free, dict(df["mapping"]))
    assert sim.latency_cycles == pytest.approx(df["compute_cycles"].sum(), abs=1e-6)
    assert (sim.layers["array_wait_data_cycles"] < 1e-6).all()
    # MLG: the array waits only for the generator, which runs one weight bank ahead; with a
    # generator of 2^40 MACs/cycle too, it is compute-bound as well.
    graph, hw, df = mlg_resnet18
    free = dataclasses.replace(hw, dram=DRAM(bw_bytes_per_cycle=UNLIMITED))
    sim = simulate(graph, free, dict(df["mapping"]))
    compute = df["compute_cycles"].sum()
    assert compute < sim.latency_cycles < compute + df["gen_cycles"].sum()
    fast = dataclasses.replace(free, weight_gen=dataclasses.replace(hw.weight_gen,
                                                                    macs_per_cycle=2 ** 40))
    sim = simulate(graph, fast, dict(df["mapping"]))
    assert sim.latency_cycles == pytest.approx(compute, abs=1e-3)


def test_free_compute_is_transfer_bound(resnet18):
    from hwsim.cost import tile_costs

    graph, hw, df = resnet18
    idle = {}
    for name, m in df["mapping"].items():
        c = tile_costs(m, hw)
        idle[name] = dataclasses.replace(c, compute_cycles=0 * c.compute_cycles)
    producers = {layer.name: layer.inputs for layer in graph.layers}
    sim = replay(idle, hw, producers)
    # The link time of every tile's transfers in whole 64 B bursts of 2 cycles (32 B/cycle).
    assert (hw.dram.transaction_bytes, hw.dram.bw_bytes_per_cycle) == (64, 32)
    link = sum(int(-(-b // 64)) for c in idle.values() for f in (
        "weight_read_bytes", "input_read_bytes", "psum_read_bytes", "output_write_bytes")
        for b in getattr(c, f))
    assert sim.latency_cycles == pytest.approx(2 * link, rel=1e-12)
    # Whole bursts: never less than the bytes at full bandwidth.
    assert sim.layers["transfer_cycles_des"].sum() >= df["dram_bytes"].sum() / 32


@pytest.mark.parametrize("network", ["resnet18", "mlg_resnet18"])
def test_each_layer_between_max_and_sum_of_its_parts(network, request):
    """Each layer alone: max(compute, memory) <= DES <= compute + memory (+ generation)."""
    from hwsim.cost import tile_costs

    graph, hw, df = request.getfixturevalue(network)
    for name, m in df["mapping"].items():
        sim = replay({name: tile_costs(m, hw)}, hw)
        row, des = df.loc[name], sim.latency_cycles
        transfer = sim.layers.loc[name, "transfer_cycles_des"]
        gen = row.gen_cycles if hw.weight_gen is not None else 0
        assert max(row.compute_cycles, row.memory_cycles, transfer, gen) <= des + 1e-6, name
        assert des <= row.compute_cycles + transfer + gen + 1e-6, name


@pytest.mark.parametrize("network", ["resnet18", "mlg_resnet18"])
def test_agrees_with_the_analytical_latency(network, request):
    """Within 5% over the network and over its convolutions and classifier; the vector layers
    (add, pool) are link-bound and slower in the DES (a tile's 16-64 B still take a whole 64 B
    burst); with 1-byte bursts the whole network agrees within 5% too."""
    from hwsim.des import simulate

    graph, hw, df = request.getfixturevalue(network)
    sim = simulate(graph, hw, dict(df["mapping"]))
    assert list(sim.layers.index) == list(df.index)
    mac = ~df["op"].isin(["add", "pool", "concat"])
    assert sim.layers["latency_cycles_des"][mac].sum() == pytest.approx(
        df["latency_cycles"][mac].sum(), rel=0.05)
    assert sim.latency_cycles == pytest.approx(df["latency_cycles"].sum(), rel=0.05)
    assert (sim.layers["dram_busy_fraction"][~mac] > 0.9).all()  # link-bound
    fine = dataclasses.replace(hw, dram=DRAM(bw_bytes_per_cycle=hw.dram.bw_bytes_per_cycle,
                                             transaction_bytes=1))
    assert simulate(graph, fine, dict(df["mapping"])).latency_cycles == pytest.approx(
        df["latency_cycles"].sum(), rel=0.05)


def test_a_tile_must_fit_its_bank(resnet18):
    from hwsim.des import simulate

    graph, hw, df = resnet18
    small = load_accelerator("systolic_32", {"buffers": {
        b.name: {"size_bytes": b.size_bytes // 64} for b in hw.buffers}})
    with pytest.raises(ValueError, match=r"mappings: Layer \S+: a tile needs \d+ B of the "):
        simulate(graph, small, dict(df["mapping"]))


def test_cli_run_event_adds_columns(tmp_path, capsys):
    import json

    from hwsim.cli import main

    code = main(["run", "--model", "resnet20", "--set", "model.width=0.25", "--sim", "event",
                 "--format", "json", "--out", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(out)
    layers = report["layers"]
    assert all("latency_cycles_des" in r and "array_wait_data_cycles" in r for r in layers)
    assert report["totals"]["latency_cycles_des"] == pytest.approx(
        sum(r["latency_cycles_des"] for r in layers))
    assert "latency_cycles_des" in (tmp_path / "layers.csv").read_text().splitlines()[0]
    assert (tmp_path / "timeline.csv").read_text().startswith("start,end,resource,layer")
    code = main(["run", "--model", "resnet20", "--set", "model.width=0.25", "--sim", "event",
                 "--layers"])
    out, _ = capsys.readouterr()
    assert code == 0 and "event-driven (--sim event)" in out  # the headline's row
    assert "event-driven simulation per layer" in out and "DMA waits" in out
    # The summary under the headline names the layer where the array waits longest.
    summary = out.split("event-driven simulation (--sim event):")[1]
    stalled = summary.split("the array waits for data")[1].splitlines()[1].split()[0]
    assert stalled == max(layers, key=lambda r: r["array_wait_data_cycles"])["name"]
    busy = 100 * report["totals"]["array_busy_fraction"]
    assert f"busy: PE array {busy:.0f} %" in summary and "hidden transfers" in summary
    code = main(["run", "--model", "resnet20", "--accel", "none", "--sim", "event"])
    _, err = capsys.readouterr()
    assert code == 2 and err.startswith("hwsim: error: --sim event needs an accelerator")


def test_cli_plot_timeline(tmp_path, capsys):
    from hwsim.cli import main

    out = tmp_path / "t.png"
    args = ["plot", "timeline", "--model", "resnet20", "--set", "model.width=0.25"]
    assert main([*args, "--out", str(out), "--zoom", "conv1:layers.0.0.conv2"]) == 0
    assert out.read_bytes().startswith(b"\x89PNG")
    assert main([*args, "--out", str(out), "--zoom", "nope"]) == 2
    assert "--zoom: no layer 'nope'" in capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path / "t.pdf")]) == 2


def test_timeline_figure_lanes(resnet18):
    from hwsim.des import simulate
    from hwsim.timeline import LANES, busiest_stall_window, timeline_figure

    graph, hw, df = resnet18
    sim = simulate(graph, hw, dict(df["mapping"]))
    first, last = busiest_stall_window(sim)
    assert last - first == 2
    waits = sim.layers["array_wait_data_cycles"].to_numpy()
    assert waits[first:last + 1].sum() == max(waits[i:i + 3].sum() for i in range(len(waits) - 2))
    fig = timeline_figure(sim)
    overview, zoom = fig.axes[:2]
    # No weight generator on systolic_32: no generation lane.
    assert [t.get_text() for t in overview.get_yticklabels()] == [
        lane[0] for lane in LANES if lane[1] != "gen"]
    t0, t1 = zoom.get_xlim()
    assert t1 - t0 < sim.latency_cycles
    # Bar areas in the DRAM read lane (the first drawn) add up to the loads' busy cycles in
    # the window: bars are as high as the share of their column the link is busy.
    boxes = zoom.collections[0].get_paths()
    area = sum(np.ptp(b.vertices[:, 0]) * np.ptp(b.vertices[:, 1]) for b in boxes) / 0.8
    loads = sim.timeline[(sim.timeline.activity == "load")]
    busy = (np.minimum(loads.end, t1) - np.maximum(loads.start, t0)).clip(lower=0).sum()
    assert area == pytest.approx(busy, rel=0.02)
    with pytest.raises(ValueError, match="zoom: layers 5..2"):
        timeline_figure(sim, zoom=(5, 2))
