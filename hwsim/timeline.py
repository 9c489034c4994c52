"""Gantt chart of an event-driven simulation: one lane per actor, coloured by layer, stalls in red.

The top panel shows the whole network, the bottom one zooms on a few consecutive layers (by
default the ones where the array waits longest). Lanes, top to bottom: DRAM reads (the DMA),
DRAM writes (write-back), weight generation (only on an accelerator with a generator) and the
PE array. Each lane is drawn column by column (``COLUMNS`` across a panel), a bar as high as
the share of the column the unit is busy, so a link busy 10% of the time never reads as a
solid bar at network scale. Red hatching stacked on the array lane is a stall: the array waits
for data. The thin strip under the DRAM reads shows the DMA held back: grey while every bank of
a buffer it needs is in use (back-pressure from a busy array or write-back), black while a
layer's inputs wait for the previous layer's outputs; each wait there is at least a pixel wide.
"""

import numpy as np
import pandas as pd

from .des import Simulation, busy_between, intervals

LANES = (("DRAM read", "dram", ("load",)), ("DRAM write", "dram", ("store",)),
         ("generation", "gen", ("generate",)), ("PE array", "array", ("compute",)))
STALL_COLOUR = "#d62728"
DMA_WAITS = (("wait_space", "0.6"), ("wait_producer", "0.1"))
COLUMNS = 1500  # about a pixel each at the CLI's size and dpi
LEVELS = 40  # bar heights are rounded to 1/LEVELS of a lane's height (about a pixel)
# tab20 without its reds (the stall colour) and greys (the DMA waits): dark shades first.
PALETTE_INDICES = [i for i in range(0, 20, 2) if i not in (6, 14)] + [
    i for i in range(1, 20, 2) if i not in (7, 15)]


