"""The result record of one evaluation, and the dense-baseline policy of compressed models.

``evaluate_record`` maps and costs a traced graph and returns the one record every command
emits: ``hwsim run`` prints or saves it (``hwsim.report`` formats it), ``hwsim compare`` sets
several side by side, ``hwsim pipeline`` and ``hwsim sweep`` flatten it into a results row
(``record_row``). Keys (documented in README.md): ``model``, ``input_shape``, ``objective``,
``accelerator`` (the spec as loaded, overrides applied), ``accelerator_changes`` (what the
overrides changed), ``totals``, ``layers``, ``storage``, ``notes``, and when they apply
``baseline`` (the dense counterpart's totals, storage, accuracy and the ratios this / baseline)
and ``gating``.

Names are one per quantity: ``folded_params`` (conv / linear weights and biases with
BatchNorm folded in, as the hardware stores them) and ``stored_params`` (what the checkpoint
stores: every parameter, BatchNorm's included, compressed layers at their compressed count);
``test_acc`` the top-1 test accuracy in [0, 1]. Counts, bytes and cycles that are whole come
out as integers.
"""

import math
from dataclasses import dataclass

from .config import METHOD_NAMESPACES
from .layer import LayerGraph

COMPRESSED_PREFIXES = tuple(f"{ns}_" for ns in METHOD_NAMESPACES)
WORKLOAD_COLUMNS = ["name", "op", "batch", "in_channels", "out_channels", "in_hw", "out_hw",
                    "kernel_size", "stride", "groups", "weight_bits", "act_bits", "macs",
                    "folded_params", "weight_bytes", "input_bytes", "output_bytes", "gen_macs",
                    "mac_density", "pred_bits", "lsb_density", "avg_act_bits"]
WORKLOAD_TOTALS = ["macs", "folded_params", "weight_bytes", "input_bytes", "output_bytes",
                   "gen_macs"]
# Totals compared with the dense baseline (ratio = this / baseline).
RATIO_KEYS = ("macs", "weight_bytes", "gen_macs", "weight_dram_bytes", "ifmap_dram_bytes",
              "ofmap_dram_bytes", "dram_bytes", "dram_transactions", "compute_cycles",
              "stall_cycles", "latency_cycles", "energy_pj", "mac_energy_pj", "sram_energy_pj",
              "gen_energy_pj", "dram_energy_pj")
STORAGE_RATIO_KEYS = ("stored_params", "stored_bytes")
# Whole quantities: an integer-valued float with one of these endings is written as an int.
WHOLE_SUFFIXES = ("_bytes", "macs", "_params", "_transactions", "_bits", "_cycles", "_ops",
                  "layers", "_events", "batch", "_channels", "groups")


@dataclass(frozen=True)
class Baseline:
    """A dense model to compare with: its traced graph and, when measured, its accuracy;
    ``changed``: the arguments it takes away from its own defaults that no ``--set`` asked
    for (e.g. ResRep's projection shortcuts), ``checkpoint``: the file it was loaded from."""

    graph: LayerGraph
    test_acc: float | None = None
    changed: dict | None = None
    checkpoint: str | None = None


def dense_counterpart(name: str, registered) -> str | None:
    """``resnet18`` for ``mlg_resnet18``: the dense model a compressed one is measured
    against, when ``registered`` (the model names) holds it."""
    for prefix in COMPRESSED_PREFIXES:
        if name.startswith(prefix) and name[len(prefix):] in registered:
            return name[len(prefix):]
    return None


def missing_counterpart_note(name: str, registered) -> str | None:
    """Why a compressed model (``cg_resnet20_postact``) has no automatic dense baseline: its
    name less the method prefix is not registered; the note names the nearest one that is."""
    prefix = next((p for p in COMPRESSED_PREFIXES if name.startswith(p)), None)
    if prefix is None or dense_counterpart(name, registered):
        return None
    dense = name[len(prefix):]
    near = max((m for m in registered if dense.startswith(m)), key=len, default=None)
    hint = f"; --baseline {near} picks the nearest that is (its blocks may differ)" if near else ""
    return f"no dense baseline: {dense} is not a registered model{hint}"


def baseline_name(name: str, choice: str, registered) -> str | None:
    """The baseline ``--baseline choice`` names for model ``name``: ``auto`` its dense
    counterpart (none for a dense model), ``none`` none, else a model name."""
    if choice == "auto":
        return dense_counterpart(name, registered)
    return None if choice == "none" else choice


