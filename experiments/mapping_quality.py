"""Mapping quality against SCALE-Sim's fold model and the single-objective optima.

Prints (and writes ``experiments/results/mapping_quality_*.csv``):
1. SCALE-Sim per layer: the golden layers (tests/golden, SCALE-Sim 3.0.0) searched freely with
   whole-layer buffers and on the default systolic_32, compute cycles against SCALE-Sim's;
2. CIFAR ResNet-18 against the fold model with whole-layer tiles (SCALE-Sim's view, which the
   goldens confirm to the cycle): free search with 1 GiB buffers whose bandwidth does not limit,
   with DRAM that does not limit either (SCALE-Sim's CALC mode, no memory stalls) and with the
   preset's 32 B/cycle DRAM, on 32x32 / 16x16 WS / OS / IS, and the presets as they are;
3. the objectives' trade-off: whole-network latency, DRAM bytes and energy of each objective
   over the best any objective reaches, on the presets and systolic_32's three dataflows, and
   per accelerator the lower bound on max(latency, DRAM) ratio that any choice of one candidate
   per layer shape can reach (Lagrangian: for every weight w, the network's least
   latency/L0 + w·DRAM/D0 over (1 + w) bounds the larger ratio from below).

    python experiments/mapping_quality.py
"""

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from hwsim import mapping as mp
from hwsim.accel import load_accelerator
from hwsim.cost import (
    DEFAULT_OBJECTIVE,
    OBJECTIVES,
    candidate_costs,
    channel_gates,
    evaluate,
    hardware_totals,
)
from hwsim.layer import Layer, LayerGraph
from hwsim.mapping import untiled
from hwsim.objective import layer_starts
from hwsim.trace import trace
from models import create_model

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"
WHOLE = {name: {"size_bytes": 1 << 30, "bw_bytes_per_cycle": 1 << 20}
         for name in ("weight", "input", "output")}
IDEAL_DRAM = {"bw_bytes_per_cycle": 1 << 20}


