"""Reports: the per-layer table, totals, the JSON object of ``hwsim run`` and atomic saving.

The JSON object has stable keys (documented in README.md): ``model``, ``accelerator``,
``totals``, ``layers``, ``storage``, ``notes`` and, for compressed models, ``baseline``.
"""

import io
import json
import math

import pandas as pd

from .accel import accelerator_dict
from .cost import DEFAULT_OBJECTIVE, evaluate, hardware_totals
from .layer import LayerGraph

WORKLOAD_COLUMNS = ["name", "op", "batch", "in_channels", "out_channels", "in_hw", "out_hw",
                    "kernel_size", "stride", "groups", "weight_bits", "act_bits", "macs",
                    "params", "weight_bytes", "input_bytes", "output_bytes", "gen_macs",
                    "mac_density", "lsb_density"]
WORKLOAD_TOTALS = ["macs", "params", "weight_bytes", "input_bytes", "output_bytes", "gen_macs"]
# Console views; every column is in layers.csv / the JSON.
WORKLOAD_TABLE = ["name", "op", "in_channels", "out_channels", "out_hw", "kernel_size", "stride",
                  "groups", "macs", "params", "weight_bytes", "input_bytes", "output_bytes"]
HARDWARE_TABLE = ["name", "op", "out_channels", "out_hw", "kernel_size", "macs", "gen_macs",
                  "compute_cycles", "stall_cycles", "latency_cycles", "utilization", "dram_bytes",
                  "dram_transactions", "sram_reads_bytes", "sram_writes_bytes", "mac_energy_pj",
                  "sram_energy_pj", "dram_energy_pj", "gen_energy_pj", "energy_pj"]


def workload_frame(graph: LayerGraph) -> pd.DataFrame:
    """One row per layer with the shapes and counts the tracer read."""
    rows = []
    for layer in graph.layers:
        rows.append({
            "name": layer.name, "op": layer.op, "batch": layer.batch,
            "in_channels": layer.in_channels, "out_channels": layer.out_channels,
            "in_hw": "x".join(map(str, layer.in_hw)), "out_hw": "x".join(map(str, layer.out_hw)),
            "kernel_size": "x".join(map(str, layer.kernel_size)),
            "stride": "x".join(map(str, layer.stride)), "groups": layer.groups,
            "weight_bits": layer.weight_bits, "act_bits": layer.act_bits, "macs": layer.macs,
            "params": layer.weight_count + layer.bias_count, "weight_bytes": layer.weight_bytes,
            "input_bytes": layer.input_bytes, "output_bytes": layer.output_bytes,
            "gen_macs": layer.gen_macs, "mac_density": layer.mac_density,
            "lsb_density": layer.lsb_density,
        })
    return pd.DataFrame(rows, columns=WORKLOAD_COLUMNS)


def _plain(value):
    """JSON-safe Python scalar (numpy types, NaN → None)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def frame_records(frame: pd.DataFrame) -> list[dict]:
    return [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def build_report(graph: LayerGraph, accel=None, objective: str = DEFAULT_OBJECTIVE) -> dict:
    """The ``hwsim run`` object for ``graph``, with hardware columns when ``accel`` is given."""
    layers = workload_frame(graph)
    totals = {key: _plain(layers[key].sum()) for key in WORKLOAD_TOTALS}
    totals["layers"] = len(graph.layers)
    accel_info = None
    if accel is not None:
        costs = evaluate(graph, accel, objective=objective).drop(columns=["op", "mapping"])
        # The cost model's figures win where names overlap: e.g. its gen_macs counts every
        # regeneration pass, the workload's one generation.
        keep = [c for c in layers.columns if c not in costs.columns]
        layers = layers[keep].merge(costs, left_on="name", right_index=True, how="left")
        totals.update({k: _plain(v) for k, v in hardware_totals(costs, graph, accel).items()})
        accel_info = accelerator_dict(accel)
    return {"model": graph.model, "input_shape": list(graph.input_shape),
            "accelerator": accel_info, "totals": totals, "layers": frame_records(layers),
            "storage": {k: _plain(v) for k, v in graph.storage.items()},
            "notes": list(graph.notes)}


def layers_frame(report: dict) -> pd.DataFrame:
    return pd.DataFrame(report["layers"])


def format_table(report: dict) -> str:
    """Console view: per-layer table, then totals and storage, one figure per line."""
    frame = layers_frame(report)
    accel = report["accelerator"]
    columns = [c for c in (HARDWARE_TABLE if accel else WORKLOAD_TABLE) if c in frame.columns]
    out = io.StringIO()
    title = f"model {report['model']}  input {'x'.join(map(str, report['input_shape']))}"
    if accel:
        title += f"  accelerator {accel['name']}"
    out.write(title + "\n")
    out.write(frame[columns].to_string(index=False, float_format=figure) + "\n\n")
    out.write(_block("totals", report["totals"]))
    out.write(_block("storage", report["storage"]))
    if report.get("baseline"):
        out.write(_block(f"compared with {report['baseline']['model']} (ratio = this / baseline)",
                         report["baseline"]["ratios"]))
    for note in report["notes"]:
        out.write(f"note: {note}\n")
    return out.getvalue()


def _block(title: str, values: dict) -> str:
    lines = [f"{title}:"]
    for key, value in values.items():
        if isinstance(value, dict):
            continue
        lines.append(f"  {key:<28} {figure(value)}")
    return "\n".join(lines) + "\n\n"


def figure(value) -> str:
    """Readable number: thousands separators, integers exact, small values to 4 digits."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int) or value.is_integer():
        return f"{int(value):,}"
    return f"{value:,.1f}" if abs(value) >= 1000 else f"{value:.4g}"


def to_json(report: dict) -> str:
    return json.dumps(report, indent=2)
