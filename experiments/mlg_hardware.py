"""MLG's hardware trade-off: fewer DRAM bytes against on-chip generation, where it pays.

Usage: ``python experiments/mlg_hardware.py [--out experiments/results]`` (about 20 s on one
core). Compares ``mlg_resnet18`` (paper setting 2-44-3-6-3, generated weights requantized to 8
bits, the model default) with the dense ``resnet18`` at 8-bit weights, CIFAR input, batch 1 and
16, on the 32x32 weight-stationary array at 700 MHz (``mlg_gen`` / ``systolic_32``) with:

- ``mlg_gen``: the preset as shipped: 16 KB weight buffer, a slow 4 B/cycle DRAM link and a
  generator that keeps up with the array (512 MACs/cycle, 16-bit operands: one pass per
  generation MAC);
- ``weak_gen``: mlg_gen with 32 B/cycle DRAM and a 256 MACs/cycle 8-bit generator (the 10-bit
  W1 operands of 2-44-3-6-3 take 2 x 2 passes, so 64 generation MACs per cycle);
- ``big_fast``: systolic_32 with an 8 MB weight buffer (the largest layer fits twice), a fast
  64 B/cycle DRAM link and no generator (generation takes the array).

Each model gets its own best mapping per metric: latency figures come from the mapper's
latency-optimal mapping, energy figures from its energy-optimal one (``hwsim.cost.evaluate``
objectives); the other columns are read from the same mapping as the ratio beside them. A
sweep over DRAM bandwidth (2..256 B/cycle) with a 16 KB and an 8 MB weight buffer then shows
where MLG's latency advantage ends. Energy has no static term in the cost model, so bandwidth
moves latency only. Writes ``mlg_hardware_summary.csv``, ``mlg_hardware_sweep.csv`` and
``mlg_hardware.png`` into ``--out``.
"""

import argparse
import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from hwsim.accel import load_accelerator
from hwsim.cost import evaluate, hardware_totals
from hwsim.trace import trace
from models import create_model

INPUT_SHAPE = (3, 32, 32)
BATCHES = (1, 16)
MODELS = ("mlg_resnet18", "resnet18")
MLG_GEN = {"macs_per_cycle": 512, "bits": 16}  # the mlg_gen preset's unit
WEAK_GEN = {"macs_per_cycle": 256, "bits": 8}
SMALL_WEIGHT_BUFFER_BYTES = 16 * 1024
LARGE_WEIGHT_BUFFER_BYTES = 8 * 1024 * 1024
# name: (preset, overrides, one-line description)
ACCELERATORS = {
    "mlg_gen": ("mlg_gen", None,
                "16 KB weight buffer, 4 B/cycle DRAM, generator 512 MAC/cycle x 16 bit"),
    "weak_gen": ("mlg_gen", {"dram": {"bw_bytes_per_cycle": 32}, "weight_gen": WEAK_GEN},
                 "16 KB weight buffer, 32 B/cycle DRAM, generator 256 MAC/cycle x 8 bit"),
    "big_fast": ("systolic_32", {"buffers": {"weight": {"size_bytes": LARGE_WEIGHT_BUFFER_BYTES}},
                                 "dram": {"bw_bytes_per_cycle": 64}},
                 "8 MB weight buffer, 64 B/cycle DRAM, generation on the array"),
}
METRIC_OBJECTIVE = {"latency": "latency_cycles", "energy": "energy_pj"}
SWEEP_BW_BYTES_PER_CYCLE = (2, 4, 8, 16, 32, 64, 128, 256)
# sweep panels: how weights are generated (weight_gen override; None: on the array)
GENERATORS = {"unit 512 MAC/cycle x 16 bit (mlg_gen)": MLG_GEN,
              "unit 256 MAC/cycle x 8 bit": WEAK_GEN,
              "on the 32x32 array (no unit)": None}


def graphs() -> dict[tuple[str, int], object]:
    """Traced LayerGraphs of both models at every batch."""
    torch.manual_seed(0)
    built = {name: create_model(name) for name in MODELS}
    return {(name, batch): trace(model, INPUT_SHAPE, batch=batch, name=name)
            for name, model in built.items() for batch in BATCHES}


def sweep_accelerator(weight_buffer_bytes: int, bw_bytes_per_cycle: float, generator):
    """mlg_gen with the given weight buffer, DRAM bandwidth and generator (None: the array)."""
    overrides = {"buffers": {"weight": {"size_bytes": weight_buffer_bytes}},
                 "dram": {"bw_bytes_per_cycle": bw_bytes_per_cycle}}
    if generator is not None:
        return load_accelerator("mlg_gen", {**overrides, "weight_gen": generator})
    return load_accelerator("systolic_32", overrides)


