"""Figures of results tables and per-layer costs: trade-off, breakdown and roofline.

Every function returns a matplotlib Figure sized for a paper column pair (7 in wide, fonts of
8-10 pt) and ``save`` writes it as PNG and/or SVG. Axis labels carry units; counts are shown in
scaled units (MB, µJ) so tick labels stay short.
"""

import io
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import FormatStrFormatter

FIGURE_SUFFIXES = (".png", ".svg")
# column -> (label with unit, scale applied to the values)
UNITS = {
    "test_acc": ("test accuracy (%)", 100.0),
    "dram_bytes": ("DRAM traffic (MB)", 1e-6),
    "weight_dram_bytes": ("weight DRAM traffic (MB)", 1e-6),
    "ifmap_dram_bytes": ("input DRAM traffic (MB)", 1e-6),
    "ofmap_dram_bytes": ("output DRAM traffic (MB)", 1e-6),
    "weight_bytes": ("weight storage read by the array (MB)", 1e-6),
    "energy_pj": ("energy (µJ)", 1e-6),
    "mac_energy_pj": ("MAC energy (µJ)", 1e-6),
    "sram_energy_pj": ("SRAM energy (µJ)", 1e-6),
    "dram_energy_pj": ("DRAM energy (µJ)", 1e-6),
    "gen_energy_pj": ("generation energy (µJ)", 1e-6),
    "latency_ms": ("latency (ms)", 1.0),
    "latency_cycles": ("latency (Mcycles)", 1e-6),
    "compute_cycles": ("compute (Mcycles)", 1e-6),
    "macs": ("MACs (M)", 1e-6),
    "executed_macs": ("executed MACs (M)", 1e-6),
    "memory_ratio": ("storage / fp32 dense storage", 1.0),
    "param_ratio": ("stored parameters / dense parameters", 1.0),
    "utilization": ("PE utilization", 1.0),
}
SUFFIX_UNITS = (("_bytes", "bytes"), ("_pj", "pJ"), ("_cycles", "cycles"), ("_ms", "ms"),
                ("_bytes_per_cycle", "B/cycle"), ("_mhz", "MHz"))
HIGHER_IS_BETTER = ("acc", "accuracy", "utilization", "speedup", "throughput")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
ENERGY_PARTS = (("mac_energy_pj", "MAC"), ("sram_energy_pj", "SRAM"),
                ("dram_energy_pj", "DRAM"), ("gen_energy_pj", "weight generation"))
LOG_RANGE = 30.0  # axes whose positive values span more than this factor get a log scale
FADE = 0.7  # dominated points: their colour this far towards white


def axis_label(column: str) -> tuple[str, float]:
    """Label with unit and the factor the values are scaled by, for a result column."""
    if column in UNITS:
        return UNITS[column]
    short = column.rsplit(".", 1)[-1]
    for suffix, unit in sorted(SUFFIX_UNITS, key=lambda s: -len(s[0])):
        if short.endswith(suffix):
            return f"{column[:len(column) - len(suffix)].replace('_', ' ')} ({unit})", 1.0
    return column.replace("_", " "), 1.0


def higher_is_better(column: str) -> bool:
    return any(word in column.rsplit(".", 1)[-1] for word in HIGHER_IS_BETTER)


def pareto_mask(x: np.ndarray, y: np.ndarray, maximize_x: bool = False,
                maximize_y: bool = False) -> np.ndarray:
    """True for points no other point dominates (at least as good on both, better on one)."""
    x = np.asarray(x, float) * (-1 if maximize_x else 1)
    y = np.asarray(y, float) * (-1 if maximize_y else 1)
    # Sorted by x then y (both minimized), a point is on the front when its y beats every y
    # before it; equal points share the verdict.
    order = np.lexsort((y, x))
    ys = y[order]
    best_before = np.concatenate(([np.inf], np.minimum.accumulate(ys)[:-1]))
    front_sorted = ys < best_before
    xs = x[order]
    dup = np.concatenate(([False], (xs[1:] == xs[:-1]) & (ys[1:] == ys[:-1])))
    for i in np.flatnonzero(dup):  # an exact copy of a front point is on the front too
        front_sorted[i] = front_sorted[i - 1]
    mask = np.empty(len(x), bool)
    mask[order] = front_sorted
    return mask