def _occupancy(rows: pd.DataFrame, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Busy share of each column between ``edges``, in steps of 1/``LEVELS`` (so bars stacked
    on it start where it ends and equal columns merge), and the layer of the last interval
    that started before the column ends."""
    starts, ends = rows["start"].to_numpy(), rows["end"].to_numpy()
    share = busy_between((starts, ends), edges[:-1], edges[1:]) / np.diff(edges)
    share = np.round(share * LEVELS) / LEVELS
    last = np.maximum(np.searchsorted(starts, edges[1:], side="left") - 1, 0)
    codes = rows["layer"].cat.codes.to_numpy()
    return share, codes[last] if len(codes) else np.zeros(len(share), dtype=int)


def _columns(ax, edges, bottom, height, codes, colours, **style) -> None:
    """Bars of ``height`` on ``bottom`` per column, coloured ``colours[codes]``; runs of equal
    columns are one bar."""
    from matplotlib.collections import PolyCollection

    bottom = np.broadcast_to(bottom, height.shape)
    starts = np.flatnonzero(np.r_[True, (height[1:] != height[:-1])
                                  | (codes[1:] != codes[:-1]) | (bottom[1:] != bottom[:-1])])
    stops = np.r_[starts[1:], len(height)]
    keep = height[starts] > 0
    x0, x1 = edges[starts[keep]], edges[stops[keep]]
    y0 = bottom[starts[keep]]
    y1 = y0 + height[starts[keep]]
    boxes = np.stack([np.c_[x0, y0], np.c_[x0, y1], np.c_[x1, y1], np.c_[x1, y0]], axis=1)
    ax.add_collection(PolyCollection(boxes, facecolors=list(colours[codes[starts[keep]]]),
                                     linewidths=0, **style))


def _strip(ax, rows: pd.DataFrame, pixel: float, y: float, colour: str) -> None:
    """Waits as a thin strip, each drawn at least a pixel wide, runs closer than that merged."""
    starts, ends = rows["start"].to_numpy(), rows["end"].to_numpy()
    if len(starts) == 0:
        return
    reach = np.maximum.accumulate(ends)
    first = np.flatnonzero(np.r_[True, starts[1:] - reach[:-1] > pixel])
    merged_end = np.maximum.reduceat(ends, first)
    widths = np.maximum(merged_end - starts[first], pixel)
    ax.broken_barh(list(zip(starts[first], widths)), (y, 0.1), facecolors=colour, linewidth=0)


def busiest_stall_window(sim: Simulation, width: int = 3) -> tuple[int, int]:
    """First and last index of the ``width`` consecutive layers where the array waits longest."""
    waits = sim.layers["array_wait_data_cycles"].to_numpy()
    width = min(width, len(waits))
    totals = np.convolve(waits, np.ones(width), mode="valid")
    first = int(np.argmax(totals))
    return first, first + width - 1


def _lanes(sim: Simulation) -> tuple:
    has_gen = (sim.timeline["resource"] == "gen").any()
    return tuple(lane for lane in LANES if lane[1] != "gen" or has_gen)


def _draw(ax, sim: Simulation, t0: float, t1: float, colours: np.ndarray) -> None:
    edges = np.linspace(t0, t1, COLUMNS + 1)
    pixel = (t1 - t0) / COLUMNS
    window = sim.timeline[(sim.timeline["end"] >= t0) & (sim.timeline["start"] <= t1)]
    lanes = _lanes(sim)
    for lane, (_, resource, activities) in enumerate(lanes):
        y = len(lanes) - 1 - lane
        share, codes = _occupancy(intervals(window, resource, activities), edges)
        _columns(ax, edges, y - 0.4, 0.8 * share, codes, colours)
        if resource == "array":
            stall, _ = _occupancy(intervals(window, "array", ("wait_data",)), edges)
            _columns(ax, edges, y - 0.4 + 0.8 * share, 0.8 * stall, np.zeros(COLUMNS, int),
                     np.array([STALL_COLOUR]), alpha=0.6, hatch="////", edgecolor="white")
            _labels(ax, sim, t0, t1, y)
        if activities == ("load",):
            for activity, colour in DMA_WAITS:
                _strip(ax, intervals(window, "dram", (activity,)), pixel, y - 0.5, colour)
    ax.set_yticks(range(len(lanes) - 1, -1, -1), [label for label, _, _ in lanes])
    ax.set_ylim(-0.6, len(lanes) - 0.4)
    ax.set_xlim(t0, t1)
    ax.grid(axis="x", alpha=0.3)


def _labels(ax, sim: Simulation, t0: float, t1: float, y: float) -> None:
    """Layer names inside the array lane, where the layer is wide enough for its name."""
    starts, ends = _layer_bounds(sim)
    chars_per_cycle = 220 / (t1 - t0)  # about 220 characters across the panel at 8 pt
    for name, a, b in zip(sim.layers.index, np.maximum(starts, t0), np.minimum(ends, t1)):
        if (b - a) * chars_per_cycle > len(name) + 2:
            ax.text((a + b) / 2, y, name, ha="center", va="center", fontsize=7, clip_on=True)


def _layer_bounds(sim: Simulation) -> tuple[np.ndarray, np.ndarray]:
    ends = np.cumsum(sim.layers["latency_cycles_des"].to_numpy())
    return np.r_[0.0, ends[:-1]], ends


def timeline_figure(sim: Simulation, zoom: tuple[int, int] | None = None, title: str = ""):
    """The two-panel figure (matplotlib ``Figure``) of ``sim``; ``zoom`` = (first, last) layer
    index of the bottom panel, by default ``busiest_stall_window``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    from matplotlib.ticker import EngFormatter

    names = list(sim.layers.index)
    palette = plt.get_cmap("tab20").colors
    colours = np.empty(len(names), dtype=object)
    colours[:] = [palette[PALETTE_INDICES[i % len(PALETTE_INDICES)]] for i in range(len(names))]
    first, last = zoom if zoom is not None else busiest_stall_window(sim)
    if not 0 <= first <= last < len(names):
        raise ValueError(f"zoom: layers {first}..{last} outside 0..{len(names) - 1}")
    starts, ends = _layer_bounds(sim)

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(14, 7.5), constrained_layout=True)
    _draw(top, sim, 0.0, sim.latency_cycles, colours)
    top.axvspan(starts[first], ends[last], color="0.5", alpha=0.15, linewidth=0)
    top.set_title(title or "whole network", loc="left")
    _draw(bottom, sim, starts[first], ends[last], colours)
    for t in ends[first:last]:
        bottom.axvline(t, color="0.3", linewidth=0.8, linestyle=":")
    bottom.set_title(f"zoom: {names[first]} .. {names[last]} (dotted lines: the array finishes "
                     "a layer; bar height: the share of each pixel column a unit is busy)",
                     loc="left")
    for ax in (top, bottom):
        ax.xaxis.set_major_formatter(EngFormatter(unit=""))
        ax.set_xlabel("cycles")
    handles = [Patch(facecolor=colours[i], label=names[i]) for i in range(first, last + 1)]
    handles += [Patch(facecolor=STALL_COLOUR, alpha=0.6, hatch="////", edgecolor="white",
                      label="stall: the array waits for data"),
                Patch(facecolor="0.6", label="DMA waits for a free buffer bank"),
                Patch(facecolor="0.1", label="DMA waits for the previous layer's outputs")]
    bottom.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.18),
                  ncol=min(len(handles), 4), frameon=False, fontsize=8)
    return fig


__all__ = ["LANES", "busiest_stall_window", "timeline_figure"]
