"""Why channel gating realizes less than its ideal: what-if runs of a trained CG checkpoint.

The gated layers' ideal and realized speed-up (``hwsim.gating.gating_summary``) as modelled,
then with the array fills not paid (the cost model's ``fill_cycles`` set to 0 for this process,
the mapper re-run), then also with every channel at its layer's mean gate share (no busiest
column), on ``--accel``; then the same measured gates on the network traced at larger inputs
and batches. The densities are measured on the checkpoint pipeline's calibration batches, as
``hwsim run --checkpoint`` does. What-ifs of the model, not settings of it.

    python experiments/gating_gap.py runs/cg_resnet20_digits/last.pt [--accel systolic_32]
"""

import argparse
import dataclasses

from studies import command

import hwsim.cost as cost
from hwsim import load_accelerator, trace
from hwsim.gating import gating_summary, ungated
from hwsim.pipeline import (
    calibration_batches,
    calibration_set,
    checkpoint_hardware,
    load_checkpoint_model,
)


def uniform_gates(graph):
    """``graph`` with each channel-gated layer's channels all at the layer's mean share."""
    return dataclasses.replace(graph, layers=tuple(
        dataclasses.replace(layer, gate_channel_density=(
            sum(layer.gate_channel_density) / layer.out_channels,) * layer.out_channels)
        if layer.channel_gated else layer for layer in graph.layers))


def with_gates_of(graph, measured):
    """``graph`` (the same network at another input size) with ``measured``'s gate fields."""
    by_name = {layer.name: layer for layer in measured.layers}
    keys = ("mac_density", "gate_base_fraction", "gate_channel_density")
    return dataclasses.replace(graph, layers=tuple(
        dataclasses.replace(layer, **{k: getattr(by_name[layer.name], k) for k in keys})
        if by_name[layer.name].channel_gated else layer for layer in graph.layers))


def line(label: str, graph, accel) -> str:
    s = gating_summary(graph, accel, cost.evaluate(graph, accel))
    ideal, realized = s["gated_layers_ideal_speedup"], s["gated_layers_realized_speedup"]
    return (f"{label:<44} gated layers {realized:.3f}x of {ideal:.3f}x (ratio "
            f"{realized / ideal:.2f}); model {s['realized_speedup']:.3f}x of "
            f"{s['ideal_speedup']:.3f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--accel", default="systolic_32")
    args = parser.parse_args()
    model, meta = load_checkpoint_model(args.checkpoint)
    hw = checkpoint_hardware(meta)
    calib_set = calibration_set(model, meta.get("data"), hw["root"], hw["split"])
    calib = (calibration_batches(calib_set, hw["calib_batches"], hw["calib_batch_size"])
             if calib_set is not None else None)  # None: no gated layers at all
    shape = tuple(meta["input_shape"])
    graph = trace(model, shape, calib=calib)
    if not any(layer.channel_gated for layer in graph.layers):
        raise ValueError(f"{args.checkpoint}: no channel-gated layers (a cg_* model's "
                         f"checkpoint is needed)")
    accel = load_accelerator(args.accel)
    print(line("as modelled", graph, accel))
    dense_with_fills = cost.evaluate(ungated(graph), accel)["compute_cycles"].sum()
    real_fill = cost.fill_cycles
    cost.fill_cycles = lambda array: 0
    cost.search_space.cache_clear()
    try:
        if cost.evaluate(ungated(graph), accel)["compute_cycles"].sum() >= dense_with_fills:
            raise SystemExit("the what-if did not take: fills are no longer cost.fill_cycles")
        print(line("array fills not paid", graph, accel))
        print(line("... and no busiest column (mean shares)", uniform_gates(graph), accel))
    finally:
        cost.fill_cycles = real_fill
        cost.search_space.cache_clear()
    for side in (2 * shape[1], 4 * shape[1], 7 * shape[1]):
        bigger = with_gates_of(trace(model, (shape[0], side, side)), graph)
        print(line(f"same gates, {side}x{side} input", bigger, accel))
    for batch in (4, 16):
        print(line(f"same gates, batch {batch}", with_gates_of(
            trace(model, shape, batch=batch), graph), accel))


if __name__ == "__main__":
    command(main)
