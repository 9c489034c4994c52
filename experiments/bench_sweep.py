"""Sweep speed: a 10,000-point simulation-only sweep through ``hwsim sweep``, then its resume.

Usage: ``flock /tmp/hwsim-heavy.lock python experiments/bench_sweep.py [--runs 7]``. Each run
writes a fresh results table in a temporary folder with the command line as a user types it
(``python -m hwsim.cli sweep experiments/sweeps/bench_10k.yaml``, a process pool of one worker
per core), times it end to end (start-up, tracing, evaluation, table written), checks the table
holds every point, then times the same command again, which finds every point done. Prints
the medians; targets on a 2-core machine: sweep <= 30 s, resume <= 3 s. ``--grid-dram N``
keeps only the first N DRAM bandwidths of the grid (1000 points per value) for a quick check.
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

CONFIG = Path(__file__).parent / "sweeps" / "bench_10k.yaml"


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--grid-dram", type=int, default=None,
                        help="first N DRAM bandwidths only (default: all 10, 10,000 points)")
    args = parser.parse_args()
    config = yaml.safe_load(CONFIG.read_text())
    bandwidths = config["grid"]["accel.dram.bw_bytes_per_cycle"][:args.grid_dram]
    config["grid"]["accel.dram.bw_bytes_per_cycle"] = bandwidths
    sweeps, resumes = [], []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        for run in range(args.runs):
            results = Path(tmp) / f"run{run}.csv"
            path.write_text(yaml.safe_dump({**config, "results": str(results)}))
            command = [sys.executable, "-m", "hwsim.cli", "sweep", str(path), "--no-progress"]
            sweeps.append(timed(command))
            with open(results) as fh:
                rows = sum(1 for _ in fh) - 1
            expected = 1000 * len(bandwidths)
            if rows < expected:  # quoted config fields hold no newlines: one line per row
                raise SystemExit(f"table has {rows} rows, expected {expected}")
            resumes.append(timed(command))
            print(f"run {run + 1}: sweep {sweeps[-1]:.2f} s, resume {resumes[-1]:.2f} s",
                  flush=True)
    points = 1000 * len(bandwidths)
    print(f"{points} points, {args.runs} runs: sweep median {statistics.median(sweeps):.2f} s "
          f"({statistics.median(sweeps) / points * 1e3:.2f} ms/point), resume median "
          f"{statistics.median(resumes):.2f} s")


if __name__ == "__main__":
    main()
