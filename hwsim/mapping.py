"""Mapper space: tile sizes and loop orders of one on-chip buffer level, and the traffic they cause.

A layer is a grouped GEMM (DESIGN.md 6) over four tiled loops, nested G (groups, outermost),
then an order of K (filters per group), C (input channels per group) and P (output rows, all
columns of a row, over every image). A tile holds ``tile_groups x tile_filters`` filters of
``tile_channels`` channels (whole kernels) and ``tile_rows`` full output rows; the input tile is
the rows those outputs need, halo included. With one tile per tensor on chip, a tensor is
re-fetched once per iteration of a loop it does not depend on whenever some loop it does depend
on (with more than one iteration) sits inside it; outputs that are revisited over channel tiles
spill partial sums (``accum_bits``) to DRAM and read them back. Tensors never stay on chip
between layers. Pool / add / concat are mapped as depthwise ops (one group per channel, no
weights). Everything here is vectorized over candidates: arrays hold one entry per candidate.
"""

import itertools
from dataclasses import dataclass

import numpy as np

from .accel import Accelerator
from .layer import Layer

LOOPS = ("K", "C", "P")
LOOP_ORDERS = tuple(itertools.permutations(LOOPS))
_POS = np.array([[order.index(loop) for loop in LOOPS] for order in LOOP_ORDERS])


@dataclass(frozen=True)
class Mapping:
    """The chosen tiling of one layer, replayable tile by tile.

    Loop nest, outer to inner: ``group_tiles`` over groups, then ``loop_order`` over K
    (``filter_tiles``), C (``channel_tiles``) and P (``row_tiles``: images x row tiles). Edge
    tiles are smaller. ``weight_fetches`` / ``input_fetches``: times each tensor crosses DRAM
    (1 = compulsory only); ``output_visits``: times each output tile is accumulated (> 1 means
    partial sums spill to DRAM and come back).
    """

    layer: str
    tile_groups: int
    tile_filters: int
    tile_channels: int
    tile_rows: int
    loop_order: tuple[str, str, str]
    group_tiles: int
    filter_tiles: int
    channel_tiles: int
    row_tiles: int
    weight_fetches: int
    input_fetches: int
    output_visits: int

    @property
    def num_tiles(self) -> int:
        return self.group_tiles * self.filter_tiles * self.channel_tiles * self.row_tiles


def untiled(layer: Layer) -> Mapping:
    """The mapping that keeps the whole layer in one tile (SCALE-Sim's view of a layer)."""
    vector = not layer.has_weights
    groups = layer.out_channels if vector else layer.groups
    filters = 1 if vector else layer.filters_per_group
    channels = 1 if vector else layer.in_channels // layer.groups
    return Mapping(layer=layer.name, tile_groups=groups, tile_filters=filters,
                   tile_channels=channels, tile_rows=layer.out_hw[0], loop_order=LOOP_ORDERS[0],
                   group_tiles=1, filter_tiles=1, channel_tiles=1, row_tiles=layer.batch,
                   weight_fetches=1, input_fetches=1, output_visits=1)


def layer_params(layers: tuple[Layer, ...]) -> dict[str, np.ndarray]:
    """Per-layer numbers the model needs, as arrays with one entry per layer."""
    rows = []
    for layer in layers:
        vector = not layer.has_weights
        if vector and layer.in_channels != layer.out_channels:
            raise ValueError(f"Layer {layer.name}: {layer.op} must keep the channel count")
        rows.append((
            layer.out_channels if vector else layer.groups,
            1 if vector else layer.filters_per_group,
            1 if vector else layer.in_channels // layer.groups,
            layer.kernel_size[0] * layer.kernel_size[1], layer.kernel_size[0], layer.stride[0],
            layer.padding[0], layer.in_hw[0], layer.in_hw[1], layer.out_hw[0], layer.out_hw[1],
            layer.batch, layer.weight_bits, layer.act_bits, layer.out_bits, layer.accum_bits,
            layer.num_inputs, layer.in_channels, layer.out_channels, vector,
            layer.weight_bytes, layer.dense_weight_bytes, layer.input_bytes, layer.output_bytes,
            layer.output_elements, layer.macs, layer.vector_ops, layer.mac_density,
            layer.gen_macs, layer.gen_bits, layer.pred_bits, layer.lsb_density,
            layer.factor_out_bits, layer.factor_in_bits, layer.factor_shared_bits,
            layer.gen_in_macs))
    names = ("groups", "filters", "channels", "kernel", "kh", "sh", "ph", "ih", "iw", "oh",
             "ow", "batch", "weight_bits", "act_bits", "out_bits", "accum_bits", "num_inputs",
             "in_channels", "out_channels", "vector", "weight_bytes", "dense_weight_bytes",
             "input_bytes", "output_bytes", "output_elements", "macs", "vector_ops",
             "mac_density", "gen_macs", "gen_bits", "pred_bits", "lsb_density",
             "factor_out_bits", "factor_in_bits", "factor_shared_bits", "gen_in_macs")
    table = np.array(rows, dtype=float).reshape(len(rows), len(names))
    return {name: table[:, i] for i, name in enumerate(names)}


