"""Analytical cost model: cycles, accesses and energy per layer, with the mapping searched.

Compute cycles follow the systolic fold model (SCALE-Sim's, DESIGN.md 6) summed over the
mapping's tiles: WS (2R+C+T-2)*ceil(Sr/R)*ceil(Sc/C), OS (R+C+Sr-2)*ceil(T/R)*ceil(Sc/C),
IS (2R+C+Sc-2)*ceil(Sr/R)*ceil(T/C), scaled by the precision mode (cycles per MAC per PE).
OS has no stationary operand to preload, so its fold pays R cycles less than DESIGN.md's
uniform formula; that is what SCALE-Sim 3.0.0 does (tests/golden). SCALE-Sim reports one
cycle less than these formulas on every layer (the index of the last cycle).
Pool / add / concat run on a vector unit at the array edge: ``cols`` lanes, one element op
per lane per cycle, energy of one ``act_bits`` add per op. Latency assumes double-buffered
overlap: prologue (first tile loaded, first weights generated) + epilogue (last outputs
stored) + the slowest of compute, SRAM, the rest of DRAM and the rest of generation; without
double buffering (any buffer single) the parts add up.
"""

import numpy as np
import pandas as pd

from . import mapping as mp
from .accel import Accelerator
from .layer import LayerGraph
from .tech import add_energy_pj, get_tech, mac_energy_pj, mult_energy_pj, sram_pj_per_byte

OBJECTIVES = ("dram_bytes", "energy_pj", "latency_cycles")
_TIE_BREAK = {"dram_bytes": ("latency_cycles", "energy_pj"),
              "energy_pj": ("latency_cycles", "dram_bytes"),
              "latency_cycles": ("dram_bytes", "energy_pj")}
COLUMNS = ("macs", "weight_dram_bytes", "ifmap_dram_bytes", "ofmap_dram_bytes", "dram_bytes",
           "dram_transactions", "sram_reads_bytes", "sram_writes_bytes", "gen_macs",
           "compute_cycles", "memory_cycles", "stall_cycles", "latency_cycles", "utilization",
           "mac_energy_pj", "sram_energy_pj", "dram_energy_pj", "gen_energy_pj", "energy_pj")
EXTRA_COLUMNS = ("executed_macs", "vector_ops", "compulsory_dram_bytes", "gen_cycles",
                 "sram_cycles", "compute_utilization", "cycles_per_mac", "gating_mode",
                 "flop_reduction", "ideal_speedup", "gating_speedup", "group_packing")
MAPPING_COLUMNS = ("loop_order", "tile_groups", "tile_filters", "tile_channels", "tile_rows",
                   "num_tiles", "weight_fetches", "input_fetches", "output_visits")


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


def _pe_mult_pj(accel: Accelerator) -> float:
    """Multiply energy of one PE-cycle: m x m (m x bits_per_cycle with bit-serial activations)."""
    array = accel.array
    act_width = array.bits_per_cycle if array.precision_mode == "bit_serial_act" else array.mac_bits
    return mult_energy_pj(get_tech(accel.tech), array.mac_bits, act_width)


def _mac_energy(accel: Accelerator, q: dict, scale: np.ndarray) -> np.ndarray:
    """Energy per executed MAC: PE-cycles x energy of one PE-cycle (pJ).

    A PE-cycle is a ``_pe_mult_pj`` multiply plus an add at accum_bits. On bit-parallel arrays
    precision gating scales the multiply by the fraction of activation bits computed,
    pred + lsb_density*(a - pred) over a.
    """
    mult = _pe_mult_pj(accel)
    if accel.array.precision_mode == "bit_parallel":
        a, pred = q["act_bits"], q["pred_bits"]
        mult = mult * np.where(pred > 0, (pred + q["lsb_density"] * (a - pred)) / a, 1.0)
    return scale * (mult + add_energy_pj(get_tech(accel.tech), q["accum_bits"]))