def totals(graph, accel, objective: str) -> dict:
    df = evaluate(graph, accel, objective)
    out = hardware_totals(df, graph, accel)
    out["gen_cycles"] = float(df["gen_cycles"].sum())
    return out


def summary(g: dict) -> pd.DataFrame:
    """One row per accelerator, batch and compared metric, with MLG / dense ratios."""
    rows = []
    for label, (preset, overrides, text) in ACCELERATORS.items():
        accel = load_accelerator(preset, overrides)
        for batch in BATCHES:
            for metric, objective in METRIC_OBJECTIVE.items():
                mlg = totals(g["mlg_resnet18", batch], accel, objective)
                dense = totals(g["resnet18", batch], accel, objective)
                row = {"accelerator": label, "description": text, "batch": batch,
                       "mapped_for": metric}
                for key in ("weight_dram_bytes", "dram_bytes", "gen_macs", "gen_cycles",
                            "gen_energy_pj", "latency_cycles", "latency_ms", "energy_pj",
                            "compute_cycles"):
                    row[f"mlg_{key}"], row[f"dense_{key}"] = mlg[key], dense[key]
                for key in ("weight_dram_bytes", "dram_bytes", "latency_cycles", "energy_pj"):
                    row[f"{key}_ratio"] = mlg[key] / dense[key]
                rows.append(row)
    return pd.DataFrame(rows)


def sweep(g: dict) -> pd.DataFrame:
    """MLG / dense latency and energy ratios over DRAM bandwidth, buffer size, generator, batch."""
    rows = []
    for gen_label, generator in GENERATORS.items():
        for buffer_bytes in (SMALL_WEIGHT_BUFFER_BYTES, LARGE_WEIGHT_BUFFER_BYTES):
            for bw in SWEEP_BW_BYTES_PER_CYCLE:
                accel = sweep_accelerator(buffer_bytes, bw, generator)
                for batch in BATCHES:
                    row = {"generator": gen_label, "weight_buffer_bytes": buffer_bytes,
                           "dram_bw_bytes_per_cycle": bw, "batch": batch}
                    for metric, objective in METRIC_OBJECTIVE.items():
                        mlg = totals(g["mlg_resnet18", batch], accel, objective)
                        dense = totals(g["resnet18", batch], accel, objective)
                        row[f"mlg_{objective}"], row[f"dense_{objective}"] = (mlg[objective],
                                                                              dense[objective])
                        row[f"{metric}_ratio"] = mlg[objective] / dense[objective]
                    rows.append(row)
    return pd.DataFrame(rows)


def crossover_bw(bw: np.ndarray, ratio: np.ndarray) -> float:
    """DRAM bandwidth where the ratio first reaches 1 (MLG no faster), log-linear interpolated.

    ``0`` when MLG is never ahead in the sweep, ``inf`` when it stays ahead throughout.
    """
    if ratio[0] >= 1:
        return 0.0
    above = np.flatnonzero(ratio >= 1)
    if len(above) == 0:
        return float("inf")
    i = above[0]
    x0, x1 = np.log2(bw[i - 1]), np.log2(bw[i])
    return float(2 ** (x0 + (1 - ratio[i - 1]) / (ratio[i] - ratio[i - 1]) * (x1 - x0)))


