"""The mapper's space: tilings of one on-chip buffer level, their tiles, legality and choice.

A layer is a grouped GEMM (reduction Sr = (in_channels/groups)·kh·kw, filters per group,
output pixels) over four tiled loops, nested G (groups, outermost), then an order of K
(filters per group), C (input channels per group) and P (output rows, all
columns of a row, over every image). A tile holds ``tile_groups x tile_filters`` filters of
``tile_channels`` channels (whole kernels) and ``tile_rows`` full output rows of one image; its
input block is the rows and columns those outputs read. With one block per tensor on chip, a
block is fetched whenever the tile before needed a different one; outputs revisited over
channel tiles spill partial sums (``accum_bits``) to DRAM and read them back. Tensors never stay
on chip between layers. Pool / add / concat are mapped as depthwise ops (one group per channel,
no weights).

``Mapping.tiles()`` replays that loop nest tile by tile; ``hwsim.cost`` computes the same sums in
closed form for every candidate at once (numpy arrays with one entry per candidate), and the
tests check one against the other.
"""

import dataclasses
import functools
import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .accel import Accelerator, PEArray
from .layer import Layer
from .workload import LayerArrays, clipped_sum, lines_read

LOOPS = ("K", "C", "P")
LOOP_ORDERS = tuple(itertools.permutations(LOOPS))


# --- one mapping and its tiles ---------------------------------------------------------------
@dataclass(frozen=True)
class Tile:
    """One step of a mapping's loop nest (sizes: this tile's; edge tiles are smaller).

    ``row`` indexes P (images x row tiles): image ``row // row_tiles_per_image``.
    ``*_read_bytes``: DRAM bytes fetched before the tile (0 when the block is on chip already);
    ``output_write_bytes``: DRAM bytes written after it (finished outputs, or spilled partial
    sums); ``stationary_changed``: the array's stationary block differs from the one the
    previous tile left in it, so the fill is paid.
    """

    index: int
    group: int
    filter: int
    channel: int
    row: int
    groups: int
    filters: int
    channels: int
    rows: int
    image: int
    first_row: int
    weight_read_bytes: float
    input_read_bytes: float
    psum_read_bytes: float
    output_write_bytes: float
    stationary_changed: bool


