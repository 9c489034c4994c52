"""Benchmark the analytical model on one core, and side by side with SCALE-Sim.

Medians of ``--repeats`` runs (21: on a shared machine a median of 7 moves with the load),
one CPU, one thread, of ``evaluate`` + ``hardware_totals``:
- CIFAR ResNet-18 and ImageNet ResNet-50 on systolic_32, cold (the graph's candidate space is
  built in the run: a freshly traced graph) and warm (built by an earlier call);
- one more accelerator on an already traced ResNet-18 (a buffer size not seen before, so only
  the per-graph, per-array-shape part is reused);
- a fixed-mapping re-evaluation of ResNet-50;
- the SCALE-Sim comparison: hwsim's search + evaluation of the golden layers (CIFAR ResNet-18's
  distinct layer shapes plus four odd ones, 32x32 WS) against SCALE-Sim's wall time on the same
  layers, recorded in ``tests/golden/scalesim_timing.csv`` when the golden data were made
  (``--scalesim-python`` reruns SCALE-Sim live instead), and the largest compute-cycle
  difference with whole-layer tiles (SCALE-Sim's view of a layer).

    flock /tmp/hwsim-heavy.lock taskset -c 0 python experiments/bench_cost.py
"""

import argparse
import csv
import itertools
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
# This checkout's hwsim, not an installed one (the script's folder comes first on sys.path).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from scalesim_golden import golden_layers, run_scalesim

from hwsim import cost, mapping
from hwsim.accel import load_accelerator
from hwsim.cost import evaluate, hardware_totals
from hwsim.layer import LayerGraph
from hwsim.mapping import untiled
from hwsim.trace import trace
from models import create_model

GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "golden"
TARGETS_MS = {"resnet18-cifar systolic_32 cold": 5, "resnet50 systolic_32 cold": 25,
              "resnet18-cifar one more accelerator": 3}


def median_ms(fn, repeats: int, setup=None) -> float:
    """Median wall time of ``fn()`` in ms; ``setup()`` runs untimed before each run."""
    if setup:
        setup()
    fn()  # warm-up (imports, first-call caches of numpy / pandas)
    times = []
    for _ in range(repeats):
        if setup:
            setup()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def cold() -> None:
    """Forget every graph's cached candidate space, as for a freshly traced graph."""
    mapping.unique_layers.cache_clear()
    mapping.candidate_space.cache_clear()
    cost.search_space.cache_clear()


def run(graph: LayerGraph, accel, mappings=None):
    return hardware_totals(evaluate(graph, accel, mappings=mappings), graph, accel)


def scalesim_reference(graph: LayerGraph, accel, python: str | None) -> tuple[list[int], float]:
    """SCALE-Sim's total cycles per layer of ``graph`` and its wall time, recorded or live."""
    if python:
        with tempfile.TemporaryDirectory() as tmp:
            report, seconds = run_scalesim(python, graph, accel, Path(tmp))
        return [int(row[2]) for row in report], seconds
    with open(GOLDEN / "scalesim_ws.csv") as fh:
        cycles = [int(row["scalesim_total_cycles"]) for row in csv.DictReader(fh)]
    with open(GOLDEN / "scalesim_timing.csv") as fh:
        seconds = next(float(r["scalesim_seconds"]) for r in csv.DictReader(fh)
                       if r["dataflow"] == "ws")
    return cycles, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--scalesim-python", default=None,
                        help="run SCALE-Sim live with this interpreter, not the recorded time")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    torch.set_num_threads(1)

    accel = load_accelerator("systolic_32")
    r18 = trace(create_model("resnet18"), (3, 32, 32))
    r20 = trace(create_model("resnet20"), (3, 32, 32))
    r50 = trace(create_model("resnet50"), (3, 224, 224))
    fixed = dict(evaluate(r50, accel)["mapping"])
    sizes = itertools.count(1)
    fresh = {}

    def another():  # an accelerator with a weight buffer size no earlier run has seen
        kb = 64 + next(sizes)
        fresh["accel"] = load_accelerator("systolic_32", {"buffers": {"weight": {
            "size_bytes": kb * 1024}}})

    ms = {
        "resnet18-cifar systolic_32 cold": median_ms(lambda: run(r18, accel), args.repeats, cold),
        "resnet18-cifar systolic_32 warm": median_ms(lambda: run(r18, accel), args.repeats),
        "resnet18-cifar one more accelerator": median_ms(lambda: run(r18, fresh["accel"]),
                                                         args.repeats, another),
        "resnet20-cifar systolic_32 warm": median_ms(lambda: run(r20, accel), args.repeats),
        "resnet50 systolic_32 cold": median_ms(lambda: run(r50, accel), args.repeats, cold),
        "resnet50 systolic_32 warm": median_ms(lambda: run(r50, accel), args.repeats),
        "resnet50 fixed mappings": median_ms(lambda: run(r50, accel, fixed), args.repeats),
    }
    gemm = golden_layers()
    big = load_accelerator("systolic_32", {"buffers": {
        name: {"size_bytes": 1 << 26} for name in ("weight", "input", "output")}})
    whole = {layer.name: untiled(layer) for layer in gemm.layers}
    ours = evaluate(gemm, big, mappings=whole)["compute_cycles"].to_numpy()
    theirs, scalesim_s = scalesim_reference(gemm, accel, args.scalesim_python)
    worst = max(abs(a - b) / b for a, b in zip(ours, theirs, strict=True))
    ms["golden layers systolic_32 cold"] = median_ms(lambda: run(gemm, accel), args.repeats,
                                                     cold)
    for key, value in ms.items():
        target = f"  (target <= {TARGETS_MS[key]} ms)" if key in TARGETS_MS else ""
        print(f"{key:42s} {value:9.2f} ms{target}")
    print(f"{'scalesim golden layers ws 32x32 (recorded)':42s} {scalesim_s:9.2f} s")
    speedup = 1e3 * scalesim_s / ms["golden layers systolic_32 cold"]
    print(f"{'speed-up over scalesim':42s} {speedup:9.0f} x")
    print(f"{'max compute-cycle difference':42s} {100 * worst:9.3f} %")


if __name__ == "__main__":
    main()
