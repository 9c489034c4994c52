"""Run SCALE-Sim on CIFAR ResNet-18's layer shapes and a few extras; save golden cycles.

Writes ``tests/golden/scalesim_<dataflow>.csv`` (one row per layer: the GEMM, the array,
SCALE-Sim's total and stall cycles) and ``tests/golden/scalesim_timing.csv`` (SCALE-Sim's wall
time per dataflow; with ``--jobs 1`` for a clean timing). ``tests/test_scalesim_golden.py``
compares hwsim against these files without SCALE-Sim.

SCALE-Sim 3.0.0 breaks under numpy >= 2 (it calls ``int()`` on a 1-element array), so run it
from its own environment:
    python -m venv /tmp/ssvenv && /tmp/ssvenv/bin/pip install scalesim 'numpy<2'
    python experiments/scalesim_golden.py --scalesim-python /tmp/ssvenv/bin/python
"""

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hwsim.accel import load_accelerator
from hwsim.export import scalesim_files
from hwsim.layer import Layer, LayerGraph
from hwsim.trace import trace
from models import create_model

GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "golden"
FIELDS = ("layer", "ifmap_h", "ifmap_w", "kh", "kw", "channels", "filters", "stride", "rows",
          "cols", "dataflow", "scalesim_total_cycles", "scalesim_stall_cycles")
ARRAYS = {"ws": (32, 32), "os": (32, 32), "is": (16, 8)}


def golden_layers() -> LayerGraph:
    """CIFAR ResNet-18's distinct layer shapes, plus odd shapes it does not cover.

    Repeated shapes are run once (SCALE-Sim takes ~20 s per layer); the extras are a 7x7/2
    stem, non-multiple-of-array sizes and a small linear layer.
    """
    seen, layers = set(), []
    for layer in trace(create_model("resnet18"), (3, 32, 32)).layers:
        shape = (layer.op, layer.in_channels, layer.out_channels, layer.in_hw, layer.out_hw,
                 layer.kernel_size, layer.stride, layer.padding)
        if layer.has_weights and shape not in seen:
            seen.add(shape)
            layers.append(layer)
    layers += [
        Layer("stem7x7", "conv", 1, 3, 64, (56, 56), (28, 28), (7, 7), (2, 2), (3, 3)),
        Layer("odd3x3", "conv", 1, 24, 40, (15, 15), (13, 13), (3, 3)),
        Layer("wide1x1", "conv", 1, 96, 200, (9, 9), (9, 9)),
        Layer("fc300", "linear", 1, 300, 10, (1, 1), (1, 1)),
    ]
    return LayerGraph("golden", (3, 32, 32), tuple(layers))


def run_scalesim(python: str, graph: LayerGraph, accel, workdir: Path) -> tuple[list, float]:
    """Export, run SCALE-Sim once, return its COMPUTE_REPORT rows and the wall time (s)."""
    files, _ = scalesim_files(graph, accel)
    for name, text in files.items():
        (workdir / name).write_text(text)
    topology, layout, config = (str(workdir / name) for name in files)
    start = time.perf_counter()
    subprocess.run([python, "-m", "scalesim.scale", "-c", config, "-t",
                    topology, "-l", layout, "-p", str(workdir / "logs"),
                    "-s", "N"], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    report = next((workdir / "logs").rglob("COMPUTE_REPORT.csv"))
    with open(report) as fh:
        rows = [[cell.strip() for cell in line.split(",")] for line in fh.read().splitlines()[1:]]
    return rows, seconds


def golden_for(python: str, graph: LayerGraph, flow: str) -> tuple[list, float]:
    """Golden rows of one dataflow and SCALE-Sim's wall time."""
    rows, cols = ARRAYS[flow]
    accel = load_accelerator("systolic_32", {"array": {"rows": rows, "cols": cols,
                                                       "dataflow": flow}})
    with tempfile.TemporaryDirectory() as tmp:
        report, seconds = run_scalesim(python, graph, accel, Path(tmp))
        with open(Path(tmp) / f"{graph.model}.csv") as fh:
            exported = list(csv.reader(fh))[1:]
    golden = [spec[:8] + [rows, cols, flow, result[2], result[3]]
              for spec, result in zip(exported, report, strict=True)]
    return golden, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scalesim-python", default=sys.executable,
                        help="python interpreter that has scalesim installed")
    parser.add_argument("--dataflows", default="ws,os,is")
    parser.add_argument("--jobs", type=int, default=2, help="SCALE-Sim runs in parallel")
    args = parser.parse_args()
    flows = args.dataflows.split(",")
    graph = golden_layers()  # traced once: torch.fx tracing is not thread-safe
    with ThreadPoolExecutor(args.jobs) as pool:
        results = dict(zip(flows, pool.map(
            lambda f: golden_for(args.scalesim_python, graph, f), flows), strict=True))
    for flow, (golden, _) in results.items():
        with open(GOLDEN / f"scalesim_{flow}.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(FIELDS)
            writer.writerows(golden)
    with open(GOLDEN / "scalesim_timing.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(("dataflow", "rows", "cols", "layers", "jobs", "scalesim_seconds"))
        writer.writerows((flow, *ARRAYS[flow], len(golden), args.jobs, f"{seconds:.2f}")
                         for flow, (golden, seconds) in results.items())


if __name__ == "__main__":
    main()
