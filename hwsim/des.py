"""Event-driven replay of the chosen mappings' tiles: DMA, weight generation, PE array, write-back.

The analytical model (``cost.py``) assumes that double buffering hides everything but a
prologue and an epilogue. Here the same tiles (``cost.tile_costs``) are played through simpy
processes, one per hardware actor, so what overlaps and what stalls comes out of the schedule:

- ``dma``: fetches each tile's new blocks in execution order over the DRAM link. A block needs
  a free bank of its buffer first (a double-buffered buffer has two banks, one tile each; a
  single one has one), so the DMA runs ahead of the array by at most one block per tensor. It
  runs on into the next layer: weights prefetch as soon as a weight bank is free, inputs wait
  until the previous layer's outputs are written (tensors never stay on chip between layers).
- ``weight_generator``: regenerates the fetched (compressed) weights into their bank (MLG,
  only on an accelerator with a ``weight_gen`` unit; otherwise generation runs on the array
  and is part of its cycles).
- ``pe_array``: runs the tiles in order once their operands are on chip, frees input and
  weight banks after a block's last tile, and hands finished or spilled output blocks on.
- ``write_back``: drains output blocks to DRAM and frees their bank.

The DRAM link is one resource shared by loads and write-backs (first come, first served); it
moves whole bursts of ``transaction_bytes``, so a transfer takes ceil(bytes / burst) bursts of
``transaction_bytes / bw_bytes_per_cycle`` cycles. Events are per tile (a handful each), never
per cycle. Each tensor has its own banks, a ``shared`` buffer included (the mapper makes a
tile's whole working set fit half of it, so two of each tensor fit). SRAM port bandwidth is
not modelled (the analytical model takes the slowest of compute and SRAM).
"""

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import simpy

from .accel import DRAM, Accelerator
from .layer import LayerGraph

ACTIVITIES = ("load", "store", "generate", "compute", "wait_data", "wait_space", "wait_producer")
RESOURCES = ("dram", "gen", "array")
COLUMNS = ("latency_cycles_des", "array_wait_data_cycles", "dma_wait_space_cycles",
           "transfer_cycles_des", "dram_busy_fraction", "gen_busy_fraction",
           "array_busy_fraction")
TIMELINE_COLUMNS = ("start", "end", "resource", "layer", "tile", "activity")


@dataclass(frozen=True)
class LayerSchedule:
    """One layer's tiles as each actor replays them (plain tuples: fast to iterate).

    ``loads``: per tile (weight link cycles or None, weights go to the generator, needs an
    input bank, needs an output bank, input + partial-sum link cycles or None). ``computes``:
    per tile (waits for generated weights, compute cycles, frees the weight bank, frees the
    input bank, output block done). ``generations``: (tile, cycles) of each generation job and
    ``stores``: (tile, link cycles) of each output block written back, both in order.
    """

    name: str
    loads: tuple
    computes: tuple
    generations: tuple
    stores: tuple
    compute_cycles: float
    transfer_cycles: float


def link_cycles(nbytes: np.ndarray, dram: DRAM) -> np.ndarray:
    """Cycles the DRAM link takes for each transfer: whole bursts at the link bandwidth."""
    bursts = np.ceil(np.asarray(nbytes, dtype=float) / dram.transaction_bytes)
    return bursts * (dram.transaction_bytes / dram.bw_bytes_per_cycle)


def _block_ends(new: np.ndarray) -> np.ndarray:
    """Last tile of each block, where a block starts at every ``new`` tile."""
    opened = np.cumsum(new) > 0
    return opened & np.r_[new[1:], True]