def baseline_kwargs(own: dict, base: dict, kwargs: dict) -> dict:
    """Arguments of the dense baseline for comparison with a model built with ``kwargs``:
    ``own`` and ``base`` are the two builders' arguments with their defaults. The baseline
    takes the arguments the two share, at the model's values (its defaults where they differ:
    ResRep's ResNets default to projection shortcuts); method settings and channel plans are
    not shared."""
    return {k: kwargs.get(k, own[k]) for k in base
            if k in own and k not in METHOD_NAMESPACES and (k in kwargs or own[k] != base[k])}


def trace_baseline(name: str, kwargs: dict, graph: LayerGraph, trace_options: dict,
                   base: str, model=None, test_acc: float | None = None) -> Baseline:
    """The baseline ``base`` traced at ``graph``'s input and batch: ``model`` (e.g. a trained
    checkpoint's) or the registered model built with the arguments it shares with ``name``."""
    import models

    from .trace import trace

    changed = None
    if model is None:
        shared = baseline_kwargs(models.model_arguments(name), models.model_arguments(base),
                                 kwargs)
        model = models.create_model(base, **shared)
        changed = {k: v for k, v in shared.items() if k not in kwargs}
    batch, *shape = graph.input_shape
    return Baseline(trace(model, tuple(shape), batch=batch, name=base, **trace_options),
                    test_acc, changed)


def accelerator_changes(preset, accel) -> dict:
    """``{dotted key: [preset value, value]}`` for every field the overrides changed."""
    from .accel import accelerator_dict

    before, after = _flat(accelerator_dict(preset)), _flat(accelerator_dict(accel))
    return {k: [before.get(k), v] for k, v in after.items() if before.get(k) != v}