def golden_graph(flow: str) -> tuple[LayerGraph, list[int], tuple[int, int]]:
    with open(ROOT / "tests" / "golden" / f"scalesim_{flow}.csv") as fh:
        rows = list(csv.DictReader(fh))
    layers = []
    for row in rows:
        h, w, kh, kw, s = (int(row[k]) for k in ("ifmap_h", "ifmap_w", "kh", "kw", "stride"))
        layers.append(Layer(row["layer"], "conv", 1, int(row["channels"]), int(row["filters"]),
                            (h, w), ((h - kh) // s + 1, (w - kw) // s + 1), (kh, kw), (s, s)))
    cycles = [int(row["scalesim_total_cycles"]) for row in rows]
    return LayerGraph("golden", (1,), tuple(layers)), cycles, (int(rows[0]["rows"]),
                                                                int(rows[0]["cols"]))


def accel_for(rows: int, cols: int, flow: str, buffers=None, dram=None):
    return load_accelerator("systolic_32", {"array": {"rows": rows, "cols": cols,
                                                      "dataflow": flow},
                                            **({"buffers": buffers} if buffers else {}),
                                            **({"dram": dram} if dram else {})})


def scalesim_per_layer() -> pd.DataFrame:
    frames = []
    for flow in ("ws", "os", "is"):
        graph, theirs, (rows, cols) = golden_graph(flow)
        for setting, buffers in (("whole-layer buffers", WHOLE), ("preset buffers", None)):
            df = evaluate(graph, accel_for(rows, cols, flow, buffers))
            frames.append(pd.DataFrame({
                "dataflow": flow, "array": f"{rows}x{cols}", "buffers": setting,
                "layer": df.index, "hwsim_cycles": df.compute_cycles.to_numpy(),
                "scalesim_cycles": theirs,
                "deviation_pct": 100 * (df.compute_cycles.to_numpy() / theirs - 1),
                "tiles": df.num_tiles.to_numpy()}))
    return pd.concat(frames, ignore_index=True)


def fold_reference(graph: LayerGraph, accel) -> pd.Series:
    """SCALE-Sim's cycles per weight layer: hwsim's whole-layer fold count minus one."""
    big = load_accelerator("systolic_32", {"array": {
        "rows": accel.array.rows, "cols": accel.array.cols, "dataflow": accel.array.dataflow},
        "buffers": WHOLE})
    df = evaluate(graph, big, mappings={layer.name: untiled(layer) for layer in graph.layers})
    return df.compute_cycles[[layer.has_weights for layer in graph.layers]] - 1


def network_against_fold_model(graph: LayerGraph) -> pd.DataFrame:
    rows = []
    cases = [(f"{n}x{n} {flow}, whole-layer buffers{dram_name}",
              accel_for(n, n, flow, WHOLE, dram))
             for dram_name, dram in ((", ideal DRAM", IDEAL_DRAM), (", 32 B/cycle DRAM", None))
             for n in (32, 16) for flow in ("ws", "os", "is")]
    cases += [(f"systolic_32 {flow}", accel_for(32, 32, flow)) for flow in ("ws", "os", "is")]
    for name, accel in cases:
        ref = fold_reference(graph, accel)
        df = evaluate(graph, accel)
        t = hardware_totals(df, graph, accel)
        mine = df.compute_cycles[ref.index]
        rows.append({"case": name, "compute_vs_scalesim": mine.sum() / ref.sum(),
                     "worst_layer_pct": 100 * (mine / ref - 1).abs().max(),
                     "dram_vs_compulsory": t["dram_bytes"] / t["compulsory_dram_bytes"]})
    return pd.DataFrame(rows)


def balance_bound(graph: LayerGraph, accel) -> float:
    """Lower bound on max(latency / L0, DRAM / D0) over every choice of one legal candidate per
    distinct layer shape (L0, D0: the single-objective optima)."""
    first, inverse, arrays = mp.unique_layers(graph.layers)
    space, tiles = mp.candidate_space(graph.layers, accel.array.rows, accel.array.cols,
                                      accel.array.dataflow)
    cand = space.take(mp.fits(tiles, accel))
    costs = candidate_costs(accel, arrays.view(cand.layer), cand,
                            gates=channel_gates(first, cand, accel.array))
    weight = np.bincount(inverse, minlength=len(first))
    starts = layer_starts(cand.layer)
    latency = costs["latency_cycles"] / float(
        weight @ np.minimum.reduceat(costs["latency_cycles"], starts))
    dram = costs["dram_bytes"] / float(weight @ np.minimum.reduceat(costs["dram_bytes"], starts))
    w = 2.0 ** np.arange(-10, 10, 0.01)[:, None]
    least = np.minimum.reduceat(latency + w * dram, starts, axis=1) @ weight
    return float(np.max(least / (1 + w[:, 0])))


def tradeoff(graph: LayerGraph) -> pd.DataFrame:
    cases = [(name, load_accelerator(name)) for name in
             ("systolic_32", "eyeriss_like", "mlg_gen", "bitserial_32", "bitfusion_16")]
    cases += [(f"systolic_32 {flow}", accel_for(32, 32, flow)) for flow in ("os", "is")]
    rows = []
    for name, accel in cases:
        totals = {obj: hardware_totals(evaluate(graph, accel, objective=obj), graph, accel)
                  for obj in OBJECTIVES}
        best = {k: min(t[k] for t in totals.values())
                for k in ("latency_cycles", "dram_bytes", "energy_pj")}
        for obj, t in totals.items():
            rows.append({"accelerator": name, "objective": obj,
                         **{k: t[k] / best[k] for k in best}})
        rows.append({"accelerator": name, "objective": "bound on max(latency, DRAM)",
                     "latency_cycles": balance_bound(graph, accel)})
    return pd.DataFrame(rows)


def main() -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    pd.set_option("display.width", 140)
    per_layer = scalesim_per_layer()
    per_layer.to_csv(RESULTS / "mapping_quality_scalesim.csv", index=False)
    print("SCALE-Sim golden layers, free search (default objective):")
    print(per_layer.groupby(["dataflow", "array", "buffers"]).apply(
        lambda d: pd.Series({"network_pct": 100 * (d.hwsim_cycles.sum() / d.scalesim_cycles.sum()
                                                   - 1),
                             "worst_layer_pct": d.deviation_pct.abs().max(),
                             "worst_layer": d.layer[d.deviation_pct.abs().idxmax()]}),
        include_groups=False).to_string(float_format="%.3f"))
    r18 = trace(create_model("resnet18"), (3, 32, 32))
    network = network_against_fold_model(r18)
    network.to_csv(RESULTS / "mapping_quality_resnet18.csv", index=False)
    print(f"\nCIFAR ResNet-18, {DEFAULT_OBJECTIVE} objective:")
    print(network.to_string(index=False, float_format="%.4f"))
    table = tradeoff(r18)
    table.to_csv(RESULTS / "mapping_quality_tradeoff.csv", index=False)
    print("\nCIFAR ResNet-18, whole-network figures over the best any objective reaches:")
    print(table.to_string(index=False, float_format="%.3f"))


if __name__ == "__main__":
    main()
