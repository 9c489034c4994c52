"""Event-driven replay of the chosen mappings' tiles: DMA, weight generation, PE array, write-back.

The analytical model (``cost.py``) assumes that double buffering hides everything but a
prologue and an epilogue. Here the same tiles (``cost.tile_costs``) are played through simpy
processes, one per hardware actor, so what overlaps and what stalls comes out of the schedule:

- ``dma``: fetches each tile's new blocks in execution order over the DRAM link. A block needs
  a free bank of its buffer first (a double-buffered buffer has two banks, one tile each; a
  single one has one), so the DMA runs ahead of the array by at most one block per tensor. It
  runs on into the next layer: weights prefetch as soon as a weight bank is free, inputs wait
  until the layers that produce them have written their outputs (tensors never stay on chip
  between layers).
- ``weight_generator``: regenerates the fetched (compressed) weights into their bank (MLG,
  only on an accelerator with a ``weight_gen`` unit; otherwise generation runs on the array
  and is part of its cycles).
- ``pe_array``: runs the tiles in order once their operands are on chip, frees input and
  weight banks after a block's last tile, and hands finished or spilled output blocks on.
- ``write_back``: drains output blocks to DRAM and frees their bank.

The DRAM link (``dram_link``) is one resource shared by the DMA and the write-back. It moves
whole bursts of ``transaction_bytes`` (a transfer takes ceil(bytes / burst) bursts of
``transaction_bytes / bw_bytes_per_cycle`` cycles) and is granted in batches of
``ARBITRATION_BYTES`` worth of bursts, first come first served, so a long write-back and the
next tiles' loads interleave as a memory controller's read and write queues do. Events are per
tile and per batch (a handful each), never per cycle. Each tensor has its own banks, a
``shared`` buffer included (the mapper makes a tile's whole working set fit half of it, so two
of each tensor fit); a bank holds one tile, and ``simulate`` refuses a mapping whose tiles do
not fit the spec's buffers. SRAM port bandwidth is not modelled (the analytical model takes the
slowest of compute and SRAM).
"""

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import simpy

from .accel import DRAM, Accelerator
from .cost import DEFAULT_OBJECTIVE, search_mappings, tile_costs
from .layer import LayerGraph
from .mapping import fits, misfit_message

ACTIVITIES = ("load", "store", "generate", "compute", "wait_data", "wait_space", "wait_producer")
RESOURCES = ("dram", "gen", "array")
COLUMNS = ("latency_cycles_des", "array_wait_data_cycles", "dma_wait_space_cycles",
           "transfer_cycles_des", "dram_busy_fraction", "gen_busy_fraction",
           "array_busy_fraction", "dram_under_compute_fraction", "gen_under_compute_fraction")
TIMELINE_COLUMNS = ("start", "end", "resource", "layer", "tile", "activity")
# Bytes the link moves for one requester before the next in line gets it (16 bursts of 64 B,
# the order of a DRAM controller's write-drain batch).
ARBITRATION_BYTES = 1024


@dataclass(frozen=True)
class LayerSchedule:
    """One layer's tiles as each actor replays them (plain tuples: fast to iterate).

    ``loads``: per tile (needs a weight bank, weight bursts or None, weights go to the
    generator, input bursts or None (no new input block), needs an output bank, partial-sum
    bursts or None).
    ``computes``: per tile (waits for the DMA, waits for generated weights, compute cycles,
    frees the weight bank, frees the input bank, output block done); a tile that reuses every
    block on chip needs nothing from the DMA. ``generations``: (tile, cycles) of each
    generation job and ``stores``: (tile, bursts) of each output block written back, both in
    order. ``producers``: indices of the layers whose outputs this one reads, needed from the
    ``first_input`` tile on (-1: the layer reads no input).
    """

    name: str
    producers: tuple[int, ...]
    first_input: int
    loads: tuple
    computes: tuple
    generations: tuple
    stores: tuple
    compute_cycles: float
    transfer_cycles: float


