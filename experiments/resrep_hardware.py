"""ResRep on hardware: dense vs pruned ResNet-50, with and without widths rounded to the array.

The pruned network is the seed's published result (its final inner widths, from the ResNet-50
training log: 45.5% of the FLOPs remain); "rounded" takes those widths up to multiples of
``--multiple`` (systolic_32's 32 columns by default), a hardware-only what-if of pruning with
``resrep.width_multiple``. Every model is costed on each accelerator at batch 1; the table
(ratios against the dense model) goes to experiments/results/resrep_hardware.csv.

    python experiments/resrep_hardware.py [--accel systolic_32 eyeriss_like] [--multiple 32]
"""

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

import models
from hwsim import evaluate, hardware_totals, load_accelerator, trace
from models.checkpoint import atomic_write_bytes
from models.layers.resrep import rounded_widths

SEED_RESNET50_WIDTHS = [22, 22, 23, 36, 1, 1, 62, 97, 16, 49, 38, 68, 41, 92, 189, 204, 69, 145,
                        65, 139, 64, 94, 67, 89, 86, 95, 473, 488, 171, 281, 511, 512]
FULL_RESNET50_WIDTHS = [64] * 6 + [128] * 8 + [256] * 12 + [512] * 6
COLUMNS = ("macs", "weight_dram_bytes", "dram_bytes", "compute_cycles", "latency_cycles",
           "energy_pj", "utilization")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accel", nargs="+", default=["systolic_32", "eyeriss_like"])
    parser.add_argument("--multiple", type=int, default=32)
    parser.add_argument("--out", default="experiments/results/resrep_hardware.csv")
    args = parser.parse_args()
    rounded = rounded_widths(np.array(SEED_RESNET50_WIDTHS), np.array(FULL_RESNET50_WIDTHS),
                             args.multiple).tolist()
    variants = {"dense": models.create_model("resnet50"),
                "pruned": models.create_model("resrep_resnet50", converted=True,
                                              channels=SEED_RESNET50_WIDTHS),
                f"pruned, widths x{args.multiple}": models.create_model(
                    "resrep_resnet50", converted=True, channels=rounded)}
    graphs = {name: trace(model, (3, 224, 224)) for name, model in variants.items()}
    rows = []
    for accel_name in args.accel:
        accel = load_accelerator(accel_name)
        dense = None
        for name, graph in graphs.items():
            totals = hardware_totals(evaluate(graph, accel), graph, accel)
            dense = dense or totals
            rows.append({"accelerator": accel.name, "model": name,
                         **{key: totals[key] for key in COLUMNS},
                         **{f"{key}_ratio": totals[key] / dense[key] for key in COLUMNS}})
    table = pd.DataFrame(rows)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out, table.to_csv(index=False).encode())
    shown = ["accelerator", "model", "macs_ratio", "dram_bytes_ratio", "latency_cycles_ratio",
             "energy_pj_ratio", "utilization"]
    print(table[shown].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
