"""Study: MLG storage and accuracy against dense baselines, with DRAM, energy and latency.

Usage: ``python experiments/study_mlg_tradeoff.py [--set KEY=VALUE ...] [--workers N]``
(about 2-3 minutes on 2 cores: six small training runs, every model then post-training
quantized to the widths its point runs and scored again). Runs the sweep
``experiments/sweeps/mlg_tradeoff.yaml`` (trained points reuse their checkpoints, finished
points are skipped) and draws ``mlg_tradeoff.png`` / ``.svg`` next to the results table and a
small copy in ``docs/``. ``--set`` overrides keys of the sweep config (see its header for the
full-scale CIFAR-10 settings).
"""

import matplotlib.pyplot as plt
from studies import command, run, save, show, training_note

from hwsim import plot

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
    sweep, table = run("mlg_tradeoff.yaml", __doc__.splitlines()[0])
    subtitle = (f"{training_note(sweep)}, width {sweep.points[0].config['model']['width']}\n"
                "scored after post-training quantization to the widths the array runs "
                "(8-bit activations); dense rows: one fp32-trained model")
    save(lambda: figure(table, subtitle), sweep, "study_mlg_tradeoff.png")
    show(table, ["method", "accelerator", "test_acc", "test_acc_fp32", "weight_bytes",
                 "dram_bytes", "energy_pj", "latency_ms"], ["accelerator", "method"])


if __name__ == "__main__":
    command(main)
