"""What dynamic gating buys on an accelerator: measured densities, ideal vs realized speed-up.

The gated graph is compared with the same graph with every gate on (``ungated``), on the same
tiles, so the difference is the gating alone. Ideal speed-up is the compute reduction with
perfect packing (dense bit-MACs over executed ones, ``cost.ideal_speedup``) summed Amdahl-style
over the dense run's compute cycles; realized speed-up is the ratio of the cycles the cost
model gives (compute cycles, and latency with memory included); the energy ratio likewise.
"""

import dataclasses

import pandas as pd

from .accel import Accelerator
from .cost import evaluate
from .layer import Layer, LayerGraph
from .trace import UNCALIBRATED_NOTE


def is_gated(layer: Layer) -> bool:
    return layer.pred_bits > 0 or layer.channel_gated


def ungated(graph: LayerGraph) -> LayerGraph:
    """``graph`` with every gate on: full precision and all MACs for every output."""
    layers = tuple(dataclasses.replace(layer, mac_density=1.0, pred_bits=0, lsb_density=1.0,
                                       gate_base_fraction=0.0, gate_channel_density=())
                   if is_gated(layer) else layer for layer in graph.layers)
    return dataclasses.replace(graph, layers=layers)


def measured_densities(graph: LayerGraph) -> dict:
    """Gate statistics over the gated layers, weighted by outputs (PG) or MACs (CG).

    ``gate_sparsity`` is dnn-gating's metric: the share of gated outputs that skipped the
    expensive path; ``avg_act_bits`` the activation bits computed per MAC in PG layers.
    """
    pg = [layer for layer in graph.layers if layer.pred_bits > 0]
    cg = [layer for layer in graph.layers if layer.channel_gated]
    outputs = sum(layer.output_elements for layer in pg + cg)
    on = sum(layer.output_elements * layer.lsb_density for layer in pg) + sum(
        layer.output_elements * sum(layer.gate_channel_density) / layer.out_channels
        for layer in cg)
    out = {"gated_layers": len(pg) + len(cg),
           "gate_sparsity": 1 - on / outputs if outputs else None}
    if pg:
        macs = sum(layer.macs for layer in pg)
        out["lsb_density"] = sum(layer.macs * layer.lsb_density for layer in pg) / macs
        out["avg_act_bits"] = sum(layer.macs * layer.average_act_bits for layer in pg) / macs
    if cg:
        macs = sum(layer.macs for layer in cg)
        out["mac_density"] = sum(layer.macs * layer.mac_density for layer in cg) / macs
    return out


def gating_summary(graph: LayerGraph, accel: Accelerator, costs: pd.DataFrame) -> dict:
    """Measured densities and ideal vs realized speed-up / energy of ``graph`` on ``accel``.

    ``costs`` is ``evaluate(graph, accel)``; the ungated graph is evaluated on its mappings.
    ``gating_mode`` says how the array uses the gates: ``skip`` (bit-serial: cycles and
    energy fall), ``gate`` (bit-parallel: energy only), ``channel`` (channel gating).
    """
    dense = evaluate(ungated(graph), accel, mappings=dict(costs["mapping"]))
    gated = [layer.name for layer in graph.layers if is_gated(layer)]
    rows = costs.loc[gated]
    ideal_cycles = (dense["compute_cycles"] / costs["ideal_speedup"]).sum()
    modes = sorted(set(rows["gating_mode"]))
    return {
        **measured_densities(graph),
        "densities_measured": UNCALIBRATED_NOTE not in graph.notes,
        "gating_mode": ",".join(modes),
        "ideal_speedup": float(dense["compute_cycles"].sum() / ideal_cycles),
        "realized_speedup": float(dense["compute_cycles"].sum()
                                  / costs["compute_cycles"].sum()),
        "realized_latency_speedup": float(dense["latency_cycles"].sum()
                                          / costs["latency_cycles"].sum()),
        "gated_layers_ideal_speedup": float(dense.loc[gated, "compute_cycles"].sum() / (
            dense.loc[gated, "compute_cycles"] / rows["ideal_speedup"]).sum()),
        "gated_layers_realized_speedup": float(dense.loc[gated, "compute_cycles"].sum()
                                               / rows["compute_cycles"].sum()),
        "flop_reduction": float(costs["macs"].sum() / costs["executed_macs"].sum()),
        "energy_saving": float(dense["energy_pj"].sum() / costs["energy_pj"].sum()),
        "mac_energy_saving": float(dense["mac_energy_pj"].sum()
                                   / costs["mac_energy_pj"].sum()),
        "ungated_latency_cycles": float(dense["latency_cycles"].sum()),
        "ungated_energy_pj": float(dense["energy_pj"].sum()),
    }


def format_summary(summary: dict) -> str:
    """``gating_summary`` as console lines: measured densities, ideal vs realized."""
    mode = {"skip": "skip (bit-serial: LSB cycles skipped)",
            "gate": "gate (bit-parallel: energy only, cycles unchanged)",
            "channel": "channel (base pass + gated rest, busiest column per fold)"}
    modes = ", ".join(mode.get(m, m) for m in summary["gating_mode"].split(","))
    lines = [f"gating: {summary['gated_layers']} gated layers, mode {modes}",
             f"  measured gate sparsity {summary['gate_sparsity']:.4f}"
             if summary["densities_measured"] else
             "  gate densities NOT measured (no calibration data): every gate counted on"]
    for key, text in (("lsb_density", "LSB density"), ("avg_act_bits", "average act bits"),
                      ("mac_density", "executed MAC share of gated layers")):
        if key in summary:
            lines.append(f"  {text} {summary[key]:.4f}")
    lines.append(f"  speed-up vs all gates on: ideal {summary['ideal_speedup']:.3f}x, realized "
                 f"{summary['realized_speedup']:.3f}x compute, "
                 f"{summary['realized_latency_speedup']:.3f}x latency (gated layers: ideal "
                 f"{summary['gated_layers_ideal_speedup']:.3f}x, realized "
                 f"{summary['gated_layers_realized_speedup']:.3f}x)")
    lines.append(f"  energy saving {summary['energy_saving']:.3f}x (MAC energy "
                 f"{summary['mac_energy_saving']:.3f}x)")
    return "\n".join(lines)


__all__ = ["format_summary", "gating_summary", "is_gated", "measured_densities", "ungated"]