def _flat(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def plain(key: str, value):
    """JSON-safe Python scalar: numpy types unwrapped, NaN → None, whole counts as int."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        if value.is_integer() and key.endswith(WHOLE_SUFFIXES):
            return int(value)
    return value


def workload_frame(graph: LayerGraph):
    """One row per layer (pandas) with the shapes and counts the tracer read."""
    import pandas as pd

    rows = []
    for layer in graph.layers:
        rows.append({
            "name": layer.name, "op": layer.op, "batch": layer.batch,
            "in_channels": layer.in_channels, "out_channels": layer.out_channels,
            "in_hw": "x".join(map(str, layer.in_hw)), "out_hw": "x".join(map(str, layer.out_hw)),
            "kernel_size": "x".join(map(str, layer.kernel_size)),
            "stride": "x".join(map(str, layer.stride)), "groups": layer.groups,
            "weight_bits": layer.weight_bits, "act_bits": layer.act_bits,
            **_layer_counts(layer), "mac_density": layer.mac_density, "pred_bits": layer.pred_bits,
            "lsb_density": layer.lsb_density, "avg_act_bits": layer.average_act_bits,
        })
    return pd.DataFrame(rows, columns=WORKLOAD_COLUMNS)


def _records(frame) -> list[dict]:
    return [{k: plain(k, v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def _layer_counts(layer) -> dict:
    """A layer's counts that the workload totals sum (``WORKLOAD_TOTALS``)."""
    return {"macs": layer.macs, "folded_params": layer.weight_count + layer.bias_count,
            "weight_bytes": layer.weight_bytes, "input_bytes": layer.input_bytes,
            "output_bytes": layer.output_bytes, "gen_macs": layer.gen_macs}


def _workload_totals(graph: LayerGraph) -> dict:
    """The workload's totals (``WORKLOAD_TOTALS``), summed as the per-layer frame's columns."""
    import numpy as np

    counts = [_layer_counts(layer) for layer in graph.layers]
    return {key: np.asarray([c[key] for c in counts]).sum() for key in WORKLOAD_TOTALS}


def _measure(graph: LayerGraph, accel, objective: str,
             per_layer: bool = True) -> tuple[dict, list[dict] | None, dict | None]:
    """Totals, per-layer records (``per_layer``; else None) and (gated models) the gating
    summary of ``graph``."""
    from .cost import cost_frame, evaluate_columns, hardware_totals

    totals = _workload_totals(graph)
    totals["layers"] = len(graph.layers)
    layers = workload_frame(graph) if per_layer else None
    gating = None
    if accel is not None:
        from .gating import gating_summary, is_gated

        costs = evaluate_columns(graph, accel, objective=objective)
        gated = any(is_gated(layer) for layer in graph.layers)
        if per_layer or gated:
            costs = cost_frame(graph, costs)
        if per_layer:
            columns = costs.drop(columns=["op", "mapping"])
            # The cost model's figures win where names overlap: e.g. its gen_macs counts
            # every regeneration pass, the workload's one generation.
            keep = [c for c in layers.columns if c not in columns.columns]
            layers = layers[keep].merge(columns, left_on="name", right_index=True, how="left")
        totals.update({k: v for k, v in hardware_totals(costs, graph, accel).items()
                       if k not in ("model", "accelerator")})
        if gated:
            gating = {k: plain(k, v) for k, v in gating_summary(graph, accel, costs).items()}
    totals = {k: plain(k, v) for k, v in totals.items()}
    return totals, _records(layers) if per_layer else None, gating


def _storage(graph: LayerGraph) -> dict:
    return {k: plain(k, v) for k, v in graph.storage.items()}


def ratios(totals: dict, storage: dict, base_totals: dict, base_storage: dict) -> dict:
    """``{key}_ratio`` = this / baseline for the totals and storage both have (non-zero)."""
    pairs = [(k, totals, base_totals) for k in RATIO_KEYS]
    pairs += [(k, storage, base_storage) for k in STORAGE_RATIO_KEYS]
    out = {}
    for key, this, base in pairs:
        a, b = this.get(key), base.get(key)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b:
            out[f"{key}_ratio"] = a / b
    return out


def evaluate_record(graph: LayerGraph, accel=None, objective: str | None = None,
                    baseline: Baseline | None = None, test_acc: float | None = None,
                    accel_changes: dict | None = None, per_layer: bool = True) -> dict:
    """Map and cost ``graph`` on ``accel`` (``None``: the workload only) and return the record.

    ``baseline`` is costed on the same accelerator and objective; ``test_acc`` (and the
    baseline's) enter the totals when known; ``accel_changes`` (``accelerator_changes``) says
    what ``--set accel.*`` changed in the preset. ``per_layer=False`` leaves the ``layers``
    key out (all ``record_row`` needs; building the per-layer records costs more than the
    evaluation of a seen graph).
    """
    from .accel import accelerator_dict
    from .cost import DEFAULT_OBJECTIVE

    objective = objective or DEFAULT_OBJECTIVE
    totals, layers, gating = _measure(graph, accel, objective, per_layer)
    if test_acc is not None:
        totals["test_acc"] = float(test_acc)
    storage = _storage(graph)
    record = {"model": graph.model, "input_shape": list(graph.input_shape),
              "objective": objective if accel is not None else None,
              "accelerator": accelerator_dict(accel) if accel is not None else None,
              "accelerator_changes": dict(accel_changes or {}),
              "totals": totals, "layers": layers, "storage": storage, "notes": list(graph.notes)}
    if not per_layer:
        del record["layers"]
    if baseline is not None:
        base_totals, _, _ = _measure(baseline.graph, accel, objective, per_layer=False)
        if baseline.test_acc is not None:
            base_totals["test_acc"] = float(baseline.test_acc)
        base_storage = _storage(baseline.graph)
        record["baseline"] = {"model": baseline.graph.model, "changed": baseline.changed or {},
                              "checkpoint": baseline.checkpoint, "totals": base_totals,
                              "storage": base_storage,
                              "ratios": ratios(totals, storage, base_totals, base_storage)}
    if gating is not None:
        record["gating"] = gating
    return record


def record_row(record: dict) -> dict:
    """The record as one flat results row: totals, numeric storage, the baseline's name,
    accuracy and ratios, the gating summary; per-layer records and notes left out."""
    accel = record["accelerator"]
    row = {"model": record["model"], "accelerator": accel["name"] if accel else None,
           "objective": record["objective"],
           "input_shape": "x".join(map(str, record["input_shape"][1:])),
           **record["totals"],
           **{k: v for k, v in record["storage"].items() if isinstance(v, (int, float))}}
    base = record.get("baseline")
    if base is not None:
        row["baseline_model"] = base["model"]
        if "test_acc" in base["totals"]:
            row["baseline_test_acc"] = base["totals"]["test_acc"]
        row.update(base["ratios"])
    row.update(record.get("gating") or {})
    return row


__all__ = ["Baseline", "accelerator_changes", "baseline_kwargs", "baseline_name",
           "dense_counterpart", "evaluate_record", "missing_counterpart_note", "plain", "ratios",
           "record_row", "trace_baseline", "workload_frame"]