def tile_sizes(n: int) -> np.ndarray:
    """Candidate tile sizes of a dimension of size ``n``: powers of two and n / 2^i, rounded up."""
    powers = 2 ** np.arange(int(np.log2(n)) + 1)
    return np.unique(np.concatenate([powers, -(-n // powers)]))


def _grid(values: list[np.ndarray]) -> list[np.ndarray]:
    return [g.ravel() for g in np.meshgrid(*values, indexing="ij")]


def search_space(params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """All candidates of all layers, grouped by layer: ``layer``, tile sizes and ``order``."""
    parts = []
    for i in range(len(params["groups"])):
        dims = [tile_sizes(int(params[k][i])) for k in ("groups", "filters", "channels", "oh")]
        orders = np.arange(1 if params["vector"][i] else len(LOOP_ORDERS))
        parts.append(np.stack(_grid(dims + [orders]) + [np.full(
            len(dims[0]) * len(dims[1]) * len(dims[2]) * len(dims[3]) * len(orders), i)]))
    stacked = np.concatenate(parts, axis=1)
    keys = ("tile_groups", "tile_filters", "tile_channels", "tile_rows", "order", "layer")
    return {key: stacked[j] for j, key in enumerate(keys)}


def fixed_space(layers: tuple[Layer, ...], mappings: dict[str, Mapping]) -> dict[str, np.ndarray]:
    """One candidate per layer, taken from ``mappings`` (by layer name)."""
    missing = [layer.name for layer in layers if layer.name not in mappings]
    if missing:
        raise ValueError(f"mappings: no mapping for layer {missing[0]}")
    chosen = [mappings[layer.name] for layer in layers]
    return {
        "tile_groups": np.array([m.tile_groups for m in chosen]),
        "tile_filters": np.array([m.tile_filters for m in chosen]),
        "tile_channels": np.array([m.tile_channels for m in chosen]),
        "tile_rows": np.array([m.tile_rows for m in chosen]),
        "order": np.array([LOOP_ORDERS.index(tuple(m.loop_order)) for m in chosen]),
        "layer": np.arange(len(chosen)),
    }


def gather(params: dict[str, np.ndarray], space: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Layer numbers repeated for each candidate, merged with the candidate's own numbers."""
    index = space["layer"]
    out = {key: value[index] for key, value in params.items()}
    out.update({key: space[key].astype(float) for key in space})
    for tile, dim in (("tile_groups", "groups"), ("tile_filters", "filters"),
                      ("tile_channels", "channels"), ("tile_rows", "oh")):
        out[tile] = np.minimum(out[tile], out[dim])
    return out


def tile_sum(n: np.ndarray, t: np.ndarray, f) -> np.ndarray:
    """Sum of ``f(size)`` over the tiles of a dimension of size ``n`` cut into tiles of ``t``."""
    edge = n % t
    return n // t * f(t) + np.where(edge > 0, f(edge), 0)


def input_rows(q: dict[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
    """Input rows (halo included, padding counted) that ``rows`` output rows read."""
    return np.where(rows > 0, (rows - 1) * q["sh"] + q["kh"], 0)


def tile_bytes(q: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Bytes one tile of each tensor occupies on chip (weights dense, partial sums at accum)."""
    frac_w = q["tile_groups"] * q["tile_filters"] * q["tile_channels"] / (
        q["groups"] * q["filters"] * q["channels"])
    out_bits = np.where(q["vector"] > 0, q["out_bits"], q["accum_bits"])
    return {
        "weight": q["dense_weight_bytes"] * frac_w,
        "input": q["tile_groups"] * q["tile_channels"] * q["num_inputs"]
        * input_rows(q, q["tile_rows"]) * q["iw"] * q["act_bits"] / 8,
        "output": q["tile_groups"] * q["tile_filters"] * q["tile_rows"] * q["ow"] * out_bits / 8,
    }


def fills_array(q: dict[str, np.ndarray], accel: Accelerator) -> np.ndarray:
    """Whether each tile covers the array along the dimensions the dataflow maps spatially.

    WS maps filters to columns and Sr to rows, OS output pixels to rows and filters to columns,
    IS Sr to rows and output pixels to columns; a tile narrower than the array there (when the
    layer is not) would idle PEs, so it is not a legal candidate.
    """
    rows, cols = accel.array.rows, accel.array.cols
    sr_ok = q["tile_channels"] * q["kernel"] >= np.minimum(q["channels"] * q["kernel"], rows)
    flow = accel.array.dataflow
    pixel_ok = q["tile_rows"] * q["ow"] >= np.minimum(q["oh"] * q["ow"],
                                                      rows if flow == "os" else cols)
    filters_ok = q["tile_filters"] >= np.minimum(q["filters"], cols)
    legal = {"ws": sr_ok & filters_ok, "os": pixel_ok & filters_ok, "is": sr_ok & pixel_ok}[flow]
    return legal | (q["vector"] > 0)


def fits(tiles: dict[str, np.ndarray], accel: Accelerator) -> np.ndarray:
    """Whether each candidate's tiles fit their buffers (half of each when double-buffered)."""
    if accel.shared_buffer:
        return tiles["weight"] + tiles["input"] + tiles["output"] <= accel.buffers[0].usable_bytes
    return np.logical_and.reduce([tiles[t] <= accel.buffer(t).usable_bytes for t in tiles])


def misfit_message(layer: Layer, tiles: dict[str, float], accel: Accelerator,
                   what: str) -> str:
    """One line naming the layer and the buffer that ``what`` (a tile) overflows."""
    if accel.shared_buffer:
        need, buffer = sum(tiles.values()), accel.buffers[0]
    else:
        name = max(tiles, key=lambda t: tiles[t] / accel.buffer(t).usable_bytes)
        need, buffer = tiles[name], accel.buffer(name)
    halved = ", half of it per tile as it is double-buffered" if buffer.double_buffered else ""
    return (f"Layer {layer.name}: {what} needs {need:.0f} B of the {buffer.name} buffer, which "
            f"has {buffer.size_bytes} B{halved}")


def trips(q: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Iterations of each tiled loop; ``P`` counts images x row tiles."""
    row_tiles = np.ceil(q["oh"] / q["tile_rows"])
    return {"G": np.ceil(q["groups"] / q["tile_groups"]),
            "K": np.ceil(q["filters"] / q["tile_filters"]),
            "C": np.ceil(q["channels"] / q["tile_channels"]),
            "P": q["batch"] * row_tiles, "P_image": row_tiles}


def refetches(q: dict[str, np.ndarray], n: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Times each tensor crosses DRAM (outputs: accumulation visits) under the loop order."""
    pos = {loop: _POS[q["order"].astype(int), j] for j, loop in enumerate(LOOPS)}

    def factor(unused: str, used: tuple[str, str]) -> np.ndarray:
        inside = np.zeros(len(q["order"]), dtype=bool)
        for loop in used:
            inside |= (pos[loop] > pos[unused]) & (n[loop] > 1)
        return np.where(inside, n[unused], 1.0)

    return {"weight": factor("P", ("K", "C")), "input": factor("K", ("C", "P")),
            "output": factor("C", ("K", "P"))}


def weight_pass_bytes(q: dict[str, np.ndarray], n: dict[str, np.ndarray],
                      factor_buffer_bytes: int) -> np.ndarray:
    """DRAM bytes of one pass over a layer's weights.

    Dense weights split over the tiles: their stored size. Generated weights whose factors do
    not fit the generator's factor buffer: every tile fetches the factors it needs, so the
    output-indexed ones are read once per channel tile, the input-indexed ones once per filter
    tile and the shared basis once per tile.
    """
    extra_bits = (q["factor_out_bits"] * (n["C"] - 1) + q["factor_in_bits"] * (n["K"] - 1)
                  + q["factor_shared_bits"] * (n["G"] * n["K"] * n["C"] - 1))
    on_chip = q["weight_bytes"] <= factor_buffer_bytes
    return q["weight_bytes"] + np.where(on_chip, 0.0, extra_bits / 8)


def dram_traffic(q: dict[str, np.ndarray], n: dict[str, np.ndarray],
                 fetch: dict[str, np.ndarray], transaction_bytes: int,
                 factor_buffer_bytes: int = 0) -> dict[str, np.ndarray]:
    """DRAM bytes and transactions per tensor, and first / last tile bytes (for latency).

    Input rows of one pass: halos of neighbouring row tiles are fetched twice, padding rows
    never, and never fewer than the whole input (compulsory). Transactions: NCHW layout, so a
    channel's rows of one tile are one contiguous chunk; weights of a tile are one chunk.
    Weights: ``weight_pass_bytes`` per pass, times the passes the loop order makes.
    """
    oh, th = q["oh"], q["tile_rows"]
    rows = (oh // th * input_rows(q, th) + input_rows(q, oh % th) - q["ph"]
            - np.maximum(0, input_rows(q, oh) - q["ph"] - q["ih"]))
    rows = np.maximum(rows, q["ih"])
    act_bytes = q["act_bits"] / 8
    pass_bytes = q["batch"] * q["num_inputs"] * q["in_channels"] * rows * q["iw"] * act_bytes
    psum_bytes = q["output_elements"] * q["accum_bits"] / 8
    w_tiles = n["G"] * n["K"] * n["C"]
    w_pass_bytes = weight_pass_bytes(q, n, factor_buffer_bytes)
    w_tile_bytes = w_pass_bytes / w_tiles
    txn = float(transaction_bytes)
    planes = q["batch"] * q["out_channels"] * n["P_image"]
    pixels = oh * q["ow"] / n["P_image"]
    spill = 2 * (fetch["output"] - 1)
    return {
        "weight_dram_bytes": w_pass_bytes * fetch["weight"],
        "ifmap_dram_bytes": pass_bytes * fetch["input"],
        "ofmap_dram_bytes": q["output_bytes"] + spill * psum_bytes,
        "weight_transactions": w_tiles * fetch["weight"] * np.ceil(w_tile_bytes / txn),
        "ifmap_transactions": fetch["input"] * q["batch"] * q["num_inputs"] * q["in_channels"]
        * n["P_image"] * np.ceil(rows * q["iw"] * act_bytes / n["P_image"] / txn),
        "ofmap_transactions": planes * (np.ceil(pixels * q["out_bits"] / 8 / txn)
                                        + spill * np.ceil(pixels * q["accum_bits"] / 8 / txn)),
        "first_load_bytes": w_tile_bytes + pass_bytes / (n["G"] * n["C"] * n["P"]),
        "last_store_bytes": q["output_bytes"] / (n["G"] * n["K"] * n["P"]),
        "weight_transfers": w_tiles * fetch["weight"],
    }


def group_packing(q: dict[str, np.ndarray], accel: Accelerator) -> np.ndarray:
    """Groups mapped side by side per fold: block-diagonal on WS when a group fits the array.

    Only weight-stationary arrays pack (each packed group owns its rows and columns, zero
    weights elsewhere); OS and IS share one input or weight stream per row and map one group at
    a time.
    """
    if accel.array.dataflow != "ws":
        return np.ones_like(q["groups"])
    sr = q["channels"] * q["kernel"]
    return np.maximum(1, np.minimum(accel.array.rows // sr, accel.array.cols // q["filters"]))


def folds(q: dict[str, np.ndarray], n: dict[str, np.ndarray], accel: Accelerator,
          density: np.ndarray) -> dict[str, np.ndarray]:
    """Fold counts summed over tiles: the separable factors of the systolic fold model.

    ``density`` scales the filters each tile executes (channel gating: gated-on work is
    compacted onto whole column folds). Keys: ``rows_Sr`` = sum over C tiles of ceil(Sr_t/R);
    ``cols_Sc`` = sum over K tiles of ceil(Sc_t/C); ``stream_Sc`` = sum of Sc_t; ``rows_T`` /
    ``cols_T`` = sum over P tiles of ceil(T_t/R) / ceil(T_t/C); ``groups`` = group folds.
    """
    rows, cols = accel.array.rows, accel.array.cols

    def executed(t):
        return np.ceil(density * t - 1e-9)

    def pixels(div):
        return q["batch"] * tile_sum(q["oh"], q["tile_rows"], lambda t: np.ceil(t * q["ow"] / div))

    pack = group_packing(q, accel)
    return {
        "rows_Sr": tile_sum(q["channels"], q["tile_channels"],
                            lambda t: np.ceil(t * q["kernel"] / rows)),
        "cols_Sc": tile_sum(q["filters"], q["tile_filters"], lambda t: np.ceil(executed(t) / cols)),
        "stream_Sc": tile_sum(q["filters"], q["tile_filters"], executed),
        "rows_T": pixels(rows), "cols_T": pixels(cols),
        "groups": tile_sum(q["groups"], q["tile_groups"], lambda t: np.ceil(t / pack)),
        "packing": pack,
    }


def array_accesses(q: dict[str, np.ndarray], n: dict[str, np.ndarray],
                   f: dict[str, np.ndarray], dataflow: str) -> dict[str, np.ndarray]:
    """Operand elements the array reads from SRAM and partial sums it writes / reads back.

    Per tile (as SCALE-Sim counts): the stationary operand is read once, the streamed ones once
    per fold of the other spatial dimension; every row fold (WS, IS) or channel tile (OS) is one
    accumulation pass over the outputs, all but the first read the previous partial sum.
    Vector ops read their window elements and write each output once.
    """
    sr = q["channels"] * q["kernel"]
    t = q["batch"] * q["oh"] * q["ow"]
    g = q["groups"]
    outs = t * q["filters"] * g
    if dataflow == "ws":
        w_rd, i_rd, passes = sr * q["filters"] * g * n["P"], t * sr * g * f["cols_Sc"], f["rows_Sr"]
    elif dataflow == "os":
        w_rd, i_rd, passes = sr * q["filters"] * g * f["rows_T"], t * sr * g * f["cols_Sc"], n["C"]
    else:
        w_rd, i_rd, passes = sr * q["filters"] * g * f["cols_T"], t * sr * g * n["K"], f["rows_Sr"]
    vector = q["vector"] > 0
    return {
        "weight_reads": np.where(vector, 0, w_rd),
        "input_reads": np.where(vector, q["vector_ops"], i_rd),
        "psum_writes": np.where(vector, q["output_elements"], outs * passes),
        "psum_reads": np.where(vector, 0, outs * (passes - 1)),
    }


def choose(layer: np.ndarray, keys: list[np.ndarray]) -> np.ndarray:
    """Index of the best candidate of each layer: lexicographic over ``keys``, then first.

    Candidates must be grouped by layer (as ``search_space`` makes them); ties on every key go
    to the earliest candidate, so the choice is deterministic.
    """
    starts = np.flatnonzero(np.r_[True, layer[1:] != layer[:-1]])
    alive = np.ones(len(layer), dtype=bool)
    for key in keys:
        masked = np.where(alive, key, np.inf)
        best = np.minimum.reduceat(masked, starts)
        alive &= masked == best[np.repeat(np.arange(len(starts)), np.diff(np.r_[starts,
                                                                              len(layer)]))]
    index = np.arange(len(layer))
    return np.minimum.reduceat(np.where(alive, index, len(layer)), starts)


def to_mappings(layers: tuple[Layer, ...], q: dict[str, np.ndarray], n: dict[str, np.ndarray],
                fetch: dict[str, np.ndarray]) -> dict[str, Mapping]:
    """Mapping objects of the selected candidates (one per layer, in layer order)."""
    out = {}
    for i, layer in enumerate(layers):
        out[layer.name] = Mapping(
            layer=layer.name, tile_groups=int(q["tile_groups"][i]),
            tile_filters=int(q["tile_filters"][i]), tile_channels=int(q["tile_channels"][i]),
            tile_rows=int(q["tile_rows"][i]), loop_order=LOOP_ORDERS[int(q["order"][i])],
            group_tiles=int(n["G"][i]), filter_tiles=int(n["K"][i]),
            channel_tiles=int(n["C"][i]), row_tiles=int(n["P"][i]),
            weight_fetches=int(fetch["weight"][i]), input_fetches=int(fetch["input"][i]),
            output_visits=int(fetch["output"][i]))
    return out


__all__ = [
    "LOOPS",
    "LOOP_ORDERS",
    "Mapping",
    "array_accesses",
    "choose",
    "dram_traffic",
    "fills_array",
    "fits",
    "fixed_space",
    "folds",
    "gather",
    "group_packing",
    "layer_params",
    "misfit_message",
    "refetches",
    "search_space",
    "tile_bytes",
    "tile_sizes",
    "tile_sum",
    "to_mappings",
    "trips",
    "untiled",
    "weight_pass_bytes",
]
