"""Gantt chart of an event-driven simulation: one lane per actor, coloured by layer, stalls in red.

The top panel shows the whole network, the bottom one zooms on a few consecutive layers (by
default the ones where the array waits longest). Lanes, top to bottom: DRAM reads (the DMA),
DRAM writes (write-back), weight generation and the PE array. Red hatching on the array lane
is a stall: the array waits for data. The thin strip under the DRAM reads shows the DMA held
back: grey while every bank of a buffer it needs is in use (back-pressure from a busy array
or write-back), black while a layer's inputs wait for the previous layer's outputs. Intervals
closer than a pixel are merged, so tens of thousands of tiles draw in well under a second.
"""

import numpy as np
import pandas as pd

from .des import Simulation

LANES = (("DRAM read", "dram", ("load",)), ("DRAM write", "dram", ("store",)),
         ("generation", "gen", ("generate",)), ("PE array", "array", ("compute",)))
STALL_COLOUR = "#d62728"
DMA_WAITS = (("wait_space", "0.6"), ("wait_producer", "0.1"))
PIXELS = 2000  # horizontal resolution intervals are merged to


def _merged(rows: pd.DataFrame, gap: float) -> pd.DataFrame:
    """Runs of intervals of one layer separated by at most ``gap`` cycles, as single bars."""
    rows = rows.sort_values("start")
    starts, ends = rows["start"].to_numpy(), rows["end"].to_numpy()
    codes = rows["layer"].cat.codes.to_numpy()
    if len(starts) == 0:
        return pd.DataFrame({"start": [], "end": [], "code": []})
    reach = np.maximum.accumulate(ends)
    breaks = np.r_[True, (codes[1:] != codes[:-1]) | (starts[1:] - reach[:-1] > gap)]
    first = np.flatnonzero(breaks)
    return pd.DataFrame({"start": starts[first], "end": np.maximum.reduceat(ends, first),
                         "code": codes[first]})


def _pick(timeline: pd.DataFrame, resource: str, activities: tuple[str, ...]) -> pd.DataFrame:
    return timeline[(timeline["resource"] == resource) & timeline["activity"].isin(activities)]


def busiest_stall_window(sim: Simulation, width: int = 3) -> tuple[int, int]:
    """First and last index of the ``width`` consecutive layers where the array waits longest."""
    waits = sim.layers["array_wait_data_cycles"].to_numpy()
    width = min(width, len(waits))
    totals = np.convolve(waits, np.ones(width), mode="valid")
    first = int(np.argmax(totals))
    return first, first + width - 1


def _draw(ax, sim: Simulation, t0: float, t1: float, colours: np.ndarray) -> None:
    gap = (t1 - t0) / PIXELS
    window = sim.timeline[(sim.timeline["end"] >= t0) & (sim.timeline["start"] <= t1)]
    ticks = []
    for lane, (label, resource, activities) in enumerate(LANES):
        y = len(LANES) - 1 - lane
        ticks.append((y, label))
        bars = _merged(_pick(window, resource, activities), gap)
        ax.broken_barh(list(zip(bars["start"], bars["end"] - bars["start"])), (y - 0.4, 0.8),
                       facecolors=colours[bars["code"].to_numpy().astype(int)], linewidth=0)
        if resource == "array":
            _labels(ax, sim, t0, t1, y)
        if resource == "array":
            _bars(ax, _pick(window, "array", ("wait_data",)), gap, (y - 0.4, 0.8),
                  facecolors=STALL_COLOUR, alpha=0.6, linewidth=0, hatch="////",
                  edgecolor="white")
        if activities == ("load",):
            for activity, colour in DMA_WAITS:
                _bars(ax, _pick(window, "dram", (activity,)), gap, (y - 0.5, 0.1),
                      facecolors=colour, linewidth=0)
    ax.set_yticks([y for y, _ in ticks], [label for _, label in ticks])
    ax.set_ylim(-0.6, len(LANES) - 0.4)
    ax.set_xlim(t0, t1)
    ax.grid(axis="x", alpha=0.3)


def _bars(ax, rows: pd.DataFrame, gap: float, span: tuple[float, float], **style) -> None:
    bars = _merged(rows, gap)
    ax.broken_barh(list(zip(bars["start"], bars["end"] - bars["start"])), span, **style)


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
    colours = np.array([palette[(2 * i) % 20 if i % 20 < 10 else (2 * i + 1) % 20]
                        for i in range(len(names))], dtype=object)
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
    bottom.set_title(f"zoom: layers {names[first]} .. {names[last]} (dotted lines: the array "
                     "finishes a layer)", loc="left")
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
