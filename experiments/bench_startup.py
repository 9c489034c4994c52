"""Start-up time of the command line: help, list, version and argument errors.

Each command runs as a fresh process (``python -m hwsim.cli ...`` from the repository root,
what the ``hwsim`` script runs), several times; the table gives the median and the range of
the wall times, beside a bare ``python -c pass`` for the interpreter's own start-up. The
target is 0.5 s for every row but the last, which traces and costs a model (torch imported).

    python experiments/bench_startup.py [--repeat 7]
"""

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {
    "python -c pass (interpreter only)": ["-c", "pass"],
    "import hwsim": ["-c", "import hwsim"],
    "hwsim --help": ["-m", "hwsim.cli", "--help"],
    "hwsim --version": ["-m", "hwsim.cli", "--version"],
    "hwsim list": ["-m", "hwsim.cli", "list"],
    **{f"hwsim {name} --help": ["-m", "hwsim.cli", name, "--help"]
       for name in ("run", "compare", "list", "export", "train", "pipeline", "sweep", "plot")},
    "error: unknown command": ["-m", "hwsim.cli", "frobnicate"],
    "error: run --batch 0": ["-m", "hwsim.cli", "run", "--model", "resnet18", "--batch", "0"],
    "error: run --model resnt18": ["-m", "hwsim.cli", "run", "--model", "resnt18"],
    "error: run --set model.depth=3": ["-m", "hwsim.cli", "run", "--model", "resnet18",
                                       "--set", "model.depth=3"],
    "error: run --accel systolik_32": ["-m", "hwsim.cli", "run", "--model", "resnet18",
                                       "--accel", "systolik_32"],
    "error: compare --set mlg.base_in=2": ["-m", "hwsim.cli", "compare", "--model", "resnet20",
                                           "--set", "mlg.base_in=2"],
    "run resnet20 width 0.25 (for scale)": ["-m", "hwsim.cli", "run", "--model", "resnet20",
                                            "--set", "model.width=0.25"],
}


def wall_times(argv: list[str], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, check=False)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="runs per command, e.g. 7")
    args = parser.parse_args()
    print(f"{'command':<40} {'median s':>9} {'min s':>7} {'max s':>7}   ({args.repeat} runs)")
    for label, argv in COMMANDS.items():
        times = wall_times(argv, args.repeat)
        print(f"{label:<40} {statistics.median(times):>9.3f} {min(times):>7.3f} "
              f"{max(times):>7.3f}")


if __name__ == "__main__":
    main()