def schedule(name: str, costs, accel: Accelerator) -> LayerSchedule:
    """The per-actor work lists of one layer from its ``TileCosts`` (arrays in tile order)."""
    weight_bytes = np.asarray(costs.weight_read_bytes, dtype=float)
    input_bytes = np.asarray(costs.input_read_bytes, dtype=float)
    psum_bytes = np.asarray(costs.psum_read_bytes, dtype=float)
    write_bytes = np.asarray(costs.output_write_bytes, dtype=float)
    compute = np.asarray(costs.compute_cycles, dtype=float)
    # Without a generator the array generates and costs.compute_cycles already include it.
    gen = (np.asarray(costs.gen_cycles, dtype=float) if accel.weight_gen is not None
           else np.zeros_like(compute))
    num_tiles = len(compute)
    new_weights = (weight_bytes > 0) | (gen > 0)
    new_inputs = input_bytes > 0
    closes_output = (write_bytes > 0) | (np.arange(num_tiles) == num_tiles - 1)
    new_outputs = np.r_[True, closes_output[:-1]]
    weight_link = link_cycles(weight_bytes, accel.dram)
    act_link = link_cycles(input_bytes, accel.dram) + link_cycles(psum_bytes, accel.dram)
    store_link = link_cycles(write_bytes, accel.dram)

    def maybe(flag, values):
        return [v if f else None for f, v in zip(flag.tolist(), values.tolist())]

    loads = tuple(zip(maybe(new_weights, weight_link), (gen > 0).tolist(), new_inputs.tolist(),
                      new_outputs.tolist(), maybe(new_inputs | (psum_bytes > 0), act_link)))
    computes = tuple(zip((gen > 0).tolist(), compute.tolist(),
                         (_block_ends(new_weights)).tolist(), _block_ends(new_inputs).tolist(),
                         closes_output.tolist()))
    stored, generated = np.flatnonzero(closes_output), np.flatnonzero(gen > 0)
    return LayerSchedule(
        name=name, loads=loads, computes=computes,
        generations=tuple(zip(generated.tolist(), gen[generated].tolist())),
        stores=tuple(zip(stored.tolist(), store_link[stored].tolist())),
        compute_cycles=float(compute.sum()),
        transfer_cycles=float(weight_link.sum() + act_link.sum() + store_link.sum()))


class _CountingEnvironment(simpy.Environment):
    """A simpy environment that counts the events it processes (for events per second)."""

    processed = 0

    def step(self):
        self.processed += 1
        super().step()


class Hardware:
    """The resources the actors share: DRAM link, buffer banks, hand-off queues, the log."""

    def __init__(self, env: simpy.Environment, accel: Accelerator, num_layers: int):
        self.env = env
        self.link = simpy.Resource(env, capacity=1)
        self.banks = {}
        for tensor in ("weight", "input", "output"):
            count = 2 if accel.buffer(tensor).double_buffered else 1
            self.banks[tensor] = simpy.Container(env, capacity=count, init=count)
        self.to_generator = simpy.Store(env)
        self.weights_ready = simpy.Store(env)
        self.tile_loaded = simpy.Store(env)
        self.to_write_back = simpy.Store(env)
        self.layer_written = [env.event() for _ in range(num_layers)]
        self.records = []

    def log(self, start, resource, layer, tile, activity):
        """Append one (start, end=now, resource, layer, tile, activity) record."""
        self.records.append((start, self.env.now, resource, layer, tile, activity))


def _transfer(env, hw: Hardware, cycles: float, layer: int, tile: int, activity: str):
    with hw.link.request() as turn:
        yield turn
        start = env.now
        yield env.timeout(cycles)
    hw.log(start, "dram", layer, tile, activity)


def dma(env, hw: Hardware, layers: tuple[LayerSchedule, ...]):
    """DMA engine: fetches every tile's new blocks, in execution order, into free banks."""
    for li, layer in enumerate(layers):
        for tile, (weight, generate, new_input, new_output, act) in enumerate(layer.loads):
            asked = env.now
            if weight is not None:
                yield hw.banks["weight"].get(1)
                if env.now > asked:
                    hw.log(asked, "dram", li, tile, "wait_space")
                yield from _transfer(env, hw, weight, li, tile, "load")
                if generate:
                    hw.to_generator.put(tile)
            if new_input and li > 0 and not hw.layer_written[li - 1].processed:
                asked = env.now
                yield hw.layer_written[li - 1]
                hw.log(asked, "dram", li, tile, "wait_producer")
            asked = env.now
            if new_input:
                yield hw.banks["input"].get(1)
            if new_output:
                yield hw.banks["output"].get(1)
            if env.now > asked:
                hw.log(asked, "dram", li, tile, "wait_space")
            if act is not None:
                yield from _transfer(env, hw, act, li, tile, "load")
            hw.tile_loaded.put(tile)


def weight_generator(env, hw: Hardware, layers: tuple[LayerSchedule, ...]):
    """Weight-generation unit: turns each fetched set of factors into a bank of weights."""
    for li, layer in enumerate(layers):
        for tile, cycles in layer.generations:
            yield hw.to_generator.get()
            start = env.now
            yield env.timeout(cycles)
            hw.log(start, "gen", li, tile, "generate")
            hw.weights_ready.put(tile)


