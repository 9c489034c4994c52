"""The cost of a given mapping: cycles, DRAM and SRAM traffic, action counts and energy.

Everything is built from named per-tile functions (``tile_costs`` applies them to the tiles of
one mapping; ``candidate_costs`` sums them over the tiles of every candidate in closed form;
the tests check that the two agree). Compute cycles follow the systolic fold model (SCALE-Sim's):
a fold costs ``fill + stream`` cycles, with fill = 2R+C-2 on WS and IS and R+C-2
on OS (no stationary operand to preload, as SCALE-Sim 3.0.0 does) and stream = the tile's
pixels (WS), Sr (OS) or filters (IS). The fill is paid when the array's stationary block
changes (a new weight / output / input block, or a block of several folds), not on every tile
that reuses it. Cycles scale by the precision mode (cycles per MAC per PE). SCALE-Sim reports
one cycle less than these formulas on every layer (the index of the last cycle).
Pool / add / concat run on a vector unit at the array edge: ``cols`` lanes, one element op
per lane per cycle. Latency assumes double-buffered overlap: prologue (first tile loaded, first
weights generated) + epilogue (last outputs stored) + the slowest of compute, SRAM, the rest of
DRAM and the rest of generation; without double buffering (any buffer single) the parts add up.
"""

import dataclasses
import functools
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from . import mapping as mp
from .accel import Accelerator, PEArray
from .energy import action_counts, action_energies, check_energy, energy_breakdown
from .layer import LayerGraph
from .objective import DEFAULT_OBJECTIVE, OBJECTIVES, SELECTION_COLUMNS, check_objective, select
from .report import plural
from .tech import get_tech
from .workload import LayerArrays

COLUMNS = ("macs", "weight_dram_bytes", "ifmap_dram_bytes", "ofmap_dram_bytes", "dram_bytes",
           "dram_transactions", "sram_reads_bytes", "sram_writes_bytes", "gen_macs",
           "compute_cycles", "memory_cycles", "stall_cycles", "latency_cycles", "utilization",
           "mac_energy_pj", "sram_energy_pj", "dram_energy_pj", "gen_energy_pj", "energy_pj")
EXTRA_COLUMNS = ("executed_macs", "vector_ops", "compulsory_dram_bytes", "gen_cycles",
                 "sram_cycles", "compute_utilization", "cycles_per_mac", "gating_mode",
                 "flop_reduction", "ideal_speedup", "gating_speedup", "group_packing")
MAPPING_COLUMNS = ("loop_order", "tile_groups", "tile_filters", "tile_channels", "tile_rows",
                   "num_tiles", "weight_fetches", "input_fetches", "output_visits")


