"""Study: MLG storage and accuracy against dense baselines, with DRAM, energy and latency.

Usage: ``python experiments/study_mlg_tradeoff.py [--set KEY=VALUE ...] [--workers N]``
(about 2-3 minutes on 2 cores: seven small training runs). Runs the sweep
``experiments/sweeps/mlg_tradeoff.yaml`` (trained points reuse their checkpoints, finished
points are skipped) and draws ``mlg_tradeoff.png`` / ``.svg`` next to the results table and a
small copy in ``docs/``. ``--set`` overrides keys of the sweep config (see its header for the
full-scale CIFAR-10 settings).
"""

import argparse
from pathlib import Path

import matplotlib.pyplot as plt

from hwsim import plot
from hwsim.results import read_table
from hwsim.sweep import load_sweep, run_sweep

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "experiments" / "sweeps" / "mlg_tradeoff.yaml"
DOCS_FIGURE = ROOT / "docs" / "study_mlg_tradeoff.png"
PANELS = (("weight_bytes", "storage"), ("dram_bytes", "DRAM traffic"),
          ("energy_pj", "energy"), ("latency_ms", "latency"))


def figure(table, subtitle: str):
    fig, axes = plt.subplots(2, 2, figsize=(10, 7.5))
    for ax, (column, what) in zip(axes.flat, PANELS):
        # Storage does not depend on the accelerator: one accelerator's rows suffice.
        part = table[table["accelerator"] == "systolic_32"] if column == "weight_bytes" else table
        plot.tradeoff(part, column, "test_acc", ax=ax, title=f"accuracy vs {what}")
    # One legend for the four panels: the DRAM panel's names every method and accelerator.
    legend = axes.flat[1].get_legend()
    handles, labels = legend.legend_handles, [t.get_text() for t in legend.get_texts()]
    labels[-1] = "Pareto front (dominated points faded)"
    for ax in axes.flat:
        ax.get_legend().remove()
    fig.legend(handles, labels, loc="lower center", ncol=5, fontsize=8, frameon=False)
    fig.suptitle("MLG vs dense ResNet-18, batch 1, on systolic_32 (64 KB weight buffer, "
                 "32 B/cycle DRAM) and mlg_gen (16 KB, 4 B/cycle, generator)\n" + subtitle,
                 fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    sweep = load_sweep(CONFIG, args.set)
    report = run_sweep(sweep, workers=args.workers)
    print(f"{report.total} points, {report.ran} run, {report.failed} failed: {sweep.results}")
    table = read_table(sweep.results)
    table = table[table["config_hash"].isin({p.config_hash for p in sweep.points})]
    config = sweep.points[0].config
    subtitle = (f"accuracy: {config['data']['name']} test set, width "
                f"{config['model']['width']}, {config['train']['epochs']} epochs from scratch "
                f"(small-scale run)\nthe two dense rows are one fp32-trained model run at "
                f"16- or 8-bit weights")
    fig = figure(table, subtitle)
    for path in plot.save(fig, sweep.results.with_suffix("")):
        print(f"wrote {path}")
    for path in plot.save(figure(table, subtitle), DOCS_FIGURE, dpi=90):
        print(f"wrote {path}")
    shown = table[["method", "accelerator", "test_acc", "weight_bytes", "dram_bytes",
                   "energy_pj", "latency_ms"]].sort_values(["accelerator", "method"])
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}"))


if __name__ == "__main__":
    main()
