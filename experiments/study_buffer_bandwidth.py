"""Study: where weight generation pays off — energy and latency vs weight buffer and DRAM link.

Usage: ``python experiments/study_buffer_bandwidth.py [--set KEY=VALUE ...] [--workers N]``
(under a minute on 2 cores, simulation only). Runs ``experiments/sweeps/buffer_bandwidth.yaml``
and draws ``buffer_bandwidth.png`` / ``.svg`` next to the results table (and a small copy in
``docs/``): MLG / dense ratios of latency and energy over weight-buffer size x DRAM bandwidth
(below 1: MLG better), and the absolute figures against buffer size at a slow and a fast link.
"""

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import TwoSlopeNorm
from matplotlib.ticker import FormatStrFormatter
from studies import command, run, save

BUFFER = "accel.buffers.weight.size_bytes"
BANDWIDTH = "accel.dram.bw_bytes_per_cycle"
METRICS = (("latency_cycles", "latency", 1e-6, "latency (Mcycles)"),
           ("energy_pj", "energy", 1e-6, "energy (µJ)"))
LINE_BANDWIDTHS = (4, 32)


def _size(size_bytes: float) -> str:
    return f"{size_bytes / 1024:.0f}K" if size_bytes < 1024 ** 2 else \
        f"{size_bytes / 1024 ** 2:.0f}M"


def _text_color(rgba) -> str:
    """White on a dark cell, black on a light one (perceived luminance of its colour)."""
    red, green, blue = rgba[:3]
    return "white" if 0.299 * red + 0.587 * green + 0.114 * blue < 0.5 else "black"


def ratios(table, metric: str):
    """MLG / dense ``metric`` on the grid (rows: buffer sizes, columns: bandwidths)."""
    rows = table[table["objective"] == metric]
    pivot = {method: rows[rows["method"] == method].pivot_table(
        index=BUFFER, columns=BANDWIDTH, values=metric) for method in ("MLG", "dense")}
    return pivot["MLG"] / pivot["dense"]


def figure(table):
    fig, axes = plt.subplots(2, 2, figsize=(10, 8))
    for ax, (metric, what, _, _) in zip(axes[0], METRICS):
        ratio = ratios(table, metric)
        values = ratio.to_numpy()
        norm = TwoSlopeNorm(vcenter=1.0, vmin=min(values.min(), 0.99),
                            vmax=max(values.max(), 1.01))
        image = ax.imshow(values, origin="lower", aspect="auto", cmap="RdBu_r", norm=norm)
        ax.contour(values, levels=[1.0], colors="black", linewidths=1.5)
        for (i, j), value in np.ndenumerate(values):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8,
                    color=_text_color(image.cmap(norm(value))))
        ax.set_xticks(range(len(ratio.columns)), [f"{b:g}" for b in ratio.columns])
        ax.set_yticks(range(len(ratio.index)), [_size(s) for s in ratio.index])
        ax.set_xlabel("DRAM bandwidth (bytes/cycle at 700 MHz)")
        ax.set_ylabel("weight buffer (bytes)")
        ax.set_title(f"{what} ratio MLG / dense (blue < 1: MLG better;\nblack line: break-even)",
                     fontsize=9)
        fig.colorbar(image, ax=ax, pad=0.01).set_label(f"{what} ratio", fontsize=8)
    for ax, (metric, what, scale, label) in zip(axes[1], METRICS):
        rows = table[table["objective"] == metric]
        # No static energy in the model: energy is the same at every bandwidth, one line does.
        bandwidths = LINE_BANDWIDTHS if metric == "latency_cycles" else LINE_BANDWIDTHS[:1]
        for bw, color in zip(bandwidths, ("tab:red", "tab:blue")):
            for method, style in (("dense", "--"), ("MLG", "-")):
                line = rows[(rows["method"] == method) & (rows[BANDWIDTH] == bw)]
                line = line.sort_values(BUFFER)
                where = f"{bw} B/cycle DRAM" if len(bandwidths) > 1 else "any DRAM bandwidth"
                ax.plot(line[BUFFER], line[metric] * scale, linestyle=style, marker="o",
                        markersize=3, color=color, label=f"{method}, {where}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        sizes = sorted(rows[BUFFER].unique())
        ax.set_xticks(sizes, [_size(s) for s in sizes], fontsize=7)
        ax.xaxis.set_minor_locator(plt.NullLocator())
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
        ax.tick_params(axis="y", which="minor", labelsize=7)
        ax.set_xlabel("weight buffer (bytes)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7.5)
        ax.set_title(f"{what} vs weight buffer", fontsize=9)
    fig.suptitle("CIFAR ResNet-18 dense (8-bit weights) vs MLG 2-44-3-6-3 (8-bit generated "
                 "weights), batch 1, mlg_gen\n(32x32 WS array, 512 MAC/cycle 16-bit generator); "
                 "each metric on its own optimal mapping", fontsize=10)
    fig.tight_layout()
    return fig


def main() -> None:
    sweep, table = run("buffer_bandwidth.yaml", __doc__.splitlines()[0])
    save(lambda: figure(table), sweep, "study_buffer_bandwidth.png")
    for metric, what, _, _ in METRICS:
        print(f"\n{what} ratio MLG / dense (rows: weight buffer bytes, columns: B/cycle):")
        print(ratios(table, metric).to_string(float_format=lambda v: f"{v:.2f}"))


if __name__ == "__main__":
    command(main)