# --- precision ---------------------------------------------------------------------------------
def _fusion(m: int, w: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Bit Fusion cycles per MAC: bricks fuse to the operand widths (passes above mac_bits)."""
    safe_a = np.maximum(a, 1)
    per_pe = np.maximum(1, m // safe_a) * np.maximum(1, m // np.maximum(w, 1))
    return np.where(a > 0, np.ceil(w / m) * np.ceil(safe_a / m) / per_pe, 0.0)


def cycles_per_mac(accel: Accelerator, weight_bits, act_bits, pred_bits, lsb_density):
    """PE-cycles one MAC takes under the precision mode, and the gating mode of each layer.

    bit_parallel: ceil(w/m)*ceil(a/m) passes; precision gating only gates energy ("gate").
    bit_serial_act (Stripes): ceil(w/m) * ceil(a/b) with b bits per cycle. bit_serial_both
    (Loom): w*a/m^2. bit_fusion: 1/(floor(m/a)*floor(m/w)). With precision gating
    (pred_bits > 0) serial and fused modes skip: a prediction pass at pred_bits for every MAC
    plus an LSB pass at act_bits - pred_bits for the lsb_density fraction ("skip").
    """
    array = accel.array
    m, w, a = array.mac_bits, np.asarray(weight_bits, float), np.asarray(act_bits, float)
    pred, lsb = np.asarray(pred_bits, float), np.asarray(lsb_density, float)
    gated = pred > 0
    mode = array.precision_mode
    if mode == "bit_parallel":
        scale = np.ceil(w / m) * np.ceil(a / m)
    elif mode == "bit_serial_act":
        bpc = array.bits_per_cycle
        steps = np.where(gated, np.ceil(pred / bpc) + lsb * np.ceil((a - pred) / bpc),
                         np.ceil(a / bpc))
        scale = np.ceil(w / m) * steps
    elif mode == "bit_serial_both":
        scale = w * np.where(gated, pred + lsb * (a - pred), a) / m ** 2
    else:
        scale = np.where(gated, _fusion(m, w, pred) + lsb * _fusion(m, w, a - pred),
                         _fusion(m, w, a))
    gating = np.where(gated, "gate" if mode == "bit_parallel" else "skip", "none")
    return scale, gating


# --- gating (docs/architecture.md, Compression on hardware) ---------------------------------------
def ideal_speedup(q) -> np.ndarray:
    """Compute reduction if gated work packed perfectly: dense bit-MACs over executed ones,
    ``1 / (mac_density · average activation bits / act_bits)``."""
    bits = np.where(q.pred_bits > 0, q.pred_bits + q.lsb_density * (q.act_bits - q.pred_bits),
                    q.act_bits)
    return q.act_bits / np.maximum(q.mac_density * bits, 1e-12)


@dataclass(frozen=True)
class ChannelGates:
    """Per candidate, what channel gating's gated pass costs on the array's columns.

    ``base_channels``: input channels of the base pass (0: the layer is not channel gated);
    over the column folds of all filter tiles, ``busiest``: the sum of the busiest column's
    gated-on share (a WS fold streams as long as its busiest column needs), ``busy_folds``:
    folds with any column gated on; ``on_filters``: filters with any output gated on.
    """

    base_channels: np.ndarray
    busiest: np.ndarray
    busy_folds: np.ndarray
    on_filters: np.ndarray

    @property
    def gated(self) -> np.ndarray:
        return self.base_channels > 0


def fold_maxima(density: np.ndarray, tile_filters: int, cols: int) -> tuple[np.ndarray, ...]:
    """Per filter tile of ``tile_filters``: the sum of its column folds' busiest shares, its
    folds with any share > 0 and its filters with a share > 0 (filters in channel order,
    ``cols`` per fold)."""
    index = np.arange(len(density))
    tile = index // tile_filters
    fold = tile * -(-tile_filters // cols) + index % tile_filters // cols
    starts = np.flatnonzero(np.r_[True, np.diff(fold) != 0])
    maxima = np.maximum.reduceat(density, starts)
    tiles = tile[starts]
    return (np.bincount(tiles, maxima), np.bincount(tiles, maxima > 0),
            np.bincount(tile, density > 0))


def channel_gates(layers, c: mp.Candidates, array: PEArray) -> ChannelGates | None:
    """``ChannelGates`` of every candidate (``c.layer`` indexes ``layers``); None when no layer
    is channel gated. One numpy pass per (gated layer, filter tile size), not per tile."""
    if not any(layer.channel_gated for layer in layers):
        return None
    out = {key: np.zeros(len(c.layer)) for key in ("busiest", "busy_folds", "on_filters")}
    out["base_channels"] = np.array(
        [np.ceil(layer.in_channels * layer.gate_base_fraction - 1e-9) for layer in layers]
        + [0.0])[c.layer]
    for i, layer in enumerate(layers):
        if not layer.channel_gated:
            continue
        density = np.asarray(layer.gate_channel_density, float)
        mine = c.layer == i
        for tile_filters in np.unique(c.tile_filters[mine]):
            chosen = mine & (c.tile_filters == tile_filters)
            sums = fold_maxima(density, int(tile_filters), array.cols)
            for key, value in zip(("busiest", "busy_folds", "on_filters"), sums, strict=True):
                out[key][chosen] = value.sum()
    return ChannelGates(**out)


def gated_stream(q, array: PEArray, folds: dict, base_rows, channels, filters, pixels,
                 busiest, busy_folds, on_filters) -> np.ndarray:
    """Stream cycles of a channel-gated layer's folds (fills apart), for one tile or summed
    over tiles (``folds``: the dense fold factors or their sums per dimension).

    Every output runs the base pass over the first ``base_rows`` row folds' channels (the
    grouped pattern has as many per output); the other channels run only for gated-on
    outputs. WS: base row folds stream every pixel, the others as many as the column fold's
    busiest column has gated on. OS: each PE owns one output, so a fold streams the rest of
    the reduction unless all its columns are off. IS: only filters off for every output leave
    the filter stream. Fills are paid as in the dense pass.
    """
    rest_rows = folds["C"] - base_rows
    flow = array.dataflow
    if flow == "ws":
        return folds["G"] * pixels * (folds["K"] * base_rows + rest_rows * busiest)
    if flow == "os":  # base_rows: the base channels (OS streams the reduction, no row folds)
        return folds["G"] * folds["P"] * q.kernel * (
            folds["K"] * base_rows + busy_folds * (channels - base_rows))
    return folds["G"] * folds["P"] * (base_rows * filters + rest_rows * on_filters)


def channel_gated_tile_cycles(q, accel: Accelerator, m: mp.Mapping, t: dict, pixels,
                              changed) -> np.ndarray:
    """Fold-model cycles of each tile of a channel-gated mapping (``gated_stream`` per tile)."""
    layer = m.layer
    density = np.asarray(layer.gate_channel_density, float)
    busiest, busy_folds, on_filters = (v[t["filter"]] for v in fold_maxima(
        density, m.tile_filters, accel.array.cols))
    f = mp.fold_factors(q, accel.array, t["groups"], t["filters"], t["channels"], pixels)
    base = np.ceil(layer.in_channels * layer.gate_base_fraction - 1e-9)
    base_in_tile = np.clip(base - t["channel"] * m.tile_channels, 0, t["channels"])
    base_rows = base_in_tile if accel.array.dataflow == "os" else np.ceil(
        base_in_tile * q.kernel / accel.array.rows)
    stream = gated_stream(q, accel.array, f, base_rows, t["channels"], t["filters"], pixels,
                          busiest, busy_folds, on_filters)
    return f["G"] * f["K"] * f["C"] * f["P"] * fill_cycles(accel.array) * changed + stream


# --- per-tile functions ----------------------------------------------------------------------
def fill_cycles(array: PEArray) -> int:
    """Cycles one fold spends filling (and draining) the array beyond its stream."""
    rows, cols = array.rows, array.cols
    return (rows if array.dataflow == "os" else 2 * rows) + cols - 2


def stream_cycles(q, array: PEArray, filters, channels, pixels) -> np.ndarray:
    """Cycles one fold streams: pixels on WS, the reduction Sr on OS, filters on IS."""
    flow = array.dataflow
    if flow == "ws":
        return pixels * np.ones_like(np.asarray(filters, float))
    if flow == "os":
        return channels * q.kernel
    return mp.executed_filters(q, filters)


def tile_fold_cycles(q, accel, groups, filters, channels, pixels, changed) -> np.ndarray:
    """Fold-model cycles of one tile (before precision scaling): every fold streams, and
    every fold pays the fill when the stationary block changed."""
    f = mp.fold_factors(q, accel.array, groups, filters, channels, pixels)
    folds = f["G"] * f["K"] * f["C"] * f["P"]
    return folds * (fill_cycles(accel.array) * changed
                    + stream_cycles(q, accel.array, filters, channels, pixels))


def tile_vector_cycles(q, accel, groups, pixels) -> np.ndarray:
    """Vector-unit cycles of a pool / add / concat tile: its element ops over ``cols`` lanes."""
    return groups * pixels * (q.vector_ops / q.output_elements) / accel.array.cols


def block_gen_macs(q, groups, filters, channels) -> np.ndarray:
    """Generation MACs to rebuild one weight block: its share of the weights, plus the
    input-channel intermediates (MLG's U·W^b) of its channels, rebuilt for every filter block."""
    share = groups * filters * channels / (q.groups * q.filters * q.channels)
    return (q.gen_macs - q.gen_in_macs) * share + q.gen_in_macs * groups * channels / (
        q.groups * q.channels)


def generation(accel: Accelerator, q, gen_macs):
    """Cycles and unit operations of regenerating weights: on the weight_gen unit or the array.

    Operands wider than the unit that runs them take several passes; each pass is one
    operation of that unit (a g x g MAC on the generator, a PE-cycle on the array).
    """
    bits = np.maximum(q.gen_bits, 1)
    if accel.weight_gen is not None:
        ops = gen_macs * np.ceil(bits / accel.weight_gen.bits) ** 2
        return ops / accel.weight_gen.macs_per_cycle, ops
    scale, _ = cycles_per_mac(accel, bits, bits, 0, 1.0)
    ops = gen_macs * scale
    return ops / accel.array.num_pes, ops


def factors_held(weight_bytes, accel: Accelerator):
    """Whether the generator's factor buffer holds a layer's compressed factors (``weight_bytes``:
    one layer's or an array of them)."""
    size = accel.weight_gen.factor_buffer_bytes if accel.weight_gen is not None else -1
    return weight_bytes <= size


@dataclass(frozen=True)
class TileCosts:
    """Per-tile costs of one mapping, arrays in ``Mapping.tiles()`` order.

    DRAM bytes as in ``Tile``; ``gen_cycles``: generation cycles of the weights fetched at the
    tile; ``compute_cycles``: the tile's array cycles (fill included when the stationary block
    changes, precision-scaled, generation on the array included). ``*_tile_bytes``: on-chip
    footprint of one full tile.
    """

    weight_read_bytes: np.ndarray
    input_read_bytes: np.ndarray
    psum_read_bytes: np.ndarray
    output_write_bytes: np.ndarray
    gen_cycles: np.ndarray
    compute_cycles: np.ndarray
    stationary_changed: np.ndarray
    weight_tile_bytes: float
    input_tile_bytes: float
    output_tile_bytes: float


def tile_costs(mapping: mp.Mapping, accel: Accelerator) -> TileCosts:
    """The per-tile functions applied to every tile of ``mapping`` on ``accel`` (vectorized)."""
    m = mapping.bind(accel)
    q = LayerArrays.from_layers((m.layer,))
    t = mp.tile_table(m)
    pixels = t["rows"] * q.out_w
    if m.layer.has_weights:
        if m.layer.channel_gated:
            fold = channel_gated_tile_cycles(q, accel, m, t, pixels, t["stationary_changed"])
        else:
            fold = tile_fold_cycles(q, accel, t["groups"], t["filters"], t["channels"], pixels,
                                    t["stationary_changed"])
        fetched = t["weight_read_bytes"] > 0  # every weight block has stored bytes
        gen, _ = generation(accel, q, np.where(fetched, block_gen_macs(
            q, t["groups"], t["filters"], t["channels"]), 0.0))
        scale, _ = cycles_per_mac(accel, q.weight_bits, q.act_bits, q.pred_bits, q.lsb_density)
        compute = fold * scale + (0 if accel.weight_gen is not None else gen)
    else:
        gen = np.zeros(len(pixels))
        compute = tile_vector_cycles(q, accel, t["groups"], pixels)
    c = mp.fixed_candidates([m])
    foot = mp.tile_footprint(q, c)
    return TileCosts(
        weight_read_bytes=t["weight_read_bytes"], input_read_bytes=t["input_read_bytes"],
        psum_read_bytes=t["psum_read_bytes"], output_write_bytes=t["output_write_bytes"],
        gen_cycles=gen, compute_cycles=compute, stationary_changed=t["stationary_changed"],
        weight_tile_bytes=float(foot["weight"][0]), input_tile_bytes=float(foot["input"][0]),
        output_tile_bytes=float(foot["output"][0]))


# --- closed forms over candidates --------------------------------------------------------------
def tile_sum(n, t, f) -> np.ndarray:
    """Sum of ``f(size)`` over the tiles of a dimension of size ``n`` cut into tiles of ``t``."""
    full = np.floor(n / t)  # exact for integer sizes, and much faster than float // and %
    edge = n - full * t
    return full * f(t) + np.where(edge > 0, f(edge), 0)


def _edge(n, t):
    """Size of the last tile of a dimension of size ``n`` cut into tiles of ``t``."""
    return n - (np.ceil(n / t) - 1) * t


def fold_sums(q, c: mp.Candidates, array: PEArray, trips, order_runs,
              gates: ChannelGates | None = None):
    """Fold-model cycles summed over all tiles, and the fills counted.

    Folds of a tile are a product of per-dimension factors, so sums over tiles are products of
    per-dimension sums; the streamed dimension contributes no folds. A stationary block with
    one fold pays its fill once per run of tiles that reuse it; a block of several folds pays
    every fold's fill on every tile. Channel-gated layers (``gates``) stream ``gated_stream``.
    """
    packing = q.per_layer(lambda layers: mp.group_packing(layers, array))
    dims = {"G": (q.groups, c.tile_groups), "K": (q.filters, c.tile_filters),
            "C": (q.channels, c.tile_channels), "P": (q.out_h, c.tile_rows)}

    def dim_sum(dim, fn):
        n, t = dims[dim]
        total = tile_sum(n, t, fn)
        return total * q.batch if dim == "P" else total

    def fold_and_single_sums(dim):
        """Folds of ``dim`` summed over its tiles, and its tiles of one fold (one
        ``fold_factor`` call per tile size, not one per sum)."""
        n, t = dims[dim]
        full = np.floor(n / t)
        edge = n - full * t
        out_w = q.out_w if dim == "P" else 1
        at_full = mp.fold_factor(q, array, dim, t * out_w, packing)
        at_edge = mp.fold_factor(q, array, dim, edge * out_w, packing)
        has_edge = edge > 0
        folds = full * at_full + np.where(has_edge, at_edge, 0)
        single = full * (at_full == 1) + np.where(has_edge, at_edge == 1, 0)
        return (folds * q.batch, single * q.batch) if dim == "P" else (folds, single)

    stationary = ("G", *mp.STATIONARY[array.dataflow])
    stream_dim = next(d for d in "KCP" if d not in stationary)
    both = {d: fold_and_single_sums(d) for d in stationary}
    sums = {d: both[d][0] for d in stationary}
    sums[stream_dim] = trips[stream_dim]
    stream = dim_sum(stream_dim, lambda s: stream_cycles(q, array, s, s, s * q.out_w))
    folds_per_pass = sums["G"] * sums[stationary[1]] * sums[stationary[2]]
    single = np.prod([both[d][1] for d in stationary], axis=0)
    run_length = trips[stream_dim] / order_runs
    fills = order_runs * (single + run_length * (folds_per_pass - single))
    streamed = stream * folds_per_pass
    if gates is not None:
        os = array.dataflow == "os"
        base_rows = gates.base_channels if os else tile_sum(
            gates.base_channels, c.tile_channels, lambda s: np.ceil(s * q.kernel / array.rows))
        streamed = np.where(gates.gated, gated_stream(
            q, array, sums, base_rows, q.channels, q.filters, q.batch * q.out_h * q.out_w,
            gates.busiest, gates.busy_folds, gates.on_filters), streamed)
    return fill_cycles(array) * fills + streamed, fills, folds_per_pass, sums


def transaction_terms(q, trips, fetch, rows_per_image) -> dict[str, np.ndarray]:
    """The accelerator-independent factors of ``dram_transactions``. NCHW, so a channel's rows
    of one tile are one contiguous chunk (one chunk per row when the stride skips rows); a
    weight block is one chunk. ``rows_per_image``: ``input_rows_per_image`` of the
    candidates."""
    plane = q.input_cols_read * q.act_bits / 8
    w_blocks = trips["G"] * trips["K"] * trips["C"]
    contiguous = q.kernel_h >= q.stride_h
    chunks = np.maximum(np.where(contiguous, trips["P_image"], rows_per_image), 1)
    pixels = q.out_h * q.out_w / trips["P_image"]
    return {"weight_blocks": w_blocks, "weight_blocks_fetched": w_blocks * fetch["weight"],
            "input_chunks": fetch["input"] * q.batch * q.num_inputs * q.in_channels * chunks,
            "input_chunk_bytes": rows_per_image * plane / chunks,
            "output_planes": q.batch * q.out_channels * trips["P_image"],
            "output_plane_bytes": pixels * q.out_bits / 8,
            "spills": 2 * (fetch["output"] - 1),
            "psum_plane_bytes": pixels * q.accum_bits / 8}


def dram_transactions(terms: dict, accel: Accelerator, w_pass) -> np.ndarray:
    """DRAM bursts of each candidate: every chunk of ``transaction_terms`` rounded up to whole
    transactions (``w_pass``: the bytes of one pass over the weights)."""
    txn = float(accel.dram.transaction_bytes)
    return (terms["weight_blocks_fetched"] * np.ceil(w_pass / terms["weight_blocks"] / txn)
            + terms["input_chunks"] * np.ceil(terms["input_chunk_bytes"] / txn)
            + terms["output_planes"] * (np.ceil(terms["output_plane_bytes"] / txn)
                                        + terms["spills"]
                                        * np.ceil(terms["psum_plane_bytes"] / txn)))


def candidate_geometry(q, c: mp.Candidates, array: PEArray,
                       gates: ChannelGates | None = None) -> dict:
    """What each candidate costs that depends on its layer and the array's shape alone: loop
    trips, block fetches, fold-model cycles and fills, the input rows its tiles read, the
    first and last blocks, the activations' DRAM bytes, the SRAM traffic per buffer and the
    generation MACs (computed once per candidate space, shared by every accelerator with that
    array; ``candidate_costs`` adds the rest)."""
    trips = c.trips(q)
    order = c.order.astype(int)
    fetch = mp.block_fetches(order, trips)
    stationary_tensor = mp.STATIONARY_TENSOR[array.dataflow]
    fold, fills, folds_per_pass, sums = fold_sums(q, c, array, trips, fetch[stationary_tensor],
                                                  gates)
    first = {d: np.minimum(getattr(c, f"tile_{name}"), n) for d, name, n in (
        ("G", "groups", q.groups), ("K", "filters", q.filters), ("C", "channels", q.channels),
        ("P", "rows", q.out_h))}
    input_rows = q.per_key(c.tile_rows, mp.input_rows_per_image)

    # DRAM traffic of the activations: per-block bytes summed over blocks, times how often
    # each block comes in (the weights' depend on the generator, see ``candidate_costs``).
    vector = q.is_vector > 0
    plane = q.num_inputs * q.input_cols_read * q.act_bits / 8
    i_pass = q.batch * q.groups * q.channels * plane * input_rows
    psum_bytes = q.output_elements * q.accum_bits / 8
    spill = 2 * (fetch["output"] - 1)
    ifmap_dram = i_pass * fetch["input"]
    ofmap_dram = q.output_bytes + spill * psum_bytes

    # SRAM bytes per buffer: array operand traffic plus DRAM fills and drains. The stationary
    # operand is read once per fill; a streamed operand once per fold of the other spatial
    # dimension; every row fold (WS, IS) or channel tile (OS) is an accumulation pass.
    sr = q.channels * q.kernel
    t_all = q.batch * q.out_h * q.out_w
    weights = sr * q.filters * q.groups
    inputs = t_all * sr * q.groups
    outputs = t_all * q.filters * q.groups
    loads = fills / np.maximum(folds_per_pass, 1)   # fills per fold of one pass
    if array.dataflow == "ws":
        w_rd, i_rd, passes = weights * loads, inputs * sums["K"], sums["C"]
    elif array.dataflow == "os":
        w_rd, i_rd, passes = weights * sums["P"] / q.batch, inputs * sums["K"], trips["C"]
    else:
        w_rd, i_rd, passes = weights * sums["P"] / q.batch, inputs * loads, sums["C"]
    psum_width = np.where(vector, q.out_bits, q.accum_bits) / 8
    spill_bytes = ofmap_dram - q.output_bytes
    reads = {"weight": np.where(vector, 0, w_rd) * q.weight_bits / 8,
             "input": np.where(vector, q.vector_ops, i_rd) * q.act_bits / 8,
             "output": np.where(vector, 0, outputs * (passes - 1)) * psum_width
             + q.output_bytes + spill_bytes / 2}
    writes = {"weight": q.dense_weight_bytes * fetch["weight"],
              "input": ifmap_dram,
              "output": np.where(vector, q.output_elements, outputs * passes) * psum_width
              + spill_bytes / 2}
    return {
        "trips": trips, "fetch": fetch, "fold_cycles": fold, "fills": fills,
        "folds_per_pass": folds_per_pass, "sums": sums, "first": first,
        "input_rows": input_rows,
        "first_input_bytes": mp.input_block_bytes(q, first["G"], first["C"], q.per_key(
            c.tile_rows, lambda v, rows: mp.input_rows_read(v, 0, np.minimum(rows, v.out_h)))),
        "last_output_bytes": mp.output_block_bytes(
            q, _edge(q.groups, c.tile_groups), _edge(q.filters, c.tile_filters),
            _edge(q.out_h, c.tile_rows), q.out_bits),
        "ifmap_dram_bytes": ifmap_dram, "ofmap_dram_bytes": ofmap_dram,
        "sram_reads": reads, "sram_writes": writes,
        "gen_macs": (q.gen_macs + q.gen_in_macs * (trips["K"] - 1)) * fetch["weight"],
        # Weight bytes with and without the generator holding the factors (an accelerator
        # picks one per layer).
        "weight_pass_bytes": {held: mp.weight_pass_bytes(q, trips, held)
                              for held in (False, True)},
        "first_weight_bytes": {held: mp.weight_block_bytes(
            q, trips, first["G"], first["K"], first["C"], held) for held in (False, True)},
        "transactions": transaction_terms(q, trips, fetch, input_rows),
        "first_gen_macs": block_gen_macs(q, first["G"], first["K"], first["C"]),
        "compulsory_dram_bytes": (q.weight_bytes + q.output_bytes + q.batch * q.in_channels
                                  * plane * q.input_rows_read)}


def candidate_costs(accel: Accelerator, q, c: mp.Candidates,
                    gates: ChannelGates | None = None,
                    geometry: dict | None = None) -> dict[str, np.ndarray]:
    """Every cost column but ``gating_speedup`` for each candidate (``q``: the layer numbers
    per candidate); ``evaluate`` adds that one for the chosen candidates only. ``geometry``:
    ``candidate_geometry`` of these candidates on this array, when already known."""
    array = accel.array
    vector = q.is_vector > 0
    geo = candidate_geometry(q, c, array, gates) if geometry is None else geometry
    trips, fetch, fold = geo["trips"], geo["fetch"], geo["fold_cycles"]
    held = factors_held(q.weight_bytes, accel)

    # DRAM traffic: the weights' per-block bytes depend on whether the generator holds the
    # factors; the activations' come from the geometry.
    w_pass = np.where(held, geo["weight_pass_bytes"][True], geo["weight_pass_bytes"][False])
    out = {"weight_dram_bytes": w_pass * fetch["weight"],
           "ifmap_dram_bytes": geo["ifmap_dram_bytes"],
           "ofmap_dram_bytes": geo["ofmap_dram_bytes"]}
    dram = out["weight_dram_bytes"] + out["ifmap_dram_bytes"] + out["ofmap_dram_bytes"]

    # Compute: fold model over the tiles, precision-scaled, plus generation on the array.
    scale, gating = cycles_per_mac(accel, q.weight_bits, q.act_bits, q.pred_bits, q.lsb_density)
    if gates is not None:
        gating = np.where(gates.gated, "channel", gating)
    gen_macs = geo["gen_macs"]
    gen_cycles, gen_ops = generation(accel, q, gen_macs)
    on_array = 0 if accel.weight_gen is not None else gen_cycles
    vector_cycles = q.vector_ops / array.cols
    compute = np.where(vector, vector_cycles, fold * scale + on_array)
    gen_unit = gen_cycles - on_array

    reads, writes = geo["sram_reads"], geo["sram_writes"]
    if accel.shared_buffer:
        shared_bw = accel.buffers[0].bw_bytes_per_cycle
        sram_cycles = (sum(reads.values()) + sum(writes.values())) / shared_bw
    else:
        sram_cycles = np.max([(reads[t] + writes[t]) / accel.buffer(t).bw_bytes_per_cycle
                              for t in mp.TENSORS], axis=0)
    sram_cycles = np.ceil(sram_cycles)

    # Latency: the first tile's blocks come in before compute starts, the last outputs leave
    # after it ends; in between the slowest resource sets the pace.
    bw = accel.dram.bw_bytes_per_cycle
    memory = np.ceil(dram / bw)
    first_w = np.where(held, geo["first_weight_bytes"][True], geo["first_weight_bytes"][False])
    prologue = (np.where(vector, 0, first_w) + geo["first_input_bytes"]) / bw
    epilogue = geo["last_output_bytes"] / bw
    gen_first = generation(accel, q, geo["first_gen_macs"])[0]
    gen_first = np.where(gen_unit > 0, gen_first, 0)
    if all(b.double_buffered for b in accel.buffers):
        steady = np.max([compute, sram_cycles, memory - prologue - epilogue,
                         gen_unit - gen_first], axis=0)
        latency = np.ceil(prologue + gen_first + epilogue + steady)
    else:
        latency = np.maximum(compute, sram_cycles) + memory + gen_unit

    executed = q.macs * q.mac_density
    compulsory = geo["compulsory_dram_bytes"]
    work = np.where(vector, vector_cycles, executed * scale / array.num_pes)
    counts = action_counts(accel, q, executed * scale, gen_ops, reads, writes, dram)
    energy = energy_breakdown(counts, q.per_layer(lambda layers: action_energies(accel, layers)))
    out.update({
        "macs": q.macs, "executed_macs": executed, "vector_ops": q.vector_ops,
        "dram_bytes": dram,
        "compulsory_dram_bytes": compulsory,
        "sram_reads_bytes": sum(reads.values()), "sram_writes_bytes": sum(writes.values()),
        "gen_macs": gen_macs, "gen_cycles": gen_cycles, "compute_cycles": compute,
        "memory_cycles": memory, "sram_cycles": sram_cycles, "latency_cycles": latency,
        "stall_cycles": latency - compute, "roofline_cycles": np.maximum(work, compulsory / bw),
        "cycles_per_mac": np.where(vector, 0.0, scale), "gating_mode": gating,
        "flop_reduction": 1 / np.maximum(q.mac_density, 1e-12),
        "ideal_speedup": np.where(vector, 1.0, ideal_speedup(q)),
        "group_packing": q.per_layer(lambda layers: mp.group_packing(layers, array)),
        "utilization": work / np.maximum(latency, 1),
        "compute_utilization": work / np.maximum(compute, 1),
        "fold_cycles": fold, "trips": trips, "fetch": fetch, "counts": counts, **energy,
    })
    out["dram_transactions"] = dram_transactions(geo["transactions"], accel, w_pass)
    return out


def _checked(c: dict, accel: Accelerator, q) -> None:
    """Physical limits hold and the energy recomputes; each check can fail on a wrong model."""
    if np.any(c["dram_bytes"] < c["compulsory_dram_bytes"] * (1 - 1e-9)):
        raise AssertionError("dram_bytes below the compulsory traffic")
    bound = np.max([c["compute_cycles"], c["memory_cycles"], c["roofline_cycles"]], axis=0)
    if np.any(c["latency_cycles"] < bound * (1 - 1e-9) - 1):
        raise AssertionError("latency_cycles below max(compute, memory, roofline)")
    check_energy(c, accel, q)


# --- search and evaluation ------------------------------------------------------------------------
@functools.lru_cache(maxsize=16)
def search_space(layers: tuple, rows: int, cols: int, dataflow: str):
    """The candidate space of a graph's distinct layers on an array of that shape
    (``hwsim.mapping.candidate_space``: candidates and tile footprints), the layer numbers per
    candidate (a ``LayerView``, its gathered fields kept for every accelerator), their channel
    gates and ``candidate_geometry`` (cached per graph and array shape: what is left per
    accelerator is the fit test and the costs that depend on the rest of it)."""
    first, _, arrays = mp.unique_layers(layers)
    space, tiles = mp.candidate_space(layers, rows, cols, dataflow)
    array = PEArray(rows, cols, dataflow)
    gates = channel_gates(first, space, array)
    q = arrays.view(space.layer)
    return space, tiles, q, gates, candidate_geometry(q, space, array, gates)


def _search(graph: LayerGraph, accel: Accelerator, objective: str):
    """Search the distinct layer shapes: the shapes, each layer's shape, their arrays, the
    candidates with their costs, and the index of each shape's chosen one (among those whose
    tiles fit the buffers)."""
    check_objective(objective)
    first, inverse, arrays = mp.unique_layers(graph.layers)
    space, tiles, q, gates, geometry = search_space(graph.layers, accel.array.rows,
                                                    accel.array.cols, accel.array.dataflow)
    ok = mp.fits(tiles, accel)
    fitting = np.bincount(space.layer[ok], minlength=len(first))
    if not fitting.all():
        i = int(np.argmin(fitting))
        total = np.where(space.layer == i, sum(tiles.values()), np.inf)
        j = int(np.argmin(total))
        raise ValueError(mp.misfit_message(
            first[i], {t: float(v[j]) for t, v in tiles.items()}, accel,
            "the smallest tile that fills the array ("
            + ", ".join(plural(int(n), unit) for n, unit in (
                (space.tile_groups[j], "group"), (space.tile_filters[j], "filter"),
                (space.tile_channels[j], "channel"), (space.tile_rows[j], "output row")))
            + ")"))
    # Costs of every candidate (cheaper than gathering the geometry of the fitting ones), the
    # choice among the fitting ones only.
    costs = candidate_costs(accel, q, space, gates=gates, geometry=geometry)
    keep = np.flatnonzero(ok)
    keys = {key: costs[key][keep] for key in SELECTION_COLUMNS}
    best = keep[select(space.layer[keep], keys, objective,
                       np.bincount(inverse, minlength=len(first)))]
    return first, inverse, arrays, space, costs, best


def _take(costs, index: np.ndarray):
    """The entries at ``index`` of every array in a ``candidate_costs`` result (a dict of
    arrays, dicts of arrays and records of arrays), or in one record."""
    if dataclasses.is_dataclass(costs):
        return type(costs)(**{f.name: getattr(costs, f.name)[index] for f in fields(costs)})
    return {key: _take(value, index) if isinstance(value, dict) or dataclasses.is_dataclass(
        value) else value[index] for key, value in costs.items()}


def _mappings(layers, cand: mp.Candidates, accel: Accelerator) -> list[mp.Mapping]:
    """The candidates as Mapping objects on ``accel`` (what ``Mapping.bind`` would set)."""
    tiles = np.stack([cand.tile_groups, cand.tile_filters, cand.tile_channels,
                      cand.tile_rows, cand.order]).T.tolist()
    return [mp.Mapping(layer, g, k, c, h, mp.LOOP_ORDERS[o],
                       factors_held=factors_held(layer.weight_bytes, accel),
                       array=accel.array)
            for layer, (g, k, c, h, o) in zip(layers, tiles, strict=True)]


def search_mappings(graph: LayerGraph, accel: Accelerator,
                    objective: str = DEFAULT_OBJECTIVE) -> dict[str, mp.Mapping]:
    """Best mapping of every layer for ``objective`` (one search per distinct layer shape)."""
    _, inverse, _, cand, _, best = _search(graph, accel, objective)
    chosen = cand.take(best)
    return {m.layer.name: m for m in _mappings(graph.layers, chosen.take(inverse), accel)}


def _tiling(m: mp.Mapping) -> tuple:
    return m.tile_groups, m.tile_filters, m.tile_channels, m.tile_rows, m.loop_order


def _given(graph: LayerGraph, accel: Accelerator, mappings: dict) -> list[mp.Mapping]:
    """The given mappings rebound to the graph's layers (by name) and to ``accel``."""
    out = []
    for layer in graph.layers:
        if layer.name not in mappings:
            raise ValueError(f"mappings: no mapping for layer {layer.name}")
        out.append(mp.Mapping(layer, *_tiling(mappings[layer.name])).bind(accel))
    return out


def evaluate_columns(graph: LayerGraph, accel: Accelerator,
                     objective: str = DEFAULT_OBJECTIVE,
                     mappings: dict[str, mp.Mapping] | None = None) -> dict:
    """``evaluate``'s columns, one array (or list) per column in layer order, without the
    DataFrame (what totals alone need: building the frame costs more than a seen graph's
    search)."""
    if mappings is None:
        _, inverse, arrays, space, costs, best = _search(graph, accel, objective)
        cand = space.take(best[inverse])
        chosen = _mappings(graph.layers, cand, accel)
        q = arrays.view(cand.layer)
        c = _take(costs, best[inverse])
    else:
        chosen = _given(graph, accel, mappings)
        cand = mp.fixed_candidates(chosen)
        q = LayerArrays.from_layers(graph.layers).view(cand.layer)
        tiles = mp.tile_footprint(q, cand)
        ok = mp.fits(tiles, accel)
        if not ok.all():
            i = int(np.argmin(ok))
            raise ValueError(mp.misfit_message(
                graph.layers[i], {t: float(v[i]) for t, v in tiles.items()}, accel,
                "the given mapping's tile"))
        c = candidate_costs(accel, q, cand, gates=channel_gates(graph.layers, cand, accel.array))
    # Realized cycle reduction: the same tiles with every gate on, at the ungated precision
    # (only the chosen mappings need it, so not the search).
    dense = q.replace(mac_density=np.ones_like(q.mac_density),
                      filter_density=np.ones_like(q.mac_density))
    ungated = fold_sums(dense, cand, accel.array, c["trips"], c["fetch"][
        mp.STATIONARY_TENSOR[accel.array.dataflow]])[0]
    dense_scale, _ = cycles_per_mac(accel, q.weight_bits, q.act_bits, 0, 1.0)
    c["gating_speedup"] = np.where(q.is_vector > 0, 1.0, ungated * dense_scale / np.maximum(
        c["fold_cycles"] * c["cycles_per_mac"], 1e-12))
    _checked(c, accel, q)
    trips, fetch = c["trips"], c["fetch"]
    data = {"op": [layer.op for layer in graph.layers]}
    data.update({key: c[key] for key in COLUMNS + EXTRA_COLUMNS})
    data.update({
        "loop_order": [">".join(m.loop_order) for m in chosen],
        "tile_groups": cand.tile_groups, "tile_filters": cand.tile_filters,
        "tile_channels": cand.tile_channels, "tile_rows": cand.tile_rows,
        "num_tiles": (trips["G"] * trips["K"] * trips["C"] * trips["P"]),
        "weight_fetches": fetch["weight"], "input_fetches": fetch["input"],
        "output_visits": fetch["output"], "mapping": chosen})
    return data


def cost_frame(graph: LayerGraph, columns: dict) -> pd.DataFrame:
    """``evaluate_columns``'s result as ``evaluate``'s DataFrame (index: layer name)."""
    return pd.DataFrame(columns, index=pd.Index([layer.name for layer in graph.layers],
                                                name="layer"))


def evaluate(graph: LayerGraph, accel: Accelerator, objective: str = DEFAULT_OBJECTIVE,
             mappings: dict[str, mp.Mapping] | None = None) -> pd.DataFrame:
    """Per-layer analytical costs, one row per layer (index: layer name).

    Columns: ``COLUMNS`` (the documented cost columns), ``EXTRA_COLUMNS``, the chosen tiling
    (``MAPPING_COLUMNS``) and ``mapping`` (the frozen ``Mapping``). With ``mappings`` (layer
    name -> Mapping, e.g. ``dict(df["mapping"])``) no search runs: the given tilings are
    evaluated on ``graph``'s layers of those names. ``gen_macs`` counts generation MACs
    actually executed (x weight re-fetches).
    """
    return cost_frame(graph, evaluate_columns(graph, accel, objective, mappings))


_SUMMED = ("macs", "executed_macs", "vector_ops", "weight_dram_bytes", "ifmap_dram_bytes",
           "ofmap_dram_bytes", "dram_bytes", "dram_transactions", "sram_reads_bytes",
           "sram_writes_bytes", "gen_macs", "compute_cycles", "memory_cycles", "stall_cycles",
           "latency_cycles", "mac_energy_pj", "sram_energy_pj", "dram_energy_pj",
           "gen_energy_pj", "energy_pj", "compulsory_dram_bytes")


def hardware_totals(df, graph: LayerGraph, accel: Accelerator) -> dict:
    """Whole-model totals from the rows (``evaluate``'s DataFrame or ``evaluate_columns``),
    beside the physical limits and the tech citation.

    ``roofline_latency_cycles`` = max(``compute_bound_cycles``: sum of executed MACs x cycles
    per MAC / PEs, ``memory_bound_cycles``: compulsory bytes / DRAM bandwidth); layers run one
    after another, nothing stays on chip between them.
    """
    # Layers x columns in the memory order of a DataFrame's block (columns contiguous), so
    # the sums are the same floats whichever of the two comes in.
    if isinstance(df, pd.DataFrame):
        table = df[list(_SUMMED)].to_numpy(dtype=float)
    else:
        table = np.stack([np.asarray(df[key], dtype=float) for key in _SUMMED]).T
    sums = table.sum(axis=0)
    totals = {key: float(v) for key, v in zip(_SUMMED, sums, strict=True)}
    peak_work = float((np.asarray(df["executed_macs"]) * np.asarray(df["cycles_per_mac"])).sum()
                      / accel.array.num_pes)
    memory_bound = totals["compulsory_dram_bytes"] / accel.dram.bw_bytes_per_cycle
    roofline = max(peak_work, memory_bound)
    table = get_tech(accel.tech)
    cycles_per_ms = accel.clock_mhz * 1e3
    totals.update({
        "model": graph.model, "accelerator": accel.name, "layers": len(graph.layers),
        "latency_ms": totals["latency_cycles"] / cycles_per_ms,
        "utilization": peak_work / max(totals["latency_cycles"], 1),
        "compute_bound_cycles": peak_work, "memory_bound_cycles": memory_bound,
        "roofline_latency_cycles": roofline, "roofline_latency_ms": roofline / cycles_per_ms,
        "tech": table.name, "tech_citation": table.citation,
    })
    return totals


__all__ = [
    "COLUMNS",
    "DEFAULT_OBJECTIVE",
    "EXTRA_COLUMNS",
    "MAPPING_COLUMNS",
    "OBJECTIVES",
    "TileCosts",
    "candidate_costs",
    "cost_frame",
    "cycles_per_mac",
    "evaluate",
    "evaluate_columns",
    "hardware_totals",
    "search_mappings",
    "tile_costs",
]