def bursts(nbytes: np.ndarray, dram: DRAM) -> np.ndarray:
    """DRAM bursts (transactions of ``transaction_bytes``) that each transfer takes."""
    return np.ceil(np.asarray(nbytes, dtype=float) / dram.transaction_bytes)


def burst_cycles(dram: DRAM) -> float:
    """Cycles the link takes for one burst."""
    return dram.transaction_bytes / dram.bw_bytes_per_cycle


def _block_ends(new: np.ndarray) -> np.ndarray:
    """Last tile of each block, where a block starts at every ``new`` tile."""
    opened = np.cumsum(new) > 0
    return opened & np.r_[new[1:], True]


def schedule(name: str, costs, accel: Accelerator, producers: tuple[int, ...]) -> LayerSchedule:
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
    weight_link = bursts(weight_bytes, accel.dram)
    input_link = bursts(input_bytes, accel.dram)
    psum_link = bursts(psum_bytes, accel.dram)
    store_link = bursts(write_bytes, accel.dram)

    def maybe(flag, values):
        return [v if f else None for f, v in zip(flag.tolist(), values.tolist())]

    loads = tuple(zip(new_weights.tolist(), maybe(weight_bytes > 0, weight_link),
                      (gen > 0).tolist(), maybe(new_inputs, input_link), new_outputs.tolist(),
                      maybe(psum_bytes > 0, psum_link)))
    needs_dma = new_weights | new_inputs | new_outputs | (psum_bytes > 0)
    computes = tuple(zip(needs_dma.tolist(), (gen > 0).tolist(), compute.tolist(),
                         (_block_ends(new_weights)).tolist(), _block_ends(new_inputs).tolist(),
                         closes_output.tolist()))
    stored, generated = np.flatnonzero(closes_output), np.flatnonzero(gen > 0)
    return LayerSchedule(
        name=name, producers=producers,
        first_input=int(np.argmax(new_inputs)) if new_inputs.any() else -1,
        loads=loads, computes=computes,
        generations=tuple(zip(generated.tolist(), gen[generated].tolist())),
        stores=tuple(zip(stored.tolist(), store_link[stored].tolist())),
        compute_cycles=float(compute.sum()),
        transfer_cycles=float(weight_link.sum() + input_link.sum() + psum_link.sum()
                              + store_link.sum())
        * burst_cycles(accel.dram))


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
        self.burst_cycles = burst_cycles(accel.dram)
        self.batch_bursts = max(1, ARBITRATION_BYTES // accel.dram.transaction_bytes)
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


def dram_link(env, hw: Hardware, count: float, layer: int, tile: int, activity: str):
    """DRAM link: moves ``count`` bursts of ``transaction_bytes`` for one requester (the DMA or
    the write-back), ``burst_cycles`` each, giving the link up after every batch."""
    while count > 0:
        batch = min(count, hw.batch_bursts)
        with hw.link.request() as turn:
            yield turn
            start = env.now
            yield env.timeout(batch * hw.burst_cycles)
        hw.log(start, "dram", layer, tile, activity)
        count -= batch


def _reserve(env, hw: Hardware, tensor: str, layer: int, tile: int):
    """Take a free bank of ``tensor``'s buffer, logging the time spent waiting for one."""
    asked = env.now
    yield hw.banks[tensor].get(1)
    if env.now > asked:
        hw.log(asked, "dram", layer, tile, "wait_space")


def dma(env, hw: Hardware, layers: tuple[LayerSchedule, ...]):
    """DMA engine: fetches every tile's new blocks, in execution order, into free banks."""
    for li, layer in enumerate(layers):
        for tile, (new_weights, weights, generate, inputs, new_output, psums) in enumerate(
                layer.loads):
            if not (new_weights or inputs or new_output or psums):
                continue  # every block this tile uses is on chip already
            if new_weights:
                yield from _reserve(env, hw, "weight", li, tile)
                if weights is not None:
                    yield from dram_link(env, hw, weights, li, tile, "load")
                if generate:
                    hw.to_generator.put(tile)
            if tile == layer.first_input:
                asked = env.now
                for producer in layer.producers:
                    if not hw.layer_written[producer].processed:
                        yield hw.layer_written[producer]
                if env.now > asked:
                    hw.log(asked, "dram", li, tile, "wait_producer")
            if inputs is not None:
                yield from _reserve(env, hw, "input", li, tile)
                yield from dram_link(env, hw, inputs, li, tile, "load")
            if new_output:
                yield from _reserve(env, hw, "output", li, tile)
            if psums is not None:
                yield from dram_link(env, hw, psums, li, tile, "load")
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
        for tile, (fetched, generated, cycles, frees_weights, frees_inputs,
                   output_done) in enumerate(layer.computes):
            ready = env.now
            if fetched:
                yield hw.tile_loaded.get()
            if generated:
                yield hw.weights_ready.get()
            if env.now > ready:
                hw.log(ready, "array", li, tile, "wait_data")
            start = env.now
            yield env.timeout(cycles)
            hw.log(start, "array", li, tile, "compute")
            # Unbounded queues and banks returned: these puts never wait. The write-back goes
            # first, so at equal times it is ahead of the DMA for the link.
            if output_done:
                hw.to_write_back.put(tile)
            if frees_weights:
                hw.banks["weight"].put(1)
            if frees_inputs:
                hw.banks["input"].put(1)


def write_back(env, hw: Hardware, layers: tuple[LayerSchedule, ...]):
    """Write-back engine: drains finished (or spilled) output blocks to DRAM, frees the bank."""
    for li, layer in enumerate(layers):
        for tile, count in layer.stores:
            yield hw.to_write_back.get()
            yield from dram_link(env, hw, count, li, tile, "store")
            hw.banks["output"].put(1)
        hw.layer_written[li].succeed()


@dataclass(frozen=True)
class Simulation:
    """What ``simulate`` returns.

    ``layers``: one row per layer (index: layer name), the ``COLUMNS``. ``timeline``: one row per
    activity, ``TIMELINE_COLUMNS`` (cycles). A layer's
    ``latency_cycles_des`` runs from the array finishing the previous layer to it finishing this
    one (the last layer also counts the final write-back), so the rows add up to
    ``latency_cycles``; busy fractions are over that window, and ``*_under_compute_fraction``
    is the share of a unit's busy time in it during which the array computes (what the
    overlap hides; NaN when the unit is idle).
    """

    layers: pd.DataFrame
    timeline: pd.DataFrame
    latency_cycles: float
    events: int

    def totals(self) -> dict[str, float]:
        """The whole run's figures: the waits summed, the fractions over the whole clock (the
        layers' windows tile it, so busy and hidden cycles add up across them)."""
        t = self.layers
        span = t["latency_cycles_des"]
        out = {"latency_cycles_des": self.latency_cycles,
               "array_wait_data_cycles": float(t["array_wait_data_cycles"].sum()),
               "dma_wait_space_cycles": float(t["dma_wait_space_cycles"].sum())}
        for unit in ("dram", "gen", "array"):
            busy = t[f"{unit}_busy_fraction"] * span
            out[f"{unit}_busy_fraction"] = float(busy.sum() / max(self.latency_cycles, 1e-12))
            if unit != "array":
                hidden = (t[f"{unit}_under_compute_fraction"] * busy).sum()
                out[f"{unit}_under_compute_fraction"] = (float(hidden / busy.sum())
                                                         if busy.sum() > 0 else float("nan"))
        return out


def intervals(timeline: pd.DataFrame, resource: str, activities: tuple[str, ...]):
    """The records of ``resource``'s ``activities``, sorted by start (one actor's never
    overlap)."""
    rows = timeline[(timeline["resource"] == resource) & timeline["activity"].isin(activities)]
    return rows.sort_values("start")


def busy_between(spans, t0: np.ndarray, t1: np.ndarray) -> np.ndarray:
    """Busy cycles of the sorted, disjoint ``spans`` (starts, ends) inside each window
    [t0, t1]."""
    starts, ends = spans
    done = np.r_[0.0, np.cumsum(ends - starts)]
    last_end = np.r_[0.0, ends]

    def busy_until(t):
        started = np.searchsorted(starts, t, side="right")
        # Only the last interval started by t can still be running at t.
        return done[started] - np.maximum(last_end[started] - t, 0)

    return busy_until(t1) - busy_until(t0)


def _covered(spans, points: np.ndarray) -> np.ndarray:
    """Whether each point lies inside one of the sorted, disjoint ``spans``."""
    starts, ends = spans
    if len(starts) == 0:
        return np.zeros(len(points), dtype=bool)
    last = np.searchsorted(starts, points, side="right") - 1
    return (last >= 0) & (ends[np.maximum(last, 0)] > points)


def _overlap_between(first, second, edges: np.ndarray) -> np.ndarray:
    """Cycles in which both sets of disjoint intervals are busy, inside each window between
    consecutive ``edges``: cut the clock at every boundary, test each piece's midpoint."""
    cuts = np.unique(np.concatenate([*first, *second, edges]))
    mids, lengths = (cuts[:-1] + cuts[1:]) / 2, np.diff(cuts)
    both = _covered(first, mids) & _covered(second, mids)
    window = np.clip(np.searchsorted(edges, mids[both]) - 1, 0, len(edges) - 2)
    return np.bincount(window, weights=lengths[both], minlength=len(edges) - 1)


def _layer_table(timeline: pd.DataFrame, layers: tuple[LayerSchedule, ...],
                 makespan: float) -> pd.DataFrame:
    """Per-layer figures from the timeline (its records are the only source)."""
    n = len(layers)
    dur = timeline["end"] - timeline["start"]
    by_layer = {}
    for activity in ("wait_data", "wait_space"):
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
    acts = {"dram": ("load", "store"), "gen": ("generate",), "array": ("compute",)}
    rows = {res: intervals(timeline, res, a) for res, a in acts.items()}
    spans = {res: (r["start"].to_numpy(), r["end"].to_numpy()) for res, r in rows.items()}
    busy = {res: busy_between(iv, window_start, array_end) for res, iv in spans.items()}
    fraction = {res: b / window for res, b in busy.items()}
    # Share of each unit's busy time in the window that the array's compute hides (NaN: idle).
    edges = np.r_[0.0, array_end]
    hidden = {res: _overlap_between(spans[res], spans["array"], edges)
              / np.where(busy[res] > 0, busy[res], np.nan) for res in ("dram", "gen")}
    return pd.DataFrame({
        "latency_cycles_des": latency, "array_wait_data_cycles": by_layer["wait_data"],
        "dma_wait_space_cycles": by_layer["wait_space"], "transfer_cycles_des": transfer,
        "dram_busy_fraction": fraction["dram"], "gen_busy_fraction": fraction["gen"],
        "array_busy_fraction": fraction["array"],
        "dram_under_compute_fraction": hidden["dram"], "gen_under_compute_fraction": hidden["gen"],
    }, index=pd.Index([layer.name for layer in layers], name="layer"))


def _check(table: pd.DataFrame, timeline: pd.DataFrame, layers: tuple[LayerSchedule, ...],
           makespan: float) -> None:
    """Work is conserved and the array's clock adds up (the schedule against the log)."""
    expected = {"compute": sum(layer.compute_cycles for layer in layers),
                "transfer": sum(layer.transfer_cycles for layer in layers)}
    dur = timeline["end"] - timeline["start"]
    played = {"compute": dur[timeline["activity"] == "compute"].sum(),
              "transfer": dur[timeline["activity"].isin(("load", "store"))].sum()}
    for key, value in expected.items():
        if not np.isclose(played[key], value, rtol=1e-9, atol=1e-6):
            raise AssertionError(f"DES {key} cycles {played[key]} differ from the tiles' {value}")
    # Each layer's window on the array clock is its tiles' compute plus the waits logged
    # before them; the last window also holds the final write-back.
    drain = makespan - timeline.loc[timeline["activity"] == "compute", "end"].max()
    spent = (np.array([layer.compute_cycles for layer in layers])
             + table["array_wait_data_cycles"].to_numpy())
    spent[-1] += drain
    if not np.allclose(table["latency_cycles_des"].to_numpy(), spent, rtol=1e-9, atol=1e-6):
        raise AssertionError("DES layer windows differ from compute + waits on the array")


def _producer_indices(names: list[str], producers: dict | None) -> list[tuple[int, ...]]:
    """Indices of each layer's producers; by default (or when unknown) the previous layer."""
    index = {name: i for i, name in enumerate(names)}
    out = []
    for i, name in enumerate(names):
        given = (producers or {}).get(name) or ((names[i - 1],) if i else ())
        known = tuple(index[p] for p in given if p in index)
        if any(p >= i for p in known):
            raise ValueError(f"simulate: layer {name} reads a layer that runs after it")
        out.append(known)
    return out


def replay(layer_costs: dict, accel: Accelerator, producers: dict | None = None) -> Simulation:
    """Play ``layer_costs`` (layer name -> ``TileCosts``, in execution order) on ``accel``.

    ``producers`` (layer name -> names of the layers whose outputs it reads; other names, such
    as the model input, are already in DRAM) sets when a layer's inputs may be fetched; a
    layer without an entry reads the previous one.
    """
    if not layer_costs:
        raise ValueError("simulate: the graph has no layers")
    names = list(layer_costs)
    layers = tuple(schedule(name, costs, accel, before) for (name, costs), before in zip(
        layer_costs.items(), _producer_indices(names, producers)))
    env = _CountingEnvironment()
    hw = Hardware(env, accel, len(layers))
    env.process(dma(env, hw, layers))
    env.process(weight_generator(env, hw, layers))
    env.process(pe_array(env, hw, layers))
    env.process(write_back(env, hw, layers))
    env.run()
    if not all(event.processed for event in hw.layer_written):
        raise AssertionError("DES stopped before every layer was written back (deadlock)")
    timeline = pd.DataFrame(hw.records, columns=TIMELINE_COLUMNS)
    makespan = float(env.now)
    table = _layer_table(timeline, layers, makespan)
    _check(table, timeline, layers, makespan)
    timeline["layer"] = pd.Categorical.from_codes(timeline["layer"], categories=names)
    return Simulation(layers=table, timeline=timeline, latency_cycles=makespan,
                      events=env.processed)


def _layer_costs(graph: LayerGraph, accel: Accelerator, mappings) -> Iterator:
    """Each layer's per-tile costs; a bank holds one tile, so every tile must fit one."""
    for layer in graph.layers:
        if layer.name not in mappings:
            raise ValueError(f"mappings: no mapping for layer {layer.name}")
        costs = tile_costs(mappings[layer.name], accel)
        footprint = {"weight": costs.weight_tile_bytes, "input": costs.input_tile_bytes,
                     "output": costs.output_tile_bytes}
        if not fits(footprint, accel):
            raise ValueError("mappings: " + misfit_message(layer, footprint, accel, "a tile"))
        yield layer.name, costs


def simulate(graph: LayerGraph, accel: Accelerator, mappings: dict | None = None) -> Simulation:
    """Event-driven timing of ``graph`` on ``accel``, layer after layer, tile by tile.

    ``mappings`` (layer name -> ``Mapping``, e.g. ``dict(evaluate(...)["mapping"])``) fixes the
    tiles; by default the mapper's choice for the default objective is replayed, so the DES and
    ``evaluate`` see the same work.
    """
    if mappings is None:
        mappings = search_mappings(graph, accel, DEFAULT_OBJECTIVE)
    producers = {layer.name: layer.inputs for layer in graph.layers if layer.inputs}
    return replay(dict(_layer_costs(graph, accel, mappings)), accel, producers)


__all__ = [
    "ACTIVITIES",
    "ARBITRATION_BYTES",
    "COLUMNS",
    "RESOURCES",
    "TIMELINE_COLUMNS",
    "Hardware",
    "LayerSchedule",
    "Simulation",
    "dma",
    "burst_cycles",
    "bursts",
    "busy_between",
    "dram_link",
    "intervals",
    "pe_array",
    "replay",
    "schedule",
    "simulate",
    "weight_generator",
    "write_back",
]