def pe_array(env, hw: Hardware, layers: tuple[LayerSchedule, ...]):
    """PE array: computes the tiles in order as soon as their operands are on chip."""
    for li, layer in enumerate(layers):
        for tile, (generated, cycles, frees_weights, frees_inputs, output_done) in enumerate(
                layer.computes):
            ready = env.now
            yield hw.tile_loaded.get()
            if generated:
                yield hw.weights_ready.get()
            if env.now > ready:
                hw.log(ready, "array", li, tile, "wait_data")
            start = env.now
            yield env.timeout(cycles)
            hw.log(start, "array", li, tile, "compute")
            # Unbounded queues and banks returned: these puts never wait.
            if frees_weights:
                hw.banks["weight"].put(1)
            if frees_inputs:
                hw.banks["input"].put(1)
            if output_done:
                hw.to_write_back.put(tile)


def write_back(env, hw: Hardware, layers: tuple[LayerSchedule, ...]):
    """Write-back engine: drains finished (or spilled) output blocks to DRAM, frees the bank."""
    for li, layer in enumerate(layers):
        for tile, cycles in layer.stores:
            yield hw.to_write_back.get()
            yield from _transfer(env, hw, cycles, li, tile, "store")
            hw.banks["output"].put(1)
        hw.layer_written[li].succeed()


@dataclass(frozen=True)
class Simulation:
    """What ``simulate`` returns.

    ``layers``: one row per layer (index: layer name), the ``COLUMNS``. ``timeline``: one row per
    activity, ``TIMELINE_COLUMNS`` (cycles). A layer's
    ``latency_cycles_des`` runs from the array finishing the previous layer to it finishing this
    one (the last layer also counts the final write-back), so the rows add up to
    ``latency_cycles``; busy fractions are over that window.
    """

    layers: pd.DataFrame
    timeline: pd.DataFrame
    latency_cycles: float
    events: int


def _busy_between(timeline: pd.DataFrame, resource: str, activities: tuple[str, ...],
                  t0: np.ndarray, t1: np.ndarray) -> np.ndarray:
    """Busy cycles of ``resource`` inside each window [t0, t1] (its intervals never overlap)."""
    rows = timeline[(timeline["resource"] == resource) & timeline["activity"].isin(activities)]
    rows = rows.sort_values("start")
    starts, ends = rows["start"].to_numpy(), rows["end"].to_numpy()
    done = np.r_[0.0, np.cumsum(ends - starts)]
    last_end = np.r_[0.0, ends]

    def busy_until(t):
        started = np.searchsorted(starts, t, side="right")
        # Only the last interval started by t can still be running at t.
        return done[started] - np.maximum(last_end[started] - t, 0)

    return busy_until(t1) - busy_until(t0)


def _layer_table(timeline: pd.DataFrame, layers: tuple[LayerSchedule, ...],
                 makespan: float) -> pd.DataFrame:
    """Per-layer figures from the timeline (its records are the only source)."""
    n = len(layers)
    dur = timeline["end"] - timeline["start"]
    by_layer = {}
    for activity in ("compute", "wait_data", "wait_space"):
        mask = timeline["activity"] == activity
        by_layer[activity] = dur[mask].groupby(timeline["layer"][mask]).sum().reindex(
            range(n), fill_value=0.0).to_numpy()
    mask = (timeline["resource"] == "dram") & timeline["activity"].isin(("load", "store"))
    transfer = dur[mask].groupby(timeline["layer"][mask]).sum().reindex(
        range(n), fill_value=0.0).to_numpy()
    computes = timeline[timeline["activity"] == "compute"]
    array_end = computes.groupby("layer")["end"].max().reindex(range(n)).to_numpy(copy=True)
    array_end[-1] = makespan
    window_start = np.r_[0.0, array_end[:-1]]
    latency = array_end - window_start
    window = np.maximum(latency, 1e-12)
    fraction = {res: _busy_between(timeline, res, acts, window_start, array_end) / window
                for res, acts in (("dram", ("load", "store")), ("gen", ("generate",)),
                                  ("array", ("compute",)))}
    return pd.DataFrame({
        "latency_cycles_des": latency, "array_wait_data_cycles": by_layer["wait_data"],
        "dma_wait_space_cycles": by_layer["wait_space"], "transfer_cycles_des": transfer,
        "dram_busy_fraction": fraction["dram"], "gen_busy_fraction": fraction["gen"],
        "array_busy_fraction": fraction["array"],
    }, index=pd.Index([layer.name for layer in layers], name="layer"))


