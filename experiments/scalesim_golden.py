"""Run SCALE-Sim on CIFAR ResNet-18 and a few extra layers; save its cycles as golden data.

Writes ``tests/golden/scalesim_<dataflow>.csv`` (one row per layer: the GEMM, the array, SCALE-Sim's
total and stall cycles) and ``tests/golden/scalesim_timing.csv`` (SCALE-Sim wall time of each
run). ``tests/test_scalesim_golden.py`` compares hwsim against these files without SCALE-Sim.

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
from pathlib import Path

from hwsim.accel import load_accelerator
from hwsim.export import export_scalesim
from hwsim.layer import Layer, LayerGraph
from hwsim.trace import trace
from models import create_model

GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "golden"
FIELDS = ("layer", "ifmap_h", "ifmap_w", "kh", "kw", "channels", "filters", "stride", "rows",
          "cols", "dataflow", "scalesim_total_cycles", "scalesim_stall_cycles")


def extra_layers() -> LayerGraph:
    """Odd shapes the ResNet does not cover: 7x7/2 stem, non-square array folds, tiny GEMMs."""
    layers = (
        Layer("stem7x7", "conv", 1, 3, 64, (56, 56), (28, 28), (7, 7), (2, 2), (3, 3)),
        Layer("odd3x3", "conv", 1, 24, 40, (15, 15), (13, 13), (3, 3)),
        Layer("wide1x1", "conv", 1, 96, 200, (9, 9), (9, 9)),
        Layer("fc", "linear", 1, 300, 10, (1, 1), (1, 1)),
    )
    return LayerGraph("extra", (3, 56, 56), layers)


def run_scalesim(python: str, graph: LayerGraph, accel, workdir: Path) -> tuple[list, float]:
    """Export, run SCALE-Sim once, return its COMPUTE_REPORT rows and the wall time (s)."""
    paths = export_scalesim(graph, accel, workdir)
    start = time.perf_counter()
    subprocess.run([python, "-m", "scalesim.scale", "-c", paths["config"], "-t",
                    paths["topology"], "-l", paths["layout"], "-p", str(workdir / "logs"),
                    "-s", "N"], check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    report = next((workdir / "logs").rglob("COMPUTE_REPORT.csv"))
    with open(report) as fh:
        rows = [[cell.strip() for cell in line.split(",")] for line in fh.read().splitlines()[1:]]
    return rows, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scalesim-python", default=sys.executable,
                        help="python interpreter that has scalesim installed")
    parser.add_argument("--dataflows", default="ws,os,is")
    args = parser.parse_args()
    graphs = [trace(create_model("resnet18"), (3, 32, 32)), extra_layers()]
    arrays = {"ws": (32, 32), "os": (32, 32), "is": (16, 8)}
    timing = []
    for flow in args.dataflows.split(","):
        rows, cols = arrays[flow]
        accel = load_accelerator("systolic_32", {"array": {"rows": rows, "cols": cols,
                                                           "dataflow": flow}})
        golden = []
        for graph in graphs:
            with tempfile.TemporaryDirectory() as tmp:
                report, seconds = run_scalesim(args.scalesim_python, graph, accel, Path(tmp))
                with open(Path(tmp) / f"{graph.model}.csv") as fh:
                    exported = list(csv.reader(fh))[1:]
            timing.append((graph.model, flow, rows, cols, len(report), f"{seconds:.2f}"))
            for spec, result in zip(exported, report, strict=True):
                golden.append(spec[:8] + [rows, cols, flow, result[2], result[3]])
        with open(GOLDEN / f"scalesim_{flow}.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(FIELDS)
            writer.writerows(golden)
    with open(GOLDEN / "scalesim_timing.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(("model", "dataflow", "rows", "cols", "layers", "scalesim_seconds"))
        writer.writerows(timing)


if __name__ == "__main__":
    main()
