"""Study: ResRep FLOPs target against latency on 16/32/64-wide arrays, with and without widths
rounded to the array width.

Usage: ``python experiments/study_resrep_latency.py [--set KEY=VALUE ...] [--workers N]``
(about 4 minutes on 2 cores: thirteen small training runs). Runs the sweep
``experiments/sweeps/resrep_latency.yaml`` and draws ``resrep_latency.png`` / ``.svg`` next to
the results table and a small copy in ``docs/``: latency against the FLOPs the pruned network
kept, per array width, for free widths and widths kept a multiple of that array's width, and
the accuracy of every trained model.
"""

import matplotlib.pyplot as plt
from studies import command, run, save, show, training_note

WIDTHS = (16, 32, 64)
COLORS = {"ResRep": "tab:blue", "ResRep, widths x16": "tab:orange",
          "ResRep, widths x32": "tab:red", "ResRep, widths x64": "tab:purple"}
ROWS = "accel.array.rows"
TARGET = "resrep.flops_target"


def _variant(table, method: str):
    """The rows of ``method`` and of the unpruned network (where every variant starts)."""
    return table[table["method"].isin([method, "unpruned"])]


def _label(ax, part, y) -> None:
    """Each point labelled with its FLOPs targets (several when they pruned alike)."""
    for (x, value), group in part.assign(y=y).groupby(["flops_ratio", "y"]):
        targets = ", ".join(f"{t:g}" for t in sorted(group[TARGET]))
        ax.annotate(targets, (x, value), textcoords="offset points", xytext=(4, -10),
                    fontsize=7)


def figure(table, subtitle: str):
    fig, axes = plt.subplots(1, 4, figsize=(15, 4.4))
    for ax, width in zip(axes, WIDTHS):
        on = table[table[ROWS] == width]
        dense_ms = float(on[on["method"] == "unpruned"]["latency_ms"].iloc[0])
        for method, label, style in (("ResRep", "free widths", "o-"),
                                     (f"ResRep, widths x{width}", f"widths x{width}", "s--")):
            part = _variant(on, method).sort_values("flops_ratio")
            ax.plot(part["flops_ratio"], part["latency_ms"] / dense_ms, style, label=label,
                    color=COLORS[method])
            if method == "ResRep":
                _label(ax, part, part["latency_ms"] / dense_ms)
            else:  # the unpruned point carries its label once
                _label(ax, part[part["method"] == method], part["latency_ms"] / dense_ms)
        ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle=":",
                label="latency = FLOPs")
        ax.set_xlim(0, 1.05)
        ax.set_ylim(0, 1.1)
        ax.set_xlabel("FLOPs kept (conv + FC MACs / unpruned)")
        ax.set_ylabel(f"latency / unpruned ({dense_ms * 1e3:.1f} µs)")
        ax.set_title(f"{width}x{width} array", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7.5, loc="upper left")
    ax = axes[3]
    trained = table[table[ROWS] == WIDTHS[0]]  # accuracy: one row per trained model
    for method, color in COLORS.items():
        part = trained[trained["method"] == method].sort_values("flops_ratio")
        ax.plot(part["flops_ratio"], part["test_acc"] * 100, "o-" if method == "ResRep"
                else "s--", label=method, markersize=4, color=color)
    unpruned = trained[trained["method"] == "unpruned"]
    ax.plot(unpruned["flops_ratio"], unpruned["test_acc"] * 100, "k*", markersize=9,
            label="unpruned")
    ax.set_xlabel("FLOPs kept (conv + FC MACs / unpruned)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("accuracy after conversion", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7.5)
    fig.suptitle("ResRep on ResNet-20 (width 2: 32/64/128 channels), batch 1, systolic_32 memory "
                 "with a 16/32/64-wide array; labels: FLOPs target\n" + subtitle, fontsize=10)
    fig.tight_layout()
    return fig


def main() -> None:
    sweep, table = run("resrep_latency.yaml", __doc__.splitlines()[0])
    save(lambda: figure(table, training_note(sweep)), sweep, "study_resrep_latency.png")
    show(table, ["method", TARGET, ROWS, "flops_ratio", "test_acc", "latency_ms",
                 "utilization", "channels"], ["method", TARGET, ROWS])


if __name__ == "__main__":
    command(main)