def _faded(color, amount: float = FADE) -> tuple:
    rgb = np.array(matplotlib.colors.to_rgb(color))
    return tuple(rgb + (1 - rgb) * amount)


def _log_scale(values: np.ndarray) -> bool:
    positive = values[np.isfinite(values) & (values > 0)]
    return (len(positive) == len(values[np.isfinite(values)]) and len(positive) > 1
            and positive.max() / positive.min() > LOG_RANGE)


def _numbers(table: pd.DataFrame, column: str, option: str) -> np.ndarray:
    """The column as floats, or a one-line error naming it and some columns that would do."""
    try:
        return table[column].to_numpy(float)
    except (TypeError, ValueError):
        values = table[column]
        bad = values[values.notna() & pd.to_numeric(values, errors="coerce").isna()]
        example = bad.iloc[0] if len(bad) else values.iloc[0]  # a value that is no number
        numeric = [str(c) for c in table.columns if pd.api.types.is_numeric_dtype(table[c])]
        raise ValueError(f"plot tradeoff: {option} {column}: the column must be numeric, it "
                         f"holds e.g. {example!r}; numeric columns: "
                         f"{', '.join(numeric[:8])}{' ...' if len(numeric) > 8 else ''}"
                         ) from None


def tradeoff(table: pd.DataFrame, x: str, y: str, color: str = "method",
             marker: str = "accelerator", title: str | None = None,
             maximize: tuple[str, ...] = (), ax=None):
    """Scatter of two result columns: colour by ``color``, marker by ``marker``, the Pareto
    front drawn as a step line and dominated points faded. Error rows are left out.

    A column is maximized when it is in ``maximize`` or reads as a score (accuracy,
    utilization, speed-up); otherwise minimized. With ``ax`` it draws into that panel of a
    larger figure (and returns that figure).
    """
    for column in (x, y, color, marker):
        if column not in table.columns:
            raise ValueError(f"plot tradeoff: no column {column!r} in the table; columns: "
                             f"{', '.join(map(str, table.columns))}")
    for column in maximize:
        if column not in (x, y):
            raise ValueError(f"--maximize {column}: give the --x or the --y column ({x} or {y})")
    if "status" in table.columns:
        table = table[table["status"] == "ok"]
    table = table.dropna(subset=[x, y])
    if table.empty:
        raise ValueError(f"plot tradeoff: no rows with both {x} and {y}")
    (x_label, x_scale), (y_label, y_scale) = axis_label(x), axis_label(y)
    xs, ys = _numbers(table, x, "--x") * x_scale, _numbers(table, y, "--y") * y_scale
    max_x, max_y = x in maximize or higher_is_better(x), y in maximize or higher_is_better(y)
    front = pareto_mask(xs, ys, max_x, max_y)

    own = ax is None
    fig, ax = plt.subplots(figsize=(7, 4.6)) if own else (ax.figure, ax)
    groups = list(dict.fromkeys(table[color].astype(str)))
    kinds = list(dict.fromkeys(table[marker].astype(str)))
    # tab10 without its grey: grey is the colour of the marker legend's entries.
    palette = [c for i, c in enumerate(plt.get_cmap("tab10").colors) if i != 7]
    colors = {g: palette[i % len(palette)] for i, g in enumerate(groups)}
    markers = {k: MARKERS[i % len(MARKERS)] for i, k in enumerate(kinds)}
    c_values, m_values = table[color].astype(str).to_numpy(), table[marker].astype(str).to_numpy()
    for g in groups:
        for k in kinds:
            sel = (c_values == g) & (m_values == k)
            for on_front, size in ((False, 22), (True, 40)):
                part = sel & (front == on_front)
                if part.any():
                    # Faded = blended towards white, not transparent: stacked copies of a
                    # dominated point must not darken into a front-looking one.
                    color = colors[g] if on_front else _faded(colors[g])
                    ax.scatter(xs[part], ys[part], color=color, marker=markers[k], s=size,
                               edgecolors="black" if on_front else "none", linewidths=0.5,
                               zorder=3 if on_front else 2, label="front" if on_front else None)
    order = np.argsort(xs[front])
    ax.step(xs[front][order], ys[front][order], where="post", color="black", linewidth=1,
            alpha=0.7, zorder=1)
    for values, axis, set_scale in ((xs, ax.xaxis, ax.set_xscale), (ys, ax.yaxis, ax.set_yscale)):
        if _log_scale(values):
            set_scale("log")
            axis.set_major_formatter(FormatStrFormatter("%g"))  # 0.1, 1, 10: not 10^-1
    ax.set_xlabel(x_label + (" (higher is better)" if max_x else ""))
    ax.set_ylabel(y_label + (" (higher is better)" if max_y else ""))
    ax.grid(True, which="major", alpha=0.3)
    handles = [Line2D([], [], linestyle="", marker="o", color=colors[g], label=g)
               for g in groups]
    if len(kinds) > 1 or marker != "accelerator":
        handles += [Line2D([], [], linestyle="", marker=markers[k], color="grey", label=k)
                    for k in kinds]
    handles.append(Line2D([], [], color="black", linewidth=1,
                          label=f"Pareto front ({int(front.sum())} of {len(xs)})"))
    ax.legend(handles=handles, fontsize=8, loc="best", framealpha=0.85)
    ax.set_title(title or f"{y_label} vs {x_label}", fontsize=10)
    if own:
        fig.tight_layout()
    return fig