def crossovers(s: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (gen_label, buffer_bytes, batch), part in s.groupby(
            ["generator", "weight_buffer_bytes", "batch"], sort=False):
        part = part.sort_values("dram_bw_bytes_per_cycle")
        bw = part["dram_bw_bytes_per_cycle"].to_numpy(float)
        ratio = part["latency_ratio"].to_numpy(float)
        rows.append({"generator": gen_label, "weight_buffer": _size(buffer_bytes),
                     "batch": batch, "latency_ratio_at_2": ratio[0],
                     "latency_ratio_at_256": ratio[-1],
                     "crossover_bw_bytes_per_cycle": crossover_bw(bw, ratio)})
    return pd.DataFrame(rows)


def _size(size_bytes: int) -> str:
    return f"{size_bytes // 1024} KB" if size_bytes < 1024 ** 2 else f"{size_bytes // 1024 ** 2} MB"


def plot(s: pd.DataFrame, path: Path) -> None:
    fig, axes = plt.subplots(2, 2, figsize=(12, 9), sharex=True)
    colors = {SMALL_WEIGHT_BUFFER_BYTES: "tab:blue", LARGE_WEIGHT_BUFFER_BYTES: "tab:orange"}
    styles = {1: ("-", "o"), 16: ("--", "s")}
    panels = [(ax, gen_label, "latency_ratio", f"Latency, generation {gen_label}")
              for ax, gen_label in zip(axes.flat[:3], GENERATORS)]
    first = next(iter(GENERATORS))
    panels.append((axes.flat[3], first, "energy_ratio",
                   f"Energy, generation {first}\n(no static energy: bandwidth does not change it)"))
    for ax, gen_label, column, title in panels:
        part = s[s["generator"] == gen_label]
        for (buffer_bytes, batch), line in part.groupby(["weight_buffer_bytes", "batch"]):
            line = line.sort_values("dram_bw_bytes_per_cycle")
            style, marker = styles[batch]
            ax.plot(line["dram_bw_bytes_per_cycle"], line[column], linestyle=style,
                    marker=marker, color=colors[buffer_bytes],
                    label=f"{_size(buffer_bytes)} weight buffer, batch {batch}")
        ax.axhline(1.0, color="black", linewidth=0.8, label="break-even (MLG = dense)")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(SWEEP_BW_BYTES_PER_CYCLE, [str(b) for b in SWEEP_BW_BYTES_PER_CYCLE])
        ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.tick_params(axis="y", which="minor", labelsize=7)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(f"{column.split('_')[0]} ratio, MLG / dense (< 1: MLG better)")
        ax.grid(True, which="major", alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("DRAM bandwidth (bytes / cycle at 700 MHz)")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=9, frameon=False)
    fig.suptitle("MLG ResNet-18 (2-44-3-6-3, 8-bit generated weights) vs dense ResNet-18 "
                 "(8-bit), CIFAR 32x32 input,\n32x32 weight-stationary 8-bit array at 700 MHz, "
                 "horowitz45 energies; each model on its own latency- / energy-optimal mapping",
                 fontsize=11)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"),
                        help="folder for the CSVs and the PNG (default experiments/results)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    g = graphs()

    table = summary(g)
    table.to_csv(out / "mlg_hardware_summary.csv", index=False)
    shown = table[["accelerator", "batch", "mapped_for", "weight_dram_bytes_ratio",
                   "dram_bytes_ratio", "latency_cycles_ratio", "energy_pj_ratio"]].copy()
    shown["mlg_weight_dram_MB"] = table["mlg_weight_dram_bytes"] / 1e6
    shown["dense_weight_dram_MB"] = table["dense_weight_dram_bytes"] / 1e6
    shown["mlg_dram_MB"] = table["mlg_dram_bytes"] / 1e6
    shown["dense_dram_MB"] = table["dense_dram_bytes"] / 1e6
    shown["gen_MMAC"] = table["mlg_gen_macs"] / 1e6
    shown["gen_Mcycles"] = table["mlg_gen_cycles"] / 1e6
    shown["gen_uJ"] = table["mlg_gen_energy_pj"] / 1e6
    shown["mlg_ms"] = table["mlg_latency_ms"]
    shown["dense_ms"] = table["dense_latency_ms"]
    shown["mlg_uJ"] = table["mlg_energy_pj"] / 1e6
    shown["dense_uJ"] = table["dense_energy_pj"] / 1e6
    pd.set_option("display.width", 250)
    print("Accelerators:")
    for label, (_, _, text) in ACCELERATORS.items():
        print(f"  {label:<11} {text}")
    print("\nMLG ResNet-18 vs dense ResNet-18 (ratios = MLG / dense; MB = 1e6 bytes):")
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.3g}"))

    s = sweep(g)
    s.to_csv(out / "mlg_hardware_sweep.csv", index=False)
    print("\nLatency ratio vs DRAM bandwidth: where MLG stops being faster")
    print(crossovers(s).to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    energy = s.groupby(["generator", "weight_buffer_bytes", "batch"], sort=False)[
        "energy_ratio"].agg(["min", "max"])
    print("\nEnergy ratio over the bandwidth sweep (min, max) per generator:")
    print(energy.to_string(float_format=lambda v: f"{v:.3f}"))
    plot(s, out / "mlg_hardware.png")
    print(f"\nwrote {out / 'mlg_hardware_summary.csv'}, {out / 'mlg_hardware_sweep.csv'}, "
          f"{out / 'mlg_hardware.png'}")


if __name__ == "__main__":
    main()