def _check(table: pd.DataFrame, timeline: pd.DataFrame, layers: tuple[LayerSchedule, ...],
           makespan: float) -> None:
    """Work is conserved and the array's clock adds up (recomputed from the schedule)."""
    expected = {"compute": sum(layer.compute_cycles for layer in layers),
                "transfer": sum(layer.transfer_cycles for layer in layers)}
    dur = timeline["end"] - timeline["start"]
    played = {"compute": dur[timeline["activity"] == "compute"].sum(),
              "transfer": dur[timeline["activity"].isin(("load", "store"))].sum()}
    for key, value in expected.items():
        if not np.isclose(played[key], value, rtol=1e-9, atol=1e-6):
            raise AssertionError(f"DES {key} cycles {played[key]} differ from the tiles' {value}")
    last_compute = timeline.loc[timeline["activity"] == "compute", "end"].max()
    array_clock = played["compute"] + dur[timeline["activity"] == "wait_data"].sum()
    if not np.isclose(array_clock, last_compute, rtol=1e-9, atol=1e-6):
        raise AssertionError("DES array busy + waiting cycles do not cover its timeline")
    if not np.isclose(table["latency_cycles_des"].sum(), makespan, rtol=1e-9, atol=1e-6):
        raise AssertionError("DES per-layer latencies do not add up to the makespan")


def replay(layer_costs: dict, accel: Accelerator) -> Simulation:
    """Play ``layer_costs`` (layer name -> ``TileCosts``, in execution order) on ``accel``."""
    if not layer_costs:
        raise ValueError("simulate: the graph has no layers")
    layers = tuple(schedule(name, costs, accel) for name, costs in layer_costs.items())
    env = _CountingEnvironment()
    hw = Hardware(env, accel, len(layers))
    env.process(dma(env, hw, layers))
    env.process(weight_generator(env, hw, layers))
    env.process(pe_array(env, hw, layers))
    env.process(write_back(env, hw, layers))
    env.run()
    if not all(event.processed for event in hw.layer_written):
        raise AssertionError("DES stopped before every layer was written back (deadlock)")
    names = [layer.name for layer in layers]
    timeline = pd.DataFrame(hw.records, columns=TIMELINE_COLUMNS)
    makespan = float(env.now)
    table = _layer_table(timeline, layers, makespan)
    _check(table, timeline, layers, makespan)
    timeline["layer"] = pd.Categorical.from_codes(timeline["layer"], categories=names)
    return Simulation(layers=table, timeline=timeline, latency_cycles=makespan,
                      events=env.processed)


def _layer_costs(graph: LayerGraph, accel: Accelerator, mappings) -> Iterator:
    from .cost import tile_costs
    for layer in graph.layers:
        if layer.name not in mappings:
            raise ValueError(f"mappings: no mapping for layer {layer.name}")
        yield layer.name, tile_costs(mappings[layer.name], accel)


def simulate(graph: LayerGraph, accel: Accelerator, mappings: dict | None = None) -> Simulation:
    """Event-driven timing of ``graph`` on ``accel``, layer after layer, tile by tile.

    ``mappings`` (layer name -> ``Mapping``, e.g. ``dict(evaluate(...)["mapping"])``) fixes the
    tiles; by default the mapper's choice for the default objective is replayed, so the DES and
    ``evaluate`` see the same work.
    """
    from .cost import DEFAULT_OBJECTIVE, search_mappings
    if mappings is None:
        mappings = search_mappings(graph, accel, DEFAULT_OBJECTIVE)
    return replay(dict(_layer_costs(graph, accel, mappings)), accel)


__all__ = [
    "ACTIVITIES",
    "COLUMNS",
    "RESOURCES",
    "TIMELINE_COLUMNS",
    "Hardware",
    "LayerSchedule",
    "Simulation",
    "dma",
    "link_cycles",
    "pe_array",
    "replay",
    "schedule",
    "simulate",
    "weight_generator",
    "write_back",
]
