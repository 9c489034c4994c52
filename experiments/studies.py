"""What the study scripts share: their command line, running their sweep, saving their figure.

A study is one sweep config in ``experiments/sweeps/`` and one script that runs it (finished
points are skipped, trained points reuse their checkpoints), reads back its rows and draws its
figure next to the results table (PNG and SVG) with a small PNG copy in ``docs/``.
"""

import sys
from collections.abc import Callable
from pathlib import Path

from hwsim import plot
from hwsim.cli import Parser, guarded, positive_int
from hwsim.results import read_table
from hwsim.sweep import Sweep, load_sweep, run_sweep

ROOT = Path(__file__).resolve().parent.parent
SWEEPS = ROOT / "experiments" / "sweeps"
DOCS = ROOT / "docs"
DOCS_DPI = 90  # the small copies the README shows
FULL_SCALE_DATA = ("cifar10", "cifar100")  # what the configs' full-scale variants train on


def run(config: str, description: str):
    """Parse ``--set`` / ``--workers``, run the sweep ``experiments/sweeps/<config>`` and return
    it with its ``ok`` rows (only the points of this config, whatever else the table holds, in
    its point order)."""
    parser = Parser(prog=Path(sys.argv[0]).name, description=description)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key of the sweep config, e.g. base.train.epochs=200")
    parser.add_argument("--workers", type=positive_int, default=None, metavar="N",
                        help="pool size (default: cores)")
    args = parser.parse_args()
    sweep = load_sweep(SWEEPS / config, args.set)
    report = run_sweep(sweep, workers=args.workers)
    print(f"{report.total} points, {report.ran} run, {report.failed} failed: {sweep.results}")
    table = read_table(sweep.results)
    ours = table["config_hash"].isin({p.config_hash for p in sweep.points})
    failed = table[ours & (table["status"] != "ok")]
    for error in failed["error"].unique():
        print(f"error ({(failed['error'] == error).sum()} points): {error}")
    # Rows in the config's point order (the table holds them in finishing order), so that
    # colours and legends follow the config from run to run.
    order = {p.config_hash: i for i, p in enumerate(sweep.points)}
    rows = table[ours & (table["status"] == "ok")]
    return sweep, rows.sort_values("config_hash", key=lambda h: h.map(order)).reset_index(drop=True)


def command(study: Callable[[], None]) -> None:
    """Run a study's ``main`` as a command: bad input (a ``--set`` key, a value of the sweep
    config) is one line on stderr and exit code 2, as for ``hwsim sweep``."""
    sys.exit(guarded(lambda: study() or 0, prog=Path(sys.argv[0]).name))


def save(figure: Callable, sweep: Sweep, docs_name: str) -> None:
    """``figure()`` saved next to the results table (PNG and SVG) and as ``docs/<docs_name>``."""
    for path in plot.save(figure(), sweep.results.with_suffix("")):
        print(f"wrote {path}")
    for path in plot.save(figure(), DOCS / docs_name, dpi=DOCS_DPI):
        print(f"wrote {path}")


def training_note(sweep: Sweep) -> str:
    """Where the accuracies come from, for a figure: data set, epochs and the scale of the
    runs (small unless the sweep was pointed at CIFAR)."""
    config = sweep.points[0].config
    data, epochs = config["data"]["name"], config["train"]["epochs"]
    scale = "full-scale" if data in FULL_SCALE_DATA else "small-scale"
    return f"accuracy: {data} test set, {epochs} epochs from scratch ({scale} runs)"


def show(table, columns: list[str], by: list[str]) -> None:
    """Print ``columns`` of ``table`` sorted ``by``, four significant digits."""
    print(table[columns].sort_values(by).to_string(index=False,
                                                   float_format=lambda v: f"{v:.4g}"))
