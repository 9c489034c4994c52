"""Study: precision and channel gating, ideal against realized speed-up on a bit-serial and a
bit-parallel array.

Usage: ``python experiments/study_gating_speedup.py [--set KEY=VALUE ...] [--workers N]``
(about 2 minutes on 2 cores: six small training runs). Runs the sweep
``experiments/sweeps/gating_speedup.yaml`` and draws ``gating_speedup.png`` / ``.svg`` next to
the results table and a small copy in ``docs/``: realized against ideal speed-up (gated layers'
compute, and the whole model's latency) for PG and CG on bitserial_32 and systolic_32, and the
accuracy each trained model kept for its measured gate sparsity.
"""

import matplotlib.pyplot as plt
from studies import command, run, save, show, training_note

ARRAYS = {"bitserial_32": ("bit-serial (bitserial_32)", "tab:blue"),
          "systolic_32": ("bit-parallel (systolic_32)", "tab:orange")}
MARKERS = {"PG": "o", "CG": "s"}
PANELS = (("gated_layers_ideal_speedup", "gated_layers_realized_speedup",
           "gated layers: compute cycles"),
          ("ideal_speedup", "realized_latency_speedup", "whole model: latency"))


def _knob(row) -> str:
    """What sets the ideal speed-up: PG's prediction bits, CG's base-pass share."""
    return f"pbits {row['pg.pbits']:g}" if row["method"] == "PG" else f"pt {row['cg.pt']:g}"


def figure(table, subtitle: str):
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.6))
    for ax, (ideal, realized, what) in zip(axes, PANELS):
        top = max(table[ideal].max(), table[realized].max()) * 1.08
        ax.plot([1, top], [1, top], color="grey", linestyle=":", linewidth=1,
                label="realized = ideal")
        for (method, accel), part in table.groupby(["method", "accelerator"]):
            label, color = ARRAYS[accel]
            ax.scatter(part[ideal], part[realized], marker=MARKERS[method], color=color,
                       s=36, label=f"{method}, {label}")
            below = accel == "systolic_32"  # the two arrays' labels on either side
            for _, row in part.iterrows():
                ax.annotate(_knob(row), (row[ideal], row[realized]), fontsize=7,
                            textcoords="offset points", xytext=(5, -9 if below else 4))
        ax.set_xlim(0.98, top)
        ax.set_ylim(0.98, top)
        ax.set_xlabel("ideal speed-up (all-gates-on bit-MACs / executed)")
        ax.set_ylabel("realized speed-up (all gates on / gated, cycles)")
        ax.set_title(what, fontsize=10)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7.5, loc="upper left")
    ax = axes[2]
    trained = table[table["accelerator"] == "bitserial_32"]  # one row per trained model
    for method, part in trained.groupby("method"):
        ax.scatter(part["gate_sparsity"], part["test_acc"] * 100, marker=MARKERS[method],
                   color="black", s=36, label=method)
        for _, row in part.iterrows():
            ax.annotate(_knob(row), (row["gate_sparsity"], row["test_acc"] * 100),
                        fontsize=7, textcoords="offset points", xytext=(4, 3))
    ax.set_xlabel("measured gate sparsity (gated outputs skipping the rest)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("accuracy against measured gate sparsity", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7.5)
    fig.suptitle("Precision gating (PG: 4-bit activations, pbits-bit prediction) and channel "
                 "gating (CG: 1/pt of the channels in the base pass) on ResNet-20, batch 1\n"
                 + subtitle, fontsize=10)
    fig.tight_layout()
    return fig


def main() -> None:
    sweep, table = run("gating_speedup.yaml", __doc__.splitlines()[0])
    subtitle = (f"{training_note(sweep)}; gate densities measured on "
                f"{sweep.points[0].config['calib_batches']} training batches")
    save(lambda: figure(table, subtitle), sweep, "study_gating_speedup.png")
    show(table, ["method", "pg.pbits", "cg.pt", "accelerator", "gating_mode", "test_acc",
                 "gate_sparsity", "gated_layers_ideal_speedup",
                 "gated_layers_realized_speedup", "ideal_speedup", "realized_speedup",
                 "realized_latency_speedup", "energy_saving"],
         ["method", "accelerator", "pg.pbits", "cg.pt"])


if __name__ == "__main__":
    command(main)