def _generation(accel: Accelerator, q: dict, gen_macs: np.ndarray):
    """Cycles and energy (pJ) of regenerating weights: on the weight_gen unit or the array.

    Operands wider than the unit that runs them take several passes, and every pass costs
    cycles and the energy of one operation of that unit (a g x g MAC with a 2g-bit add on the
    generator, a PE-cycle on the array).
    """
    tech = get_tech(accel.tech)
    bits = np.maximum(q["gen_bits"], 1)
    if accel.weight_gen is not None:
        unit = accel.weight_gen.bits
        passes = np.ceil(bits / unit) ** 2
        energy = gen_macs * passes * mac_energy_pj(tech, unit, unit, 2 * unit)
        return np.ceil(gen_macs * passes / accel.weight_gen.macs_per_cycle), energy
    scale, _ = cycles_per_mac(accel, bits, bits, 0, 1.0)
    energy = gen_macs * scale * (_pe_mult_pj(accel)
                                 + add_energy_pj(tech, 2 * accel.array.mac_bits))
    return np.ceil(gen_macs * scale / accel.array.num_pes), energy


# --- gating (DESIGN.md 5) ------------------------------------------------------------------
def _fold_maxima(density: np.ndarray, tile_filters: int, cols: int) -> np.ndarray:
    """Busiest channel's density in each column fold: filters cut into K tiles of
    ``tile_filters``, each tile folded onto ``cols`` columns in channel order."""
    index = np.arange(len(density))
    folds_per_tile = -(-tile_filters // cols)
    key = index // tile_filters * folds_per_tile + index % tile_filters // cols
    starts = np.flatnonzero(np.r_[True, np.diff(key) != 0])
    return np.maximum.reduceat(density, starts)


def channel_gate_stats(layers, q: dict, accel: Accelerator) -> dict[str, np.ndarray]:
    """Per candidate, what the channel-gated pass costs on the array's columns.

    ``gate_busiest``: sum over column folds of the busiest column's gated-on share (a fold
    streams as long as its busiest column needs); ``gate_busy_folds``: column folds with any
    gated-on column; ``gate_on_filters``: filters with any gated-on output;
    ``gate_base_fraction`` as the layer's. Zeros for layers without channel gating. One numpy
    pass per (gated layer, filter tile size), not per tile.
    """
    layer_of = q["layer"].astype(int)
    out = {key: np.zeros(len(layer_of)) for key in
           ("gate_busiest", "gate_busy_folds", "gate_on_filters")}
    out["gate_base_fraction"] = np.array([layer.gate_base_fraction for layer in layers]
                                         + [0.0])[layer_of]
    for i, layer in enumerate(layers):
        if not layer.channel_gated:
            continue
        density = np.asarray(layer.gate_channel_density, float)
        mine = layer_of == i
        out["gate_on_filters"][mine] = np.count_nonzero(density)
        for tile_filters in np.unique(q["tile_filters"][mine]):
            maxima = _fold_maxima(density, int(tile_filters), accel.array.cols)
            chosen = mine & (q["tile_filters"] == tile_filters)
            out["gate_busiest"][chosen] = maxima.sum()
            out["gate_busy_folds"][chosen] = np.count_nonzero(maxima)
    return out


def channel_gated_fold_cycles(accel: Accelerator, q: dict, n: dict, f: dict) -> np.ndarray:
    """Fold-model cycles of channel-gated layers (``f``: the dense fold counts).

    Every output runs the base pass over ``gate_base_fraction`` of its input channels (the
    first ones in the reduction; the grouped pattern has as many per output); the remaining
    channels run only for gated-on outputs. Weight-stationary: row folds holding base rows
    stream every output pixel, the other row folds stream, per column fold, as many pixels as
    its busiest column has gated on (``gate_busiest``). Output-stationary: each PE owns one
    output, so a fold streams the rest of the reduction unless all its columns are off
    (``gate_busy_folds``). Input-stationary: the filter stream skips only filters that are
    off for every output (``gate_on_filters``). Fills are paid as in the dense pass.
    """
    rows = accel.array.rows
    flow = accel.array.dataflow
    fill = (rows if flow == "os" else 2 * rows) + accel.array.cols - 2
    base_channels = np.ceil(q["channels"] * q["gate_base_fraction"] - 1e-9)
    if flow == "os":
        sr, sr_base = q["channels"] * q["kernel"], base_channels * q["kernel"]
        return f["rows_T"] * q["groups"] * (f["cols_Sc"] * (n["C"] * fill + sr_base)
                                            + (sr - sr_base) * q["gate_busy_folds"])
    base_rows = mp.tile_sum(base_channels, q["tile_channels"],
                            lambda t: np.ceil(t * q["kernel"] / rows))
    rest_rows = f["rows_Sr"] - base_rows
    if flow == "ws":
        t = q["batch"] * q["oh"] * q["ow"]
        return f["groups"] * (f["cols_Sc"] * (f["rows_Sr"] * n["P"] * fill + base_rows * t)
                              + rest_rows * t * q["gate_busiest"])
    return f["cols_T"] * q["groups"] * (f["rows_Sr"] * n["K"] * fill
                                        + base_rows * f["stream_Sc"]
                                        + rest_rows * q["gate_on_filters"])


def ideal_speedup(q: dict) -> np.ndarray:
    """Compute reduction if gated work packed perfectly: dense bit-MACs over executed ones,
    ``1 / (mac_density · average activation bits / act_bits)``."""
    bits = np.where(q["pred_bits"] > 0, q["pred_bits"] + q["lsb_density"]
                    * (q["act_bits"] - q["pred_bits"]), q["act_bits"])
    return q["act_bits"] / np.maximum(q["mac_density"] * bits, 1e-12)


def _fold_cycles(accel: Accelerator, q: dict, n: dict, f: dict) -> np.ndarray:
    """Systolic fold-model cycles summed over the tiles (before precision scaling)."""
    rows, cols = accel.array.rows, accel.array.cols
    flow = accel.array.dataflow
    fill = (rows if flow == "os" else 2 * rows) + cols - 2
    if flow == "ws":
        t = q["batch"] * q["oh"] * q["ow"]
        return (n["P"] * fill + t) * f["rows_Sr"] * f["cols_Sc"] * f["groups"]
    if flow == "os":
        sr = q["channels"] * q["kernel"]
        return (n["C"] * fill + sr) * f["rows_T"] * f["cols_Sc"] * q["groups"]
    return (n["K"] * fill + f["stream_Sc"]) * f["rows_Sr"] * f["cols_T"] * q["groups"]


def _check_sum(total: np.ndarray, parts: list[np.ndarray], what: str) -> None:
    if not np.allclose(total, np.sum(parts, axis=0), rtol=1e-9, atol=1e-6):
        raise AssertionError(f"{what} does not equal the sum of its parts")


def candidate_costs(accel: Accelerator, q: dict) -> dict[str, np.ndarray]:
    """Every cost column but ``gating_speedup`` for each candidate in ``q`` (layer numbers
    gathered per candidate); ``evaluate`` adds that one for the chosen candidates only."""
    tech = get_tech(accel.tech)
    array = accel.array
    n = mp.trips(q)
    fetch = mp.refetches(q, n)
    factor_buffer = accel.weight_gen.factor_buffer_bytes if accel.weight_gen else 0
    traffic = mp.dram_traffic(q, n, fetch, accel.dram.transaction_bytes, factor_buffer)
    cg = q["gate_base_fraction"] > 0
    # Channel-gated layers keep every column fold (gates are per output, not per filter).
    f = mp.folds(q, n, accel, np.where(cg, 1.0, q["mac_density"]))
    acc = mp.array_accesses(q, n, f, array.dataflow)
    vector = q["vector"] > 0
    out = dict(traffic)

    scale, gating = cycles_per_mac(accel, q["weight_bits"], q["act_bits"], q["pred_bits"],
                                   q["lsb_density"])
    gating = np.where(cg, "channel", gating)
    executed = q["macs"] * q["mac_density"]
    fold = _fold_cycles(accel, q, n, f)
    if cg.any():
        fold = np.where(cg, channel_gated_fold_cycles(accel, q, n, f), fold)
    # Each pass regenerates every weight; the input-channel intermediates (MLG's U·W^b) are
    # rebuilt for every filter tile.
    gen_macs = (q["gen_macs"] + q["gen_in_macs"] * (n["K"] - 1)) * fetch["weight"]
    gen_cycles, gen_energy = _generation(accel, q, gen_macs)
    on_array = 0 if accel.weight_gen is not None else gen_cycles
    compute = np.where(vector, np.ceil(q["vector_ops"] / array.cols),
                       np.ceil(fold * scale) + on_array)
    gen_unit = gen_cycles - on_array

    # SRAM bytes per buffer: array operand traffic plus DRAM fills and drains.
    spill_bytes = traffic["ofmap_dram_bytes"] - q["output_bytes"]
    psum_bytes = np.where(vector, q["out_bits"], q["accum_bits"]) / 8
    reads = {"weight": acc["weight_reads"] * q["weight_bits"] / 8,
             "input": acc["input_reads"] * q["act_bits"] / 8,
             "output": acc["psum_reads"] * psum_bytes + q["output_bytes"] + spill_bytes / 2}
    writes = {"weight": q["dense_weight_bytes"] * fetch["weight"],
              "input": traffic["ifmap_dram_bytes"],
              "output": acc["psum_writes"] * psum_bytes + spill_bytes / 2}
    if accel.shared_buffer:
        buffer = accel.buffers[0]
        sram_cycles = (sum(reads.values()) + sum(writes.values())) / buffer.bw_bytes_per_cycle
    else:
        sram_cycles = np.max([(reads[t] + writes[t]) / accel.buffer(t).bw_bytes_per_cycle
                              for t in reads], axis=0)
    sram_cycles = np.ceil(sram_cycles)
    sram_energy = 0.0
    for t, read in reads.items():
        buffer = accel.buffer(t)
        pj = buffer.pj_per_byte or float(sram_pj_per_byte(tech, buffer.size_bytes))
        sram_energy = sram_energy + (read + writes[t]) * pj

    dram = traffic["weight_dram_bytes"] + traffic["ifmap_dram_bytes"] + traffic["ofmap_dram_bytes"]
    bw = accel.dram.bw_bytes_per_cycle
    memory = np.ceil(dram / bw)
    prologue, epilogue = traffic["first_load_bytes"] / bw, traffic["last_store_bytes"] / bw
    gen_first = np.where(gen_unit > 0, gen_unit / np.maximum(traffic["weight_transfers"], 1), 0)
    if all(b.double_buffered for b in accel.buffers):
        steady = np.max([compute, sram_cycles, memory - prologue - epilogue,
                         gen_unit - gen_first], axis=0)
        latency = np.ceil(prologue + gen_first + epilogue + steady)
    else:
        latency = np.maximum(compute, sram_cycles) + memory + gen_unit
    latency = np.maximum(latency, compute)

    pj_per_bit = accel.dram.pj_per_bit or tech.dram_pj_per_bit
    vec_energy = q["vector_ops"] * add_energy_pj(tech, q["act_bits"])
    out.update({
        "macs": q["macs"], "executed_macs": executed, "vector_ops": q["vector_ops"],
        "dram_bytes": dram,
        "dram_transactions": (traffic["weight_transactions"] + traffic["ifmap_transactions"]
                              + traffic["ofmap_transactions"]),
        "compulsory_dram_bytes": q["weight_bytes"] + q["input_bytes"] + q["output_bytes"],
        "sram_reads_bytes": sum(reads.values()), "sram_writes_bytes": sum(writes.values()),
        "gen_macs": gen_macs, "gen_cycles": gen_cycles, "compute_cycles": compute,
        "memory_cycles": memory, "sram_cycles": sram_cycles, "latency_cycles": latency,
        "stall_cycles": latency - compute,
        "cycles_per_mac": np.where(vector, 0.0, scale), "gating_mode": gating,
        "mac_energy_pj": np.where(vector, vec_energy, executed * _mac_energy(accel, q, scale)),
        "sram_energy_pj": sram_energy, "dram_energy_pj": dram * 8 * pj_per_bit,
        "gen_energy_pj": gen_energy,
        "flop_reduction": 1 / np.maximum(q["mac_density"], 1e-12),
        "ideal_speedup": np.where(vector, 1.0, ideal_speedup(q)),
        "group_packing": f["packing"], "n": n, "fetch": fetch, "fold": fold,
    })
    out["energy_pj"] = (out["mac_energy_pj"] + out["sram_energy_pj"] + out["dram_energy_pj"]
                        + out["gen_energy_pj"])
    work = np.where(vector, q["vector_ops"] / array.cols, executed * scale / array.num_pes)
    out["utilization"] = work / np.maximum(latency, 1)
    out["compute_utilization"] = work / np.maximum(compute, 1)
    return out


def _checked(c: dict) -> None:
    """Every breakdown adds up, and no tensor moves less than its compulsory traffic."""
    _check_sum(c["energy_pj"], [c["mac_energy_pj"], c["sram_energy_pj"], c["dram_energy_pj"],
                                c["gen_energy_pj"]], "energy_pj")
    _check_sum(c["dram_bytes"], [c["weight_dram_bytes"], c["ifmap_dram_bytes"],
                                 c["ofmap_dram_bytes"]], "dram_bytes")
    _check_sum(c["latency_cycles"], [c["compute_cycles"], c["stall_cycles"]], "latency_cycles")
    if np.any(c["dram_bytes"] < c["compulsory_dram_bytes"] * (1 - 1e-9)):
        raise AssertionError("dram_bytes below the compulsory traffic")


def _select(accel: Accelerator, graph: LayerGraph, objective: str):
    """Search every layer's candidates; return the gathered numbers of the chosen ones."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    params = mp.layer_params(graph.layers)
    q = mp.gather(params, mp.search_space(params))
    legal = mp.fills_array(q, accel)
    tiles = mp.tile_bytes(q)
    ok = legal & mp.fits(tiles, accel)
    fitting_layers = np.bincount(q["layer"][ok].astype(int), minlength=len(graph.layers))
    if not fitting_layers.all():
        i = int(np.argmin(fitting_layers))
        total = np.where(legal & (q["layer"] == i), sum(tiles.values()), np.inf)
        j = int(np.argmin(total))
        raise ValueError(mp.misfit_message(
            graph.layers[i], {t: float(v[j]) for t, v in tiles.items()}, accel,
            f"the smallest tile that fills the array ({q['tile_groups'][j]:.0f} groups, "
            f"{q['tile_filters'][j]:.0f} filters, {q['tile_channels'][j]:.0f} channels, "
            f"{q['tile_rows'][j]:.0f} output rows)"))
    q = {key: value[ok] for key, value in q.items()}
    q.update(channel_gate_stats(graph.layers, q, accel))
    costs = candidate_costs(accel, q)
    keys = [costs[objective]] + [costs[k] for k in _TIE_BREAK[objective]]
    best = mp.choose(q["layer"], keys)
    return {key: value[best] for key, value in q.items()}


def search_mappings(graph: LayerGraph, accel: Accelerator,
                    objective: str = "dram_bytes") -> dict[str, mp.Mapping]:
    """Best mapping of every layer for ``objective`` (ties: the other objectives, then order)."""
    q = _select(accel, graph, objective)
    n = mp.trips(q)
    return mp.to_mappings(graph.layers, q, n, mp.refetches(q, n))


def evaluate(graph: LayerGraph, accel: Accelerator, objective: str = "dram_bytes",
             mappings: dict[str, mp.Mapping] | None = None) -> pd.DataFrame:
    """Per-layer analytical costs, one row per layer (index: layer name).

    Columns: ``COLUMNS`` (DESIGN.md 4), then ``EXTRA_COLUMNS`` and the chosen mapping
    (``MAPPING_COLUMNS``). With ``mappings`` (layer name -> Mapping, e.g. from
    ``search_mappings`` or ``df.attrs["mappings"]``) no search runs: the given tiles are
    evaluated as they are. ``gen_macs`` counts generation MACs actually executed (x weight
    re-fetches). The chosen Mapping objects are in ``df.attrs["mappings"]``.
    """
    if mappings is None:
        q = _select(accel, graph, objective)
    else:
        q = mp.gather(mp.layer_params(graph.layers), mp.fixed_space(graph.layers, mappings))
        tiles = mp.tile_bytes(q)
        ok = mp.fits(tiles, accel)
        if not ok.all():
            i = int(np.argmin(ok))
            raise ValueError(mp.misfit_message(
                graph.layers[i], {t: float(v[i]) for t, v in tiles.items()}, accel,
                "the given mapping's tile"))
        q.update(channel_gate_stats(graph.layers, q, accel))
    c = candidate_costs(accel, q)
    # Only the chosen mappings need the ungated fold count, so not the search.
    dense = mp.folds(q, c["n"], accel, np.ones_like(q["mac_density"]))
    # Realized cycle reduction: the same tiles with every gate on, at the ungated precision.
    dense_scale, _ = cycles_per_mac(accel, q["weight_bits"], q["act_bits"], 0, 1.0)
    c["gating_speedup"] = np.where(
        q["vector"] > 0, 1.0, _fold_cycles(accel, q, c["n"], dense) * dense_scale
        / np.maximum(c["fold"] * c["cycles_per_mac"], 1e-12))
    _checked(c)
    n, fetch = c["n"], c["fetch"]
    data = {"op": [layer.op for layer in graph.layers]}
    data.update({key: c[key] for key in COLUMNS + EXTRA_COLUMNS})
    data.update({
        "loop_order": [">".join(mp.LOOP_ORDERS[int(o)]) for o in q["order"]],
        "tile_groups": q["tile_groups"], "tile_filters": q["tile_filters"],
        "tile_channels": q["tile_channels"], "tile_rows": q["tile_rows"],
        "num_tiles": n["G"] * n["K"] * n["C"] * n["P"], "weight_fetches": fetch["weight"],
        "input_fetches": fetch["input"], "output_visits": fetch["output"]})
    df = pd.DataFrame(data, index=pd.Index([layer.name for layer in graph.layers], name="layer"))
    df.attrs["mappings"] = mp.to_mappings(graph.layers, q, n, fetch)
    return df


_SUMMED = ("macs", "executed_macs", "vector_ops", "weight_dram_bytes", "ifmap_dram_bytes",
           "ofmap_dram_bytes", "dram_bytes", "dram_transactions", "sram_reads_bytes",
           "sram_writes_bytes", "gen_macs", "compute_cycles", "memory_cycles", "stall_cycles",
           "latency_cycles", "mac_energy_pj", "sram_energy_pj", "dram_energy_pj",
           "gen_energy_pj", "energy_pj", "compulsory_dram_bytes")


def hardware_totals(df: pd.DataFrame, graph: LayerGraph, accel: Accelerator) -> dict:
    """Whole-model totals from the rows, beside the physical limits and the tech citation.

    ``roofline_latency_cycles`` = max(sum of executed MACs x cycles per MAC / PEs, compulsory
    bytes / DRAM bandwidth); layers run one after another, nothing stays on chip between them.
    """
    totals = {key: float(df[key].sum()) for key in _SUMMED}
    _check_sum(np.array(totals["energy_pj"]), [np.array(totals[k]) for k in (
        "mac_energy_pj", "sram_energy_pj", "dram_energy_pj", "gen_energy_pj")], "energy_pj")
    peak_work = float((df["executed_macs"] * df["cycles_per_mac"]).sum()) / accel.array.num_pes
    compulsory = totals["compulsory_dram_bytes"]
    roofline = max(peak_work, compulsory / accel.dram.bw_bytes_per_cycle)
    table = get_tech(accel.tech)
    cycles_per_ms = accel.clock_mhz * 1e3
    totals.update({
        "model": graph.model, "accelerator": accel.name, "layers": len(graph.layers),
        "latency_ms": totals["latency_cycles"] / cycles_per_ms,
        "utilization": peak_work / max(totals["latency_cycles"], 1),
        "roofline_latency_cycles": roofline, "roofline_latency_ms": roofline / cycles_per_ms,
        "tech": table.name, "tech_citation": table.citation,
    })
    return totals


__all__ = [
    "COLUMNS",
    "EXTRA_COLUMNS",
    "MAPPING_COLUMNS",
    "OBJECTIVES",
    "candidate_costs",
    "channel_gate_stats",
    "channel_gated_fold_cycles",
    "cycles_per_mac",
    "evaluate",
    "hardware_totals",
    "search_mappings",
]
