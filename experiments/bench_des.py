"""Benchmark the event-driven simulator on one core: speed, events per second, linear growth.

Times (median of ``--repeats`` runs, one CPU, one thread) of ``hwsim.simulate`` with the
mappings fixed (per-tile costs + the simpy replay + the per-layer table; the mapping search is
``evaluate``'s and timed by bench_cost.py): CIFAR ResNet-18 on systolic_32 and MLG ResNet-18
on mlg_gen; then ResNet-18 with every systolic_32 buffer shrunk by 2, 4, 8, ... (the mapper
cuts more tiles) and at batch 2, 4, 8 (more row tiles), to show that the time grows linearly
with the number of tiles (a least-squares line through all points, its R^2, and the time per
tile at each point).

    taskset -c 0 python experiments/bench_des.py
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch

from hwsim.accel import load_accelerator
from hwsim.cost import evaluate
from hwsim.des import simulate
from hwsim.trace import trace
from models import create_model


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up (imports, caches)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(graph, accel, repeats: int) -> dict:
    df = evaluate(graph, accel)
    mappings = dict(df["mapping"])
    sim = simulate(graph, accel, mappings)
    seconds = median_seconds(lambda: simulate(graph, accel, mappings), repeats)
    tiles = int(df["num_tiles"].sum())
    return {"tiles": tiles, "events": sim.events, "seconds": seconds,
            "events_per_s": sim.events / seconds, "us_per_tile": seconds / tiles * 1e6,
            "latency_cycles_des": sim.latency_cycles,
            "latency_cycles": float(df["latency_cycles"].sum())}


def shrunk(accel, factor: int):
    return load_accelerator(accel.name, {"buffers": {
        b.name: {"size_bytes": b.size_bytes // factor} for b in accel.buffers}})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    torch.set_num_threads(1)

    r18 = trace(create_model("resnet18"), (3, 32, 32))
    mlg = trace(create_model("mlg_resnet18"), (3, 32, 32))
    systolic = load_accelerator("systolic_32")
    header = f"{'run':<34} {'tiles':>7} {'events':>8} {'median s':>9} {'events/s':>9} " \
             f"{'us/tile':>8} {'DES/analytic':>12}"
    print(header)

    def show(label, r):
        print(f"{label:<34} {r['tiles']:>7} {r['events']:>8} {r['seconds']:>9.3f} "
              f"{r['events_per_s']:>9.0f} {r['us_per_tile']:>8.1f} "
              f"{r['latency_cycles_des'] / r['latency_cycles']:>12.4f}")

    show("resnet18 / systolic_32", measure(r18, systolic, args.repeats))
    show("mlg_resnet18 / mlg_gen", measure(mlg, load_accelerator("mlg_gen"), args.repeats))

    points = []
    for factor in (1, 2, 4, 8, 16, 32):
        try:
            accel = shrunk(systolic, factor)
            result = measure(r18, accel, args.repeats)
        except ValueError as exc:  # the smallest legal tile no longer fits
            print(f"buffers / {factor}: {exc}")
            break
        points.append(result)
        show(f"resnet18 / systolic_32, buffers / {factor}", result)
    for batch in (2, 4, 8):
        graph = trace(create_model("resnet18"), (3, 32, 32), batch=batch)
        result = measure(graph, systolic, args.repeats)
        points.append(result)
        show(f"resnet18 / systolic_32, batch {batch}", result)
    tiles = np.array([p["tiles"] for p in points], dtype=float)
    seconds = np.array([p["seconds"] for p in points])
    slope, intercept = np.polyfit(tiles, seconds, 1)
    fitted = slope * tiles + intercept
    r2 = 1 - np.sum((seconds - fitted) ** 2) / np.sum((seconds - seconds.mean()) ** 2)
    print(f"linear fit: seconds = {intercept:.4f} + {slope * 1e6:.2f} us x tiles, R^2 = {r2:.4f}")


if __name__ == "__main__":
    main()
