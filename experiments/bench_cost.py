"""Benchmark the analytical model on one core, and side by side with SCALE-Sim.

Times (median of ``--repeats`` runs, one CPU, one thread): mapping search + evaluation of every
ImageNet ResNet-50 layer on systolic_32, re-evaluation with those mappings fixed, CIFAR
ResNet-18 search + evaluation; then hwsim against SCALE-Sim on the CIFAR ResNet-18 layers on a
32x32 weight-stationary array (its distinct layer shapes plus a few odd ones, as in the golden
data): the speed ratio and the largest compute-cycle difference.
SCALE-Sim's cycles and wall time come from ``tests/golden`` (``experiments/scalesim_golden.py``),
or from a live run with ``--scalesim-python``.

    taskset -c 0 python experiments/bench_cost.py
"""

import argparse
import csv
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch
from scalesim_golden import golden_layers, run_scalesim

from hwsim.accel import load_accelerator
from hwsim.cost import evaluate
from hwsim.layer import LayerGraph
from hwsim.mapping import untiled
from hwsim.trace import trace
from models import create_model

GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "golden"


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up (imports, caches)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


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
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--scalesim-python", default=None,
                        help="run SCALE-Sim live with this interpreter instead of the golden data")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    torch.set_num_threads(1)

    accel = load_accelerator("systolic_32")
    r50 = trace(create_model("resnet50"), (3, 224, 224))
    r18 = trace(create_model("resnet18"), (3, 32, 32))
    fixed = dict(evaluate(r50, accel)["mapping"])
    results = {
        "resnet50 search+evaluate (s)": median_seconds(lambda: evaluate(r50, accel), args.repeats),
        "resnet50 fixed-mapping re-evaluate (s)": median_seconds(
            lambda: evaluate(r50, accel, mappings=fixed), args.repeats),
        "resnet18-cifar search+evaluate (s)": median_seconds(lambda: evaluate(r18, accel),
                                                             args.repeats),
    }

    # Side by side with SCALE-Sim on the golden layers (CIFAR ResNet-18's distinct shapes and
    # a few odd ones), WS 32x32. Cycles: whole-layer tiles, SCALE-Sim's view of a layer; time:
    # hwsim's full search + evaluation of the same layers.
    gemm = golden_layers()
    whole = {layer.name: untiled(layer) for layer in gemm.layers}
    big = load_accelerator("systolic_32", {"buffers": {
        name: {"size_bytes": 1 << 26} for name in ("weight", "input", "output")}})
    ours = evaluate(gemm, big, mappings=whole)["compute_cycles"].to_numpy()
    theirs, scalesim_s = scalesim_reference(gemm, accel, args.scalesim_python)
    worst = max(abs(a - b) / b for a, b in zip(ours, theirs, strict=True))
    hwsim_s = median_seconds(lambda: evaluate(gemm, accel), args.repeats)
    results.update({
        "golden layers search+evaluate (s)": hwsim_s,
        "scalesim golden layers ws 32x32 (s)": scalesim_s,
        "speed-up over scalesim (x)": scalesim_s / hwsim_s,
        "max compute-cycle difference (%)": 100 * worst,
        "total compute cycles hwsim / scalesim": float(ours.sum()) / sum(theirs),
    })
    for key, value in results.items():
        print(f"{key:45s} {value:12.4f}")


if __name__ == "__main__":
    main()