def breakdown(layers: pd.DataFrame, title: str):
    """Per-layer energy stacked by part (µJ) over latency split into compute and stall."""
    missing = [c for c, _ in ENERGY_PARTS if c not in layers.columns]
    missing += [c for c in ("compute_cycles", "stall_cycles") if c not in layers.columns]
    if missing:
        raise ValueError(f"plot breakdown: the layer table has no {', '.join(missing)} "
                         "(cost it on an accelerator)")
    n = len(layers)
    pos = np.arange(n)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 5.2), sharex=True)
    cmap = plt.get_cmap("tab10")
    stack = np.zeros(n)
    for i, (column, label) in enumerate(ENERGY_PARTS):
        values = layers[column].to_numpy(float) * 1e-6
        if values.any():
            top.bar(pos, values, bottom=stack, color=cmap(i), label=label, width=0.8)
            stack += values
    top.set_ylabel("energy (µJ)")
    top.legend(fontsize=8, ncol=4, loc="upper right")
    compute = layers["compute_cycles"].to_numpy(float) * 1e-3
    stall = layers["stall_cycles"].to_numpy(float) * 1e-3
    bottom.bar(pos, compute, color="tab:green", label="compute", width=0.8)
    bottom.bar(pos, stall, bottom=compute, color="tab:red", label="stall (memory, generation)",
               width=0.8)
    bottom.set_ylabel("latency (kcycles)")
    bottom.legend(fontsize=8, ncol=2, loc="upper right")
    for ax in (top, bottom):
        ax.grid(True, axis="y", alpha=0.3)
        ax.set_ylim(0, ax.get_ylim()[1] * 1.3)  # headroom: the legend sits above the bars
    bottom.set_xticks(pos, layers["name"].astype(str), rotation=90, fontsize=6)
    bottom.set_xlim(-0.6, n - 0.4)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def roofline(layers: pd.DataFrame, num_pes: int, dram_bw_bytes_per_cycle: float, title: str):
    """Layers as (MACs per DRAM byte, MACs per cycle) under the compute and bandwidth roofs.

    The compute roof of a layer is the PEs over its cycles per MAC (precision modes), drawn
    once per distinct value; vector layers (no MACs) are left out.
    """
    needed = ("executed_macs", "dram_bytes", "latency_cycles", "cycles_per_mac")
    missing = [c for c in needed if c not in layers.columns]
    if missing:
        raise ValueError(f"plot roofline: the layer table has no {', '.join(missing)}")
    mac = layers[layers["executed_macs"] > 0]
    intensity = mac["executed_macs"].to_numpy(float) / mac["dram_bytes"].to_numpy(float)
    achieved = mac["executed_macs"].to_numpy(float) / mac["latency_cycles"].to_numpy(float)
    fig, ax = plt.subplots(figsize=(7, 4.6))
    lo = min(intensity.min(), 1.0) / 2
    hi = max(intensity.max() * 2, 2 * num_pes / dram_bw_bytes_per_cycle)
    grid = np.geomspace(lo, hi, 200)
    peaks = sorted({float(num_pes / c) for c in mac["cycles_per_mac"].to_numpy(float) if c > 0})
    top = max(peaks)
    slope = grid <= top / dram_bw_bytes_per_cycle
    ax.plot(grid[slope], dram_bw_bytes_per_cycle * grid[slope], color="tab:blue", linewidth=1.5,
            label=f"bandwidth roof: {dram_bw_bytes_per_cycle:g} B/cycle DRAM")
    for i, peak in enumerate(peaks):
        label = (f"compute roof: {peak:,.0f} MAC/cycle" if len(peaks) == 1 else
                 f"compute roof at {num_pes / peak:g} cycles/MAC: {peak:,.0f} MAC/cycle")
        flat = grid >= peak / dram_bw_bytes_per_cycle
        ax.plot(grid[flat], np.full(flat.sum(), peak), color="black", linewidth=1.5,
                linestyle="-" if i == len(peaks) - 1 else "--", label=label)
    points = ax.scatter(intensity, achieved, c=np.log10(mac["executed_macs"].to_numpy(float)),
                        cmap="viridis", s=30, edgecolors="black", linewidths=0.4, zorder=3)
    cbar = fig.colorbar(points, ax=ax, pad=0.01)
    cbar.set_label("log10 executed MACs of the layer", fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("operational intensity (MACs per DRAM byte)")
    ax.set_ylabel("achieved throughput (MACs per cycle)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def figure_paths(path: str | os.PathLike) -> list[Path]:
    """The files ``save`` writes for ``--out path``; a one-line error, before any figure is
    drawn, when it cannot write them."""
    from models.paths import check_destination

    path = Path(path)
    if path.suffix and path.suffix not in FIGURE_SUFFIXES:
        raise ValueError(f"--out {path}: a figure must end in .png or .svg (or have no "
                         "suffix for both)")
    if path.is_dir():  # not a stem: adir.png beside the folder is not what was meant
        raise ValueError(f"--out {path}: is a folder; give a figure file, e.g. "
                         f"{path / 'figure.png'}")
    targets = [path] if path.suffix else [path.with_suffix(s) for s in FIGURE_SUFFIXES]
    for target in targets:
        check_destination(target, "file")
    return targets


def save(fig, path: str | os.PathLike, dpi: int = 200) -> list[Path]:
    """Write ``fig`` to ``path`` (.png or .svg; no suffix: both), atomically; returns paths."""
    from models.checkpoint import atomic_write_bytes

    targets = figure_paths(path)
    for target in targets:
        buffer = io.BytesIO()
        fig.savefig(buffer, format=target.suffix[1:], dpi=dpi)
        atomic_write_bytes(target, buffer.getvalue())
    plt.close(fig)
    return targets


__all__ = ["axis_label", "breakdown", "figure_paths", "pareto_mask", "roofline", "save",
           "tradeoff"]