@dataclass(frozen=True)
class Mapping:
    """The chosen tiling of one layer, replayable tile by tile with ``tiles()``.

    Loop nest, outer to inner: groups, then ``loop_order`` over K (filters), C (channels) and
    P (images x row tiles). Two fields describe the hardware the mapping was made for (set by
    ``bind``, as the search and ``hwsim.cost.evaluate`` do): ``array`` (fold counts and the
    stationary operand; None: weight-stationary, one fold per tile assumed) and
    ``factors_held`` (the weight generator's factor buffer holds the layer's compressed factors
    for a whole pass, so each pass reads them once).
    """

    layer: Layer
    tile_groups: int
    tile_filters: int
    tile_channels: int
    tile_rows: int
    loop_order: tuple[str, str, str] = LOOP_ORDERS[0]
    factors_held: bool = False
    array: PEArray | None = None

    def __post_init__(self):
        if tuple(self.loop_order) not in LOOP_ORDERS:
            raise ValueError(f"Mapping {self.layer.name}: loop_order must be an order of "
                             f"K, C, P, got {self.loop_order!r}")
        object.__setattr__(self, "loop_order", tuple(self.loop_order))
        for key, size in zip(("tile_groups", "tile_filters", "tile_channels", "tile_rows"),
                             self.dims, strict=True):
            value = getattr(self, key)
            if not (isinstance(value, (int, np.integer)) and 1 <= value <= size):
                raise ValueError(f"Mapping {self.layer.name}: {key} must be an integer in "
                                 f"[1, {size}], got {value!r}")

    @property
    def dims(self) -> tuple[int, int, int, int]:
        """(groups, filters, channels, output rows) the tiles cut."""
        layer = self.layer
        if not layer.has_weights:
            return layer.out_channels, 1, 1, layer.out_hw[0]
        return (layer.groups, layer.filters_per_group, layer.in_channels // layer.groups,
                layer.out_hw[0])

    @property
    def trips(self) -> dict[str, int]:
        """Iterations of each loop: G, K, C and P (images x row tiles)."""
        g, k, c, h = self.dims
        return {"G": -(-g // self.tile_groups), "K": -(-k // self.tile_filters),
                "C": -(-c // self.tile_channels),
                "P": self.layer.batch * -(-h // self.tile_rows)}

    @property
    def num_tiles(self) -> int:
        return int(np.prod(list(self.trips.values())))

    def bind(self, accel: Accelerator) -> "Mapping":
        """This tiling on ``accel``: its array, and whether its generator holds the factors."""
        held = bool(accel.weight_gen is not None and self.layer.weight_bytes
                    <= accel.weight_gen.factor_buffer_bytes)
        return dataclasses.replace(self, factors_held=held, array=accel.array)

    def tiles(self) -> Iterator[Tile]:
        """The tiles in execution order, with the bytes each moves."""
        t = tile_table(self)
        for i in range(len(t["group"])):
            yield Tile(index=i, **{key: _scalar(value[i]) for key, value in t.items()})


def _scalar(value):
    return value.item() if hasattr(value, "item") else value


def untiled(layer: Layer) -> Mapping:
    """The mapping that keeps the whole layer in one tile per image (SCALE-Sim's view)."""
    g, k, c, h = Mapping(layer, 1, 1, 1, 1).dims
    return Mapping(layer=layer, tile_groups=g, tile_filters=k, tile_channels=c, tile_rows=h)


def _inside_table() -> dict[str, np.ndarray]:
    """Per tensor, indexed [loop order, live loops (bit j: ``LOOPS[j]`` has more than one
    trip)]: whether a live loop the tensor uses sits inside the loop it does not use."""
    table = {}
    for tensor, used in USES.items():
        unused = next(loop for loop in LOOPS if loop not in used)
        table[tensor] = np.array([[any(mask >> LOOPS.index(loop) & 1
                                       and order.index(loop) > order.index(unused)
                                       for loop in used)
                                   for mask in range(1 << len(LOOPS))]
                                  for order in LOOP_ORDERS])
    return table


def block_fetches(order: np.ndarray, trips: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """How often each block of each tensor is brought on chip: the trips of the loop it does
    not use when a loop it uses (with more than one trip) sits inside that loop, else once."""
    live = (trips["K"] > 1) | (trips["C"] > 1) << 1 | (trips["P"] > 1) << 2
    out = {}
    for tensor, used in USES.items():
        unused = next(loop for loop in LOOPS if loop not in used)
        out[tensor] = np.where(_INSIDE[tensor][order, live], trips[unused], 1)
    return out


STATIONARY = {"ws": ("K", "C"), "os": ("K", "P"), "is": ("C", "P")}
STATIONARY_TENSOR = {"ws": "weight", "os": "output", "is": "input"}  # the block each keeps
USES = {"weight": ("K", "C"), "input": ("C", "P"), "output": ("K", "P")}
TENSORS = tuple(USES)
_INSIDE = _inside_table()


def tile_table(m: Mapping) -> dict[str, np.ndarray]:
    """Every tile of ``m`` in execution order as arrays: indices, sizes, DRAM bytes, and
    whether the array's stationary block differs from what the previous tile left in it (the
    block changed, or it spans several folds, which the array cycles through)."""
    q = LayerArrays.from_layers((m.layer,))
    trips = m.trips
    g_dim, k_dim, c_dim, h_dim = m.dims
    row_tiles = -(-h_dim // m.tile_rows)
    shape = [trips[loop] for loop in m.loop_order]
    grid = np.indices(shape).reshape(len(shape), -1)
    index = {loop: grid[j] for j, loop in enumerate(m.loop_order)}
    n = grid.shape[1]
    group = np.repeat(np.arange(trips["G"]), n)
    idx = {"G": group, **{loop: np.tile(index[loop], trips["G"]) for loop in LOOPS}}
    size = {"G": np.minimum(m.tile_groups, g_dim - idx["G"] * m.tile_groups),
            "K": np.minimum(m.tile_filters, k_dim - idx["K"] * m.tile_filters),
            "C": np.minimum(m.tile_channels, c_dim - idx["C"] * m.tile_channels)}
    row_in_image = idx["P"] % row_tiles
    first_row = row_in_image * m.tile_rows
    size["P"] = np.minimum(m.tile_rows, h_dim - first_row)

    def changed(loops: tuple[str, ...]) -> np.ndarray:
        key = np.stack([idx[loop] for loop in ("G", *loops)])
        return np.concatenate([[True], np.any(key[:, 1:] != key[:, :-1], axis=0)])

    def leaving(loops: tuple[str, ...]) -> np.ndarray:
        return np.concatenate([changed(loops)[1:], [True]])

    held = m.factors_held
    w_new, i_new, o_new = (changed(USES[t]) for t in ("weight", "input", "output"))
    final = idx["C"] == trips["C"] - 1
    out = {
        "group": idx["G"], "filter": idx["K"], "channel": idx["C"], "row": idx["P"],
        "groups": size["G"], "filters": size["K"], "channels": size["C"], "rows": size["P"],
        "image": idx["P"] // row_tiles, "first_row": first_row,
        "weight_read_bytes": np.where(w_new, weight_block_bytes(
            q, trips, size["G"], size["K"], size["C"], held), 0.0),
        "input_read_bytes": np.where(i_new, input_block_bytes(
            q, size["G"], size["C"], input_rows_read(q, first_row, size["P"])), 0.0),
        "psum_read_bytes": np.where(o_new & (idx["C"] > 0), output_block_bytes(
            q, size["G"], size["K"], size["P"], q.accum_bits), 0.0),
        "output_write_bytes": np.where(leaving(USES["output"]), output_block_bytes(
            q, size["G"], size["K"], size["P"], np.where(final, q.out_bits, q.accum_bits)), 0.0),
        "stationary_changed": np.zeros(len(group), dtype=bool),
    }
    if m.layer.has_weights:
        flow = m.array.dataflow if m.array is not None else "ws"
        out["stationary_changed"] = changed(STATIONARY[flow])
        if m.array is not None:
            f = fold_factors(q, m.array, size["G"], size["K"], size["C"], size["P"] * q.out_w)
            out["stationary_changed"] |= f["G"] * f["K"] * f["C"] * f["P"] > 1
    return out


# --- how a tile maps onto the array ------------------------------------------------------------
def group_packing(q, array: PEArray) -> np.ndarray:
    """Groups mapped side by side per fold: block-diagonal on WS when a group fits the array.

    Only weight-stationary arrays pack (each packed group owns its rows and columns, zero
    weights elsewhere); OS and IS share one input or weight stream per row and map one group at
    a time.
    """
    if array.dataflow != "ws":
        return np.ones_like(q.groups)
    sr = q.channels * q.kernel
    return np.maximum(1, np.minimum(array.rows // sr, array.cols // q.filters))


def executed_filters(q, filters) -> np.ndarray:
    """Filters a tile executes under channel gating: gated-on work compacted onto whole column
    folds (``filter_density`` of the filters, rounded up: ``mac_density``, except for channel
    gating, whose gates are per output so every filter stays mapped)."""
    return np.ceil(q.filter_density * filters - 1e-9)


def fold_factor(q, array: PEArray, dim: str, size, packing) -> np.ndarray:
    """The factor tiled dimension ``dim`` (G, K, C or P; P's ``size`` in pixels) contributes to
    a tile's fold count: WS maps Sr to rows and filters to columns, OS pixels to rows and
    filters to columns, IS Sr to rows and pixels to columns; only WS packs groups."""
    flow = array.dataflow
    size = np.asarray(size, float)
    if dim == "G":
        return np.ceil(size / packing) if flow == "ws" else size
    if dim == "K" and flow != "is":
        return np.ceil(executed_filters(q, size) / array.cols)
    if dim == "C" and flow != "os":
        return np.ceil(size * q.kernel / array.rows)
    if dim == "P" and flow != "ws":
        return np.ceil(size / (array.rows if flow == "os" else array.cols))
    return np.ones_like(size)


def fold_factors(q, array: PEArray, groups, filters, channels, pixels) -> dict[str, np.ndarray]:
    """Folds of one tile, per tiled dimension (their product is the tile's fold count)."""
    packing = q.per_layer(lambda layers: group_packing(layers, array))
    return {dim: fold_factor(q, array, dim, size, packing)
            for dim, size in zip("GKCP", (groups, filters, channels, pixels), strict=True)}


# --- per-block DRAM bytes (shared by tiles() and the closed forms in hwsim.cost) ------------
def weight_block_bytes(q, trips, groups, filters, channels, held) -> np.ndarray:
    """Stored bytes of one weight block: its share of the dense-split part of the storage,
    plus, unless the generator holds the factors, the factors the block needs (output-indexed
    ones for its filters, input-indexed ones for its channels, the whole shared basis)."""
    share = groups * filters * channels / (q.groups * q.filters * q.channels)
    factors = q.factor_out_bits + q.factor_in_bits + q.factor_shared_bits
    per_block = (q.factor_out_bits * groups * filters / (q.groups * q.filters)
                 + q.factor_in_bits * groups * channels / (q.groups * q.channels)
                 + q.factor_shared_bits)
    bits = (q.weight_bytes * 8 - factors) * share + np.where(held, factors * share, per_block)
    return bits / 8


def weight_pass_bytes(q, trips, held) -> np.ndarray:
    """Sum of ``weight_block_bytes`` over all blocks (one pass over the weights)."""
    factors = q.factor_out_bits + q.factor_in_bits + q.factor_shared_bits
    blocks = trips["G"] * trips["K"] * trips["C"]
    per_pass = (q.factor_out_bits * trips["C"] + q.factor_in_bits * trips["K"]
                + q.factor_shared_bits * blocks)
    return (q.weight_bytes * 8 - factors + np.where(held, factors, per_pass)) / 8


def input_rows_read(q, first_row, rows) -> np.ndarray:
    """Input rows (padding excluded) that output rows ``first_row`` to ``first_row + rows``
    read."""
    return lines_read(first_row, rows, q.stride_h, q.kernel_h, q.pad_h, q.in_h)


def input_block_bytes(q, groups, channels, rows_read) -> np.ndarray:
    """Bytes of an input block: ``rows_read`` input rows (``input_rows_read``) and the columns
    they read, of a block's channels."""
    return groups * channels * q.num_inputs * rows_read * q.input_cols_read * q.act_bits / 8


def input_rows_per_image(q, tile_rows) -> np.ndarray:
    """Input rows read by all row tiles of one image, halos counted once per tile."""
    full = np.floor(q.out_h / tile_rows)
    edge = q.out_h - full * tile_rows
    start = -q.pad_h
    step = tile_rows * q.stride_h
    span = (clipped_sum(start + (tile_rows - 1) * q.stride_h + q.kernel_h, step, full, q.in_h)
            - clipped_sum(start, step, full, q.in_h))
    span = span + lines_read(full * tile_rows, edge, q.stride_h, q.kernel_h, q.pad_h, q.in_h)
    # Disjoint windows (kernel < stride) are read once whatever the tiling.
    return np.where(q.kernel_h >= q.stride_h, span, q.input_rows_read)


def output_block_bytes(q, groups, filters, rows, bits) -> np.ndarray:
    return groups * filters * rows * q.out_w * bits / 8


# --- candidates --------------------------------------------------------------------------------
def tile_sizes(n: int) -> list[int]:
    """Powers of two and n / 2^i rounded up: the plain candidates of a dimension of size n
    (plain Python: the lists are short, and numpy's per-call overhead would dominate)."""
    powers = [1 << i for i in range(n.bit_length())]
    return sorted(set(powers) | {-(-n // p) for p in powers})


def aligned_sizes(n: int, per_fold: float) -> list[int]:
    """Tile sizes that fill whole folds of an array side: the most items that fit in F folds
    of ``per_fold`` items each, for F over ``tile_sizes`` of the folds the whole dimension
    needs (1 item per ``1 / per_fold`` folds when one item overflows a fold)."""
    if per_fold < 1:
        return []
    folds = tile_sizes(math.ceil(n / per_fold))
    return sorted({min(max(math.floor(f * per_fold), 1), n) for f in folds})


@dataclass(frozen=True)
class Candidates:
    """Candidate mappings of several layers, grouped by layer (``layer`` indexes the layers)."""

    layer: np.ndarray
    tile_groups: np.ndarray
    tile_filters: np.ndarray
    tile_channels: np.ndarray
    tile_rows: np.ndarray
    order: np.ndarray

    def take(self, keep) -> "Candidates":
        return Candidates(**{f.name: getattr(self, f.name)[keep]
                             for f in dataclasses.fields(self)})

    def trips(self, q) -> dict[str, np.ndarray]:
        row_tiles = np.ceil(q.out_h / self.tile_rows)
        return {"G": np.ceil(q.groups / self.tile_groups),
                "K": np.ceil(q.filters / self.tile_filters),
                "C": np.ceil(q.channels / self.tile_channels),
                "P": q.batch * row_tiles, "P_image": row_tiles}


_KEY_FIELDS = tuple(f.name for f in dataclasses.fields(Layer)
                    if f.name not in ("name", "inputs"))


def layer_key(layer: Layer) -> tuple:
    """The layer's fields but its name and producers (their count kept): equal keys cost the
    same everywhere."""
    return (*(getattr(layer, name) for name in _KEY_FIELDS), len(layer.inputs))


@functools.lru_cache(maxsize=16)
def unique_layers(layers: tuple[Layer, ...]) -> tuple[tuple[Layer, ...], np.ndarray, LayerArrays]:
    """The distinct layer shapes of a graph, each layer's index into them, and their arrays
    (cached per graph: the accelerator-independent part of the search)."""
    keys, first, inverse = {}, [], []
    for layer in layers:
        key = layer_key(layer)
        if key not in keys:
            keys[key] = len(first)
            first.append(layer)
        inverse.append(keys[key])
    return tuple(first), np.array(inverse), LayerArrays.from_layers(first)


def _distinct_order_table() -> np.ndarray:
    """Per set of live loops (bit j set: loop ``LOOPS[j]`` has more than one trip), the loop
    orders that make different tiles: the first of those that nest the live loops alike (where
    a one-trip loop sits changes nothing). The last row is for layers without weights (one
    order). Rows are padded with -1."""
    table = []
    for mask in range(1 << len(LOOPS)):
        live = [loop for j, loop in enumerate(LOOPS) if mask >> j & 1]
        first = {}
        for i, order in enumerate(LOOP_ORDERS):
            first.setdefault(tuple(loop for loop in order if loop in live), i)
        table.append(sorted(first.values()))
    table.append([0])
    return np.array([row + [-1] * (len(LOOP_ORDERS) - len(row)) for row in table])


DISTINCT_ORDERS = _distinct_order_table()


def smallest_tile(layer: Layer, array: PEArray) -> tuple[int, int, int]:
    """The fewest filters, channels and output rows a tile may hold: it must cover the array
    along the dimensions the dataflow maps spatially, or PEs idle (unless the layer itself is
    narrower). WS maps filters to columns and Sr to rows, OS output pixels to rows and filters
    to columns, IS Sr to rows and output pixels to columns. No bound without weights."""
    if not layer.has_weights:
        return 1, 1, 1
    _, k, c, h = Mapping(layer, 1, 1, 1, 1).dims
    kernel = layer.kernel_size[0] * layer.kernel_size[1]
    out_w = layer.out_hw[1]
    flow = array.dataflow
    pixel_side = array.rows if flow == "os" else array.cols
    return (min(k, array.cols) if flow != "is" else 1,
            -(-min(c * kernel, array.rows) // kernel) if flow != "os" else 1,
            -(-min(h * out_w, pixel_side) // out_w) if flow != "ws" else 1)


def _mixed_radix(sizes: list[list[list[int]]]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Every layer's grid of its per-dimension ``sizes`` at once, in meshgrid "ij" order (the
    last dimension fastest): entry j of a layer is a mixed-radix number whose digits pick the
    sizes. Returns each entry's layer and one column per dimension."""
    counts = np.array([[len(d) for d in dims] for dims in sizes])
    total = counts.prod(axis=1)
    layer = np.repeat(np.arange(len(sizes)), total)
    rest = np.arange(int(total.sum())) - np.repeat(np.cumsum(total) - total, total)
    columns = [None] * counts.shape[1]
    for d in reversed(range(counts.shape[1])):
        rest, digit = np.divmod(rest, counts[layer, d])
        flat = np.array([v for dims in sizes for v in dims[d]], dtype=np.int64)
        start = np.concatenate([[0], np.cumsum(counts[:, d])[:-1]])
        columns[d] = flat[start[layer] + digit]
    return layer, columns


@functools.lru_cache(maxsize=64)
def candidate_space(layers: tuple[Layer, ...], rows: int, cols: int,
                    dataflow: str) -> tuple[Candidates, dict[str, np.ndarray]]:
    """The candidates of the distinct layers of ``layers`` that fill an array of that shape,
    and the on-chip bytes of their tiles (cached per graph and array shape: what is left per
    accelerator is whether the tiles fit its buffers).

    Per dimension: ``tile_sizes`` plus the array-aligned sizes (channel tiles whose kh·kw·C_t
    rows fill whole row folds, filter tiles in whole column folds, on OS / IS row tiles whose
    pixels fill whole folds) and always the whole dimension, none below ``smallest_tile``;
    weight layers try the loop orders that differ in how the loops of more than one trip nest.
    Candidates come grouped by layer, a tiling's orders together.
    """
    first, _, arrays = unique_layers(layers)
    array = PEArray(rows, cols, dataflow)
    pixel_side = {"os": rows, "is": cols}.get(dataflow, 0)
    sizes, dims = [], []  # per layer: the sizes of G, K, C, P; its dimensions and batch
    for layer in first:
        g, k, c, h = Mapping(layer, 1, 1, 1, 1).dims
        kernel = layer.kernel_size[0] * layer.kernel_size[1]
        low_k, low_c, low_h = smallest_tile(layer, array)
        sizes.append((
            tile_sizes(g),
            [s for s in sorted(set(tile_sizes(k))
                               | set(aligned_sizes(k, cols if layer.has_weights else 0)))
             if s >= low_k],
            [s for s in sorted(set(tile_sizes(c)) | set(aligned_sizes(c, rows / kernel)))
             if s >= low_c],
            [s for s in sorted(set(tile_sizes(h))
                               | set(aligned_sizes(h, pixel_side / layer.out_hw[1])))
             if s >= low_h]))
        dims.append((k, c, h, layer.batch, layer.has_weights))
    layer, (tile_g, tile_k, tile_c, tile_h) = _mixed_radix(sizes)
    k, c, h, batch, weights = np.array(dims).T[:, layer]
    live = ((tile_k < k) | (tile_c < c) << 1 | ((batch > 1) | (tile_h < h)) << 2)
    orders = DISTINCT_ORDERS[np.where(weights > 0, live, len(DISTINCT_ORDERS) - 1)]
    per_tiling = (orders >= 0).sum(axis=1)
    tiling = np.repeat(np.arange(len(layer)), per_tiling)
    nth = np.arange(len(tiling)) - np.repeat(np.cumsum(per_tiling) - per_tiling, per_tiling)
    space = Candidates(layer=layer[tiling], tile_groups=tile_g[tiling],
                       tile_filters=tile_k[tiling], tile_channels=tile_c[tiling],
                       tile_rows=tile_h[tiling], order=orders[tiling, nth])
    return space, tile_footprint(arrays.view(space.layer), space)


def fixed_candidates(mappings: list[Mapping]) -> Candidates:
    """One candidate per mapping (candidate i is layer i)."""
    return Candidates(
        layer=np.arange(len(mappings)),
        tile_groups=np.array([m.tile_groups for m in mappings]),
        tile_filters=np.array([m.tile_filters for m in mappings]),
        tile_channels=np.array([m.tile_channels for m in mappings]),
        tile_rows=np.array([m.tile_rows for m in mappings]),
        order=np.array([LOOP_ORDERS.index(m.loop_order) for m in mappings]))


# --- legality -----------------------------------------------------------------------------------
def tile_footprint(q, c: Candidates) -> dict[str, np.ndarray]:
    """Bytes one full tile of each tensor occupies on chip (weights dense, partial sums at
    accum_bits): the input block holds the rows and columns its outputs read."""
    share = c.tile_groups * c.tile_filters * c.tile_channels / (q.groups * q.filters * q.channels)
    rows_read = np.minimum(q.in_h, np.where(
        q.kernel_h >= q.stride_h, (c.tile_rows - 1) * q.stride_h + q.kernel_h,
        c.tile_rows * q.kernel_h))
    out_bits = np.where(q.is_vector > 0, q.out_bits, q.accum_bits)
    return {
        "weight": q.dense_weight_bytes * share,
        "input": c.tile_groups * c.tile_channels * q.num_inputs * rows_read * q.input_cols_read
        * q.act_bits / 8,
        "output": c.tile_groups * c.tile_filters * c.tile_rows * q.out_w * out_bits / 8,
    }


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


__all__ = [
    "DISTINCT_ORDERS",
    "LOOPS",
    "LOOP_ORDERS",
    "STATIONARY",
    "STATIONARY_TENSOR",
    "TENSORS",
    "USES",
    "Candidates",
    "Mapping",
    "Tile",
    "aligned_sizes",
    "block_fetches",
    "candidate_space",
    "executed_filters",
    "fits",
    "fixed_candidates",
    "fold_factor",
    "fold_factors",
    "group_packing",
    "input_block_bytes",
    "input_rows_per_image",
    "input_rows_read",
    "layer_key",
    "misfit_message",
    "output_block_bytes",
    "smallest_tile",
    "tile_footprint",
    "tile_sizes",
    "tile_table",
    "unique_layers",
    "untiled",
    "weight_block_bytes",
    "weight_pass_bytes",
]
