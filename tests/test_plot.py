"""hwsim plot: Pareto front against brute force, figure contents, files, CLI."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import models
from hwsim import plot
from hwsim.accel import load_accelerator
from hwsim.cli import main
from hwsim.record import evaluate_record
from hwsim.report import layers_frame
from hwsim.trace import trace


def brute_force_front(x, y, max_x, max_y):
    sx, sy = (-1 if max_x else 1), (-1 if max_y else 1)
    x, y = np.asarray(x) * sx, np.asarray(y) * sy
    return np.array([not any((x[j] <= x[i] and y[j] <= y[i]) and (x[j] < x[i] or y[j] < y[i])
                             for j in range(len(x))) for i in range(len(x))])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=1, max_size=25),
       st.booleans(), st.booleans())
def test_pareto_mask_matches_brute_force(points, max_x, max_y):
    x, y = np.array(points, float).T
    np.testing.assert_array_equal(plot.pareto_mask(x, y, max_x, max_y),
                                  brute_force_front(x, y, max_x, max_y))


def test_pareto_mask_hand_case():
    # Minimize DRAM, maximize accuracy: (1, .9) and (3, .95) are the front; (2, .8) and
    # (3, .9) are dominated.
    x = np.array([1, 2, 3, 3])
    y = np.array([0.9, 0.8, 0.95, 0.9])
    assert plot.pareto_mask(x, y, maximize_y=True).tolist() == [True, False, True, False]


def test_axis_labels_carry_units():
    assert plot.axis_label("dram_bytes") == ("DRAM traffic (MB)", 1e-6)
    assert plot.axis_label("energy_pj")[0] == "energy (µJ)"
    assert plot.axis_label("accel.dram.bw_bytes_per_cycle")[0].endswith("(B/cycle)")
    assert plot.axis_label("gen_cycles")[0] == "gen (cycles)"
    assert plot.higher_is_better("test_acc") and not plot.higher_is_better("latency_ms")


def results_table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 30
    return pd.DataFrame({
        "status": ["ok"] * (n - 1) + ["error"],
        "method": rng.choice(["dense", "mlg", "int8"], n),
        "accelerator": rng.choice(["systolic_32", "mlg_gen"], n),
        "dram_bytes": 10 ** rng.uniform(5, 8, n),  # three decades: log axis
        "test_acc": rng.uniform(0.8, 0.99, n),
        "latency_ms": rng.uniform(1, 2, n),  # under 2x: linear axis
    })


def test_tradeoff_front_faded_points_and_axes():
    table = results_table()
    fig = plot.tradeoff(table, "dram_bytes", "test_acc")
    ax = fig.axes[0]
    ok = table[table["status"] == "ok"]
    front = plot.pareto_mask(ok["dram_bytes"], ok["test_acc"], maximize_y=True)
    drawn = {True: 0, False: 0}
    for collection in ax.collections:
        drawn[collection.get_label() == "front"] += len(collection.get_offsets())
    assert drawn == {True: int(front.sum()), False: int((~front).sum())}
    assert ax.get_xscale() == "log" and ax.get_yscale() == "linear"
    assert ax.get_xlabel() == "DRAM traffic (MB)"
    assert ax.get_ylabel().startswith("test accuracy (%)")
    step = ax.lines[0]
    assert len(step.get_xdata()) == front.sum()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"dense", "mlg", "int8", "systolic_32", "mlg_gen"} <= set(labels)
    assert plot.tradeoff(table, "latency_ms", "test_acc").axes[0].get_xscale() == "linear"


def test_tradeoff_errors():
    with pytest.raises(ValueError, match="no column 'nope'"):
        plot.tradeoff(results_table(), "nope", "test_acc")
    mixed = results_table().astype({"test_acc": object})
    mixed.loc[mixed.index[1:3], "test_acc"] = [None, "n/a"]  # the first value is a number
    with pytest.raises(ValueError, match="--y test_acc: the column must be numeric, it holds "
                                         "e.g. 'n/a'"):
        plot.tradeoff(mixed, "dram_bytes", "test_acc")
    table = results_table().assign(test_acc=np.nan)
    with pytest.raises(ValueError, match="no rows with both"):
        plot.tradeoff(table, "dram_bytes", "test_acc")


@pytest.fixture(scope="module")
def layers():
    torch.manual_seed(0)
    graph = trace(models.create_model("resnet20", width=0.25), (3, 16, 16), name="resnet20")
    accel = load_accelerator("mlg_gen")
    return layers_frame(evaluate_record(graph, accel)), accel


def test_breakdown_stacks_add_up_to_layer_totals(layers):
    frame, _ = layers
    fig = plot.breakdown(frame, "t")
    top, bottom = fig.axes
    energy_tops = np.zeros(len(frame))
    for patch in top.patches:
        i = int(round(patch.get_x() + patch.get_width() / 2))
        energy_tops[i] = max(energy_tops[i], patch.get_y() + patch.get_height())
    np.testing.assert_allclose(energy_tops, frame["energy_pj"] * 1e-6, rtol=1e-9)
    latency_tops = np.zeros(len(frame))
    for patch in bottom.patches:
        i = int(round(patch.get_x() + patch.get_width() / 2))
        latency_tops[i] = max(latency_tops[i], patch.get_y() + patch.get_height())
    np.testing.assert_allclose(latency_tops, frame["latency_cycles"] * 1e-3, rtol=1e-9)
    assert top.get_ylabel() == "energy (µJ)" and bottom.get_ylabel() == "latency (kcycles)"


def test_breakdown_legends_hide_no_bar(layers):
    frame, _ = layers
    tallest_last = frame.sort_values("energy_pj").reset_index(drop=True)  # legend corner
    fig = plot.breakdown(tallest_last, "t")
    fig.canvas.draw()
    for ax in fig.axes:
        box = ax.get_legend().get_window_extent()
        assert not any(box.overlaps(patch.get_window_extent()) for patch in ax.patches)


def test_roofline_layers_lie_under_the_roofs(layers):
    frame, accel = layers
    fig = plot.roofline(frame, accel.array.num_pes, accel.dram.bw_bytes_per_cycle, "t")
    ax = fig.axes[0]
    x, y = ax.collections[0].get_offsets().T
    assert len(x) == int((frame["executed_macs"] > 0).sum())
    # Throughput over a whole layer cannot beat its compulsory traffic over the bandwidth.
    assert np.all(y <= np.minimum(accel.array.num_pes, accel.dram.bw_bytes_per_cycle * x)
                  * (1 + 1e-9))
    assert ax.get_xscale() == ax.get_yscale() == "log"


def test_save_png_svg_and_both(tmp_path):
    for name, suffixes in (("a.png", [".png"]), ("b.svg", [".svg"]), ("c", [".png", ".svg"])):
        paths = plot.save(plot.tradeoff(results_table(), "dram_bytes", "test_acc"),
                          tmp_path / name)
        assert [p.suffix for p in paths] == suffixes and all(p.stat().st_size for p in paths)
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match=r"\.png or \.svg"):
        plot.save(plot.tradeoff(results_table(), "dram_bytes", "test_acc"), tmp_path / "d.jpg")


def test_cli_plot(tmp_path, capsys):
    table = tmp_path / "r.csv"
    results_table().to_csv(table, index=False)
    out = tmp_path / "t.png"
    assert main(["plot", "tradeoff", str(table), "--x", "dram_bytes", "--y", "test_acc",
                 "--where", "accelerator=mlg_gen", "--out", str(out)]) == 0
    assert out.stat().st_size > 0
    assert main(["plot", "breakdown", "--model", "resnet20", "--set", "model.width=0.25",
                 "--input", "3x16x16", "--accel", "mlg_gen", "--out", str(tmp_path / "b")]) == 0
    assert (tmp_path / "b.svg").is_file() and (tmp_path / "b.png").is_file()
    assert main(["plot", "roofline", "--model", "resnet20", "--set", "model.width=0.25",
                 "--input", "3x16x16", "--accel", "bitserial_32", "--objective",
                 "latency_cycles", "--out", str(tmp_path / "r.svg")]) == 0
    assert (tmp_path / "r.svg").read_text().lstrip().startswith("<?xml")
    capsys.readouterr()
    assert main(["plot", "tradeoff", str(table), "--x", "dram_bytes", "--out", "x.png"]) == 2
    assert "give TABLE --x COLUMN --y COLUMN" in capsys.readouterr().err
    assert main(["plot", "roofline", "--out", "x.png"]) == 2
    assert main(["plot", "tradeoff", str(table), "--x", "dram_bytes", "--y", "test_acc",
                 "--where", "nope=1", "--out", "x.png"]) == 2
    numbers = results_table().assign(bw=[4.0, 8.0] * 15)
    numbers.to_csv(table, index=False)
    assert main(["plot", "tradeoff", str(table), "--x", "dram_bytes", "--y", "test_acc",
                 "--where", "bw=4", "--out", str(out)]) == 0
    assert main(["plot", "tradeoff", str(table), "--x", "dram_bytes", "--y", "test_acc",
                 "--where", "bw=x", "--out", str(out)]) == 2
    assert "bw holds numbers" in capsys.readouterr().err
    assert main(["plot", "tradeoff", str(table), "--x", "dram_bytes", "--y", "test_acc",
                 "--where", "bw=5", "--out", str(out)]) == 2
    assert "--where 'bw=5': no row left; bw holds 4.0, 8.0" in capsys.readouterr().err


def test_study_labels_stay_apart_inside_the_axes(monkeypatch):
    """The gating study's labels: two points almost on top of each other get labels that do
    not overlap, a point near the lower edge keeps its label inside the axes, and a second
    point with the same label on top of the first gets none."""
    import matplotlib.pyplot as plt

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "experiments"))
    from study_gating_speedup import _label

    fig, ax = plt.subplots(figsize=(4, 3))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    _label(ax, [(0.5, 0.5, "pbits 1"), (0.505, 0.5, "pbits 3"), (0.5, 0.01, "pt 2"),
                (0.501, 0.01, "pt 2")])
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in ax.texts]
    bottom = ax.get_window_extent(renderer).y0
    assert [t.get_text() for t in ax.texts] == ["pbits 1", "pbits 3", "pt 2"]
    plt.close(fig)
    assert not boxes[0].overlaps(boxes[1])
    assert boxes[2].y0 >= bottom
