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
import numpy as np
from matplotlib.transforms import Bbox
from studies import command, run, save, show, training_note

# Bit-serial filled on top, bit-parallel hollow and larger: where both arrays land on the
# same point (CG), both stay visible.
ARRAYS = {"bitserial_32": ("bit-serial (bitserial_32)", "tab:blue"),
          "systolic_32": ("bit-parallel (systolic_32)", "tab:orange")}
STYLE = {"bitserial_32": {"s": 30, "zorder": 3},
         "systolic_32": {"s": 70, "facecolors": "none", "linewidths": 1.5, "zorder": 2}}
# Where a label may go around its point (offset points), tried in turn.
OFFSETS = ((6, 2), (6, -8), (-6, 2), (-6, -8), (6, 10), (6, -16), (-6, 10), (-6, -16))
MARKERS = {"PG": "o", "CG": "s"}
PANELS = (("gated_layers_ideal_speedup", "gated_layers_realized_speedup",
           "gated layers: compute cycles"),
          ("ideal_speedup", "realized_latency_speedup", "whole model: latency"))


def _knob(row) -> str:
    """What sets the ideal speed-up: PG's prediction bits, CG's base-pass share."""
    return f"pbits {row['pg.pbits']:g}" if row["method"] == "PG" else f"pt {row['cg.pt']:g}"


def _label(ax, notes) -> None:
    """Write each ``(x, y, text)`` next to its point, at the first of ``OFFSETS`` where it
    stays inside the axes and clears the legend, the other markers and the labels placed so
    far (matplotlib does not keep annotations apart); a point on top of one already labelled
    the same (CG on both arrays) gets none. Call once layout and limits are final."""
    renderer = ax.figure.canvas.get_renderer()
    inside = ax.get_window_extent(renderer)
    radius = 5 * ax.figure.dpi / 72  # pixels around a marker's centre (the hollow ones)
    centres = [ax.transData.transform((x, y)) for x, y, _ in notes]
    markers = [Bbox.from_bounds(*(c - radius), 2 * radius, 2 * radius) for c in centres]
    labels = [] if ax.get_legend() is None else [ax.get_legend().get_window_extent(renderer)]
    for i, (x, y, text) in enumerate(notes):
        if any(notes[j][2] == text and np.hypot(*(centres[j] - centres[i])) < 2 * radius
               for j in range(i)):
            continue
        others = labels + markers[:i] + markers[i + 1:]
        for dx, dy in OFFSETS:
            note = ax.annotate(text, (x, y), fontsize=7, textcoords="offset points",
                               xytext=(dx, dy), ha="left" if dx > 0 else "right")
            box = note.get_window_extent(renderer)
            clear = not any(box.overlaps(other) for other in others)
            if clear and inside.contains(box.x0, box.y0) and inside.contains(box.x1, box.y1):
                break
            note.remove()
        else:  # nowhere clear: the first place, overlapping
            note = ax.annotate(text, (x, y), fontsize=7, textcoords="offset points",
                               xytext=OFFSETS[0])
            box = note.get_window_extent(renderer)
        labels.append(box)


def figure(table, subtitle: str):
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.6))
    notes = {ax: [] for ax in axes}
    for ax, (ideal, realized, what) in zip(axes, PANELS):
        top = max(table[ideal].max(), table[realized].max()) * 1.08
        ax.plot([1, top], [1, top], color="grey", linestyle=":", linewidth=1,
                label="realized = ideal")
        for (method, accel), part in table.groupby(["method", "accelerator"]):
            label, color = ARRAYS[accel]
            ax.scatter(part[ideal], part[realized], marker=MARKERS[method], color=color,
                       label=f"{method}, {label}", **STYLE[accel])
            notes[ax] += [(row[ideal], row[realized], _knob(row)) for _, row in part.iterrows()]
        bottom = 1 - 0.06 * (top - 1)  # room for the labels of the points at 1
        ax.set_xlim(bottom, top)
        ax.set_ylim(bottom, top)
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
        notes[ax] += [(row["gate_sparsity"], row["test_acc"] * 100, _knob(row))
                      for _, row in part.iterrows()]
    ax.margins(x=0.12, y=0.12)
    ax.set_xlabel("measured gate sparsity (gated outputs skipping the rest)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("accuracy against measured gate sparsity", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7.5)
    fig.suptitle("Precision gating (PG: 4-bit activations, pbits-bit prediction) and channel "
                 "gating (CG: 1/pt of the channels in the base pass) on ResNet-20, batch 1\n"
                 + subtitle, fontsize=10)
    fig.tight_layout()
    for ax, points in notes.items():
        _label(ax, points)
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
