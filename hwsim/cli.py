"""hwsim command line: run, compare, list, export, train, pipeline, sweep, plot.

A thin layer over the library: it parses arguments, resolves one config dict (the same dotted
``--set`` keys for every command), calls the library and prints. Bad input is one line on stderr
and exit code 2 (an internal error: one line, exit 1); ``HWSIM_DEBUG=1`` shows the traceback
instead. Help, ``list`` and argument errors answer before torch, pandas or numpy are imported
(``hwsim.catalog``); each command imports what it needs.
"""

import argparse
import dataclasses
import math
import os
import re
import signal
import sys
import threading
from pathlib import Path

from models.arguments import check_type

from . import catalog
from .config import METHOD_NAMESPACES, apply_overrides, dump_yaml, load_yaml

RUN_NAMESPACES = ("model", "accel", "trace", *METHOD_NAMESPACES)
TRACE_KEYS = {"weight_bits": int, "act_bits": int}
FORMATS = ("table", "csv", "json")
SIMS = ("analytic", "event")
DEFAULT_ACCEL = "systolic_32"
OBJECTIVES, DEFAULT_OBJECTIVE = catalog.OBJECTIVES, catalog.DEFAULT_OBJECTIVE


class UsageError(ValueError):
    """Bad command-line input; printed as one line."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are ``UsageError``s (one line through ``guarded``)."""

    def error(self, message: str):
        raise UsageError(f"{self.prog}: {message}")


def _input_shape(text: str) -> tuple[int, int, int]:
    if not re.fullmatch(r"\d+x\d+x\d+", text or "") or 0 in (dims := tuple(
            int(d) for d in text.split("x"))):
        raise argparse.ArgumentTypeError(
            f"expected CxHxW with positive integers, e.g. 3x32x32, got {text!r}")
    return dims


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    if not re.fullmatch(r"\d+", text or ""):
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return int(text)


def _seed_style_sets(extra: list[str]) -> list[str]:
    """Turn seed-style ``--mlg.base_in=2`` / ``--mlg.base_in 2`` into ``mlg.base_in=2``."""
    items, i = [], 0
    while i < len(extra):
        arg = extra[i]
        if not (arg.startswith("--") and "." in arg.split("=")[0]):
            raise UsageError(f"unrecognized argument {arg!r}")
        if "=" in arg:
            items.append(arg[2:])
        elif i + 1 < len(extra):
            items.append(f"{arg[2:]}={extra[i + 1]}")
            i += 1
        else:
            raise UsageError(f"argument {arg}: expected a value")
        i += 1
    return items


class _Version(argparse.Action):
    """``--version``: the installed package version, looked up only when asked."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        import hwsim

        print(f"hwsim {hwsim.__version__}")
        parser.exit()


EXAMPLES = """examples:
  hwsim list
  hwsim run --model mlg_resnet18 --accel mlg_gen
  hwsim run --model resnet20 --set accel.array.rows=16 --layers
  hwsim compare --model resnet18 mlg_resnet18 --accel systolic_32 mlg_gen
  hwsim pipeline experiments/configs/default.yaml

hwsim COMMAND --help shows a command's options."""


def _command(sub, name: str, text: str, *examples: str) -> argparse.ArgumentParser:
    """A subcommand whose help ends with its examples."""
    lines = "\n".join(f"  {example}" for example in examples)
    return sub.add_parser(name, help=text, description=f"{text}.\n\nexamples:\n{lines}",
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="hwsim", description=__doc__.splitlines()[0], epilog=EXAMPLES,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action=_Version, help="print the hwsim version and exit")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser,
                                metavar="COMMAND")

    run = _command(sub, "run", "trace a model and evaluate it on an accelerator",
                   "hwsim run --model mlg_resnet18 --accel mlg_gen",
                   "hwsim run --model resnet20 --set accel.array.rows=16 --layers",
                   "hwsim run --checkpoint runs/default/last.pt --data digits --format json")
    _model_options(run)
    run.add_argument("--checkpoint", metavar="FILE",
                     help="trained checkpoint; the model is rebuilt from it, e.g. "
                          "runs/default/last.pt")
    run.add_argument("--data", metavar="NAME", choices=catalog.DATASETS,
                     help=f"dataset to measure the checkpoints' test_acc on: "
                          f"{', '.join(catalog.DATASETS)}; e.g. digits")
    run.add_argument("--data-root", metavar="DIR",
                     help="folder with the dataset files, e.g. ~/data/cifar10")
    run.add_argument("--accel", default=DEFAULT_ACCEL, metavar="NAME|FILE",
                     help=f"accelerator preset or YAML file, e.g. mlg_gen or my_accel.yaml "
                          f"(default {DEFAULT_ACCEL}); none: the workload only")
    run.add_argument("--calib", type=_non_negative_int, metavar="N",
                     help="calibration batches of training images run through a checkpoint's "
                          "gated layers before tracing, e.g. --calib 4 (default: the "
                          "checkpoint pipeline's hardware.calib_batches and calib_batch_size, "
                          f"else {catalog.CALIB_BATCHES} of 64; 0: none, densities 1.0)")
    run.add_argument("--baseline", default="auto", metavar="auto|none|NAME",
                     help="dense model to compare with: auto (the dense counterpart of a "
                          "compressed model, e.g. resnet18 for mlg_resnet18), none, or a "
                          "model name, e.g. --baseline resnet20")
    run.add_argument("--baseline-checkpoint", metavar="FILE",
                     help="trained dense model to compare with, its test_acc beside the "
                          "compressed one's (needs --data), e.g. runs/resnet18/last.pt")
    run.add_argument("--sim", choices=SIMS, default="analytic",
                     help="event: also replay the tiles in the event-driven simulator and add "
                          "its columns, e.g. --sim event (default analytic)")
    run.add_argument("--layers", action="store_true",
                     help="also print the per-layer table (as wide as the terminal; every "
                          "column is in --format csv), e.g. --layers")
    _common(run)

    compare = _command(sub, "compare", "several models and/or accelerators side by side",
                       "hwsim compare --model resnet18 mlg_resnet18 --accel systolic_32 "
                       "mlg_gen",
                       "hwsim compare --model resnet20 --accel systolic_32 bitserial_32 "
                       "bitfusion_16 --format csv")
    compare.add_argument("--model", nargs="+", required=True, metavar="NAME",
                         help="registered models, e.g. --model resnet18 mlg_resnet18")
    compare.add_argument("--accel", nargs="+", default=[DEFAULT_ACCEL], metavar="NAME|FILE",
                         help="accelerators, each model runs on each, e.g. --accel "
                              f"systolic_32 mlg_gen (default {DEFAULT_ACCEL})")
    _shape_options(compare)
    _set_option(compare, "model.*, accel.*, trace.*, mlg.* ... applied to every column "
                         "that takes them, e.g. --set accel.dram.bw_bytes_per_cycle=8")
    compare.add_argument("--format", choices=FORMATS, default="table",
                         help="table (default), csv (one results row per column) or json "
                              "(the records without per-layer rows), e.g. --format csv")

    lst = _command(sub, "list", "list models and accelerators", "hwsim list",
                   "hwsim list accelerators")
    lst.add_argument("what", nargs="?", choices=("models", "accelerators"), default=None,
                     help="only models or only accelerators, e.g. hwsim list models")

    export = _command(sub, "export", "write the workload for a peer tool",
                      "hwsim export --model resnet18 --format scalesim --out scalesim_in")
    export.add_argument("--model", required=True, metavar="NAME",
                        help="registered model name, e.g. resnet18")
    export.add_argument("--accel", default=DEFAULT_ACCEL, metavar="NAME|FILE",
                        help=f"accelerator whose array the config describes, e.g. "
                             f"bitserial_32 (default {DEFAULT_ACCEL})")
    export.add_argument("--format", choices=("scalesim",), default="scalesim",
                        help="peer tool's format, e.g. --format scalesim (the default)")
    export.add_argument("--batch", type=positive_int, default=1, metavar="N",
                        help="batch size, e.g. --batch 4 (default 1)")
    export.add_argument("--input", type=_input_shape, metavar="CxHxW",
                        help="input shape, e.g. 3x64x64 (default: the model's)")
    export.add_argument("--out", required=True, metavar="DIR",
                        help="output folder, e.g. scalesim_in")
    _set_option(export, "model.*, accel.*, trace.* overrides, e.g. model.width=0.5")

    for name, text, example in (
            ("train", "train a model from a YAML config",
             "hwsim train experiments/configs/default.yaml --set optimizer.lr=0.05"),
            ("pipeline", "train, measure accuracy, trace, simulate, append results",
             "hwsim pipeline experiments/configs/default.yaml")):
        cmd = _command(sub, name, text, example)
        cmd.add_argument("config", help="YAML config, e.g. experiments/configs/default.yaml")
        cmd.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                         help="dotted override, e.g. optimizer.lr=0.05 (repeatable)")
        cmd.add_argument("--name", metavar="NAME",
                         help="run folder name under --runs-dir, e.g. resnet20-lr05 (default: "
                              "the config file's name and the UTC time, a fresh folder per run)")
        cmd.add_argument("--runs-dir", metavar="DIR",
                         help="folder the run folders go in, e.g. /scratch/runs (default: runs)")
        cmd.add_argument("--resume", action="store_true",
                         help="continue the run --name NAME from its last checkpoint, e.g. "
                              "after an interruption")
        cmd.add_argument("--overwrite", action="store_true",
                         help="delete the run --name NAME and start it again, e.g. after "
                              "fixing its config")
        cmd.add_argument("--no-progress", action="store_true",
                         help="hide progress bars, e.g. in batch jobs")
    _sweep_parsers(sub)
    return parser


def _sweep_parsers(sub) -> None:
    """``hwsim sweep`` and ``hwsim plot tradeoff|breakdown|roofline|timeline``."""
    sweep = _command(sub, "sweep", "run a grid of design points into one results table",
                     "hwsim sweep experiments/sweeps/buffer_bandwidth.yaml --workers 2",
                     "hwsim sweep experiments/sweeps/mlg_tradeoff.yaml --dry-run")
    sweep.add_argument("config", help="sweep YAML, e.g. experiments/sweeps/mlg_tradeoff.yaml")
    sweep.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a key of the sweep config, e.g. results=out.csv")
    sweep.add_argument("--executor", choices=("local", "dask"), default="local",
                       help="local process pool (default) or Dask distributed, e.g. "
                            "--executor dask")
    sweep.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                       help="address of a running Dask scheduler (implies --executor dask), "
                            "e.g. tcp://10.0.0.5:8786")
    sweep.add_argument("--workers", type=positive_int, metavar="N",
                       help="pool / local Dask cluster size, e.g. --workers 4 (default: one "
                            "per core)")
    sweep.add_argument("--train-resource", default="GPU", metavar="NAME",
                       help="Dask worker resource a training point needs, e.g. GPU (the "
                            "default); none: any worker")
    sweep.add_argument("--retry-errors", action="store_true",
                       help="run the points whose row is an error again (the new row replaces "
                            "it), e.g. after fixing a config")
    sweep.add_argument("--dry-run", action="store_true",
                       help="print the points and how many are still to run; run nothing, "
                            "e.g. to check a grid")
    sweep.add_argument("--no-progress", action="store_true",
                       help="hide progress bars, e.g. in batch jobs")

    plot = _command(sub, "plot", "draw a figure: tradeoff, breakdown, roofline or timeline",
                    "hwsim plot tradeoff results.csv --x dram_bytes --y test_acc --out front",
                    "hwsim plot breakdown --model resnet18 --out breakdown.png",
                    "hwsim plot timeline --model mlg_resnet18 --accel mlg_gen --out tl.png")
    plot.add_argument("kind", choices=("tradeoff", "breakdown", "roofline", "timeline"),
                      help="tradeoff: a results table's columns against each other with the "
                           "Pareto front; breakdown / roofline: per layer; timeline: Gantt "
                           "chart of the event-driven simulation; e.g. tradeoff")
    plot.add_argument("table", nargs="?",
                      help="tradeoff: results table (.csv or .parquet), e.g. results.csv")
    plot.add_argument("--x", help="tradeoff: column on the x axis, e.g. dram_bytes")
    plot.add_argument("--y", help="tradeoff: column on the y axis, e.g. test_acc")
    plot.add_argument("--color", default="method",
                      help="tradeoff: column for colours, e.g. model (default method)")
    plot.add_argument("--marker", default="accelerator",
                      help="tradeoff: column for markers, e.g. batch (default accelerator)")
    plot.add_argument("--maximize", action="append", default=[], metavar="COLUMN",
                      help="tradeoff: treat COLUMN as higher-is-better for the Pareto front, "
                           "e.g. --maximize throughput")
    plot.add_argument("--where", action="append", default=[], metavar="COLUMN=VALUE",
                      help="tradeoff: keep only rows where COLUMN equals VALUE (repeatable), "
                           "e.g. --where accelerator=mlg_gen")
    plot.add_argument("--title", help="figure title, e.g. --title 'MLG on mlg_gen'")
    plot.add_argument("--model", metavar="NAME",
                      help="breakdown/roofline/timeline: registered model, e.g. resnet18")
    plot.add_argument("--zoom", metavar="FIRST[:LAST]",
                      help="timeline: layers of the zoomed panel, by name or index, e.g. "
                           "conv1:layers.0.0.add (default: the three consecutive layers where "
                           "the array waits longest)")
    plot.add_argument("--accel", default=DEFAULT_ACCEL, metavar="NAME|FILE",
                      help=f"breakdown/roofline/timeline: accelerator, e.g. mlg_gen (default "
                           f"{DEFAULT_ACCEL})")
    _shape_options(plot, objective_default=None)
    plot.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="breakdown/roofline/timeline: model.*, accel.*, trace.*, mlg.* ... "
                           "overrides, e.g. accel.array.rows=16")
    plot.add_argument("--out", required=True, metavar="FILE",
                      help="figure file: .png or .svg, or no suffix for both, e.g. front.png")


def _model_options(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--model", metavar="NAME",
                     help="registered model name, e.g. mlg_resnet18 (hwsim list shows them)")
    _shape_options(cmd, batch_default=None)  # cmd_run: a checkpoint's pipeline's, else 1


def _shape_options(cmd: argparse.ArgumentParser, objective_default=DEFAULT_OBJECTIVE,
                   batch_default: int | None = 1) -> None:
    default = ("1" if batch_default else "1, a checkpoint's: the hardware.batch of the "
               "pipeline that trained it")
    cmd.add_argument("--batch", type=positive_int, default=batch_default, metavar="N",
                     help=f"batch size, e.g. --batch 4 (default {default})")
    cmd.add_argument("--input", type=_input_shape, metavar="CxHxW",
                     help="input shape, e.g. 3x64x64 (default: the model's)")
    cmd.add_argument("--objective", choices=OBJECTIVES, default=objective_default,
                     help=f"what the mapper minimizes, e.g. --objective dram_bytes (default "
                          f"{DEFAULT_OBJECTIVE})")


def _set_option(cmd: argparse.ArgumentParser, text: str) -> None:
    cmd.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help=f"override (repeatable): {text}")


def _common(cmd: argparse.ArgumentParser) -> None:
    _set_option(cmd, "model.*, accel.*, trace.*, mlg.*, resrep.*, pg.*, cg.*, e.g. "
                     "accel.array.rows=16 or mlg.base_in=2")
    cmd.add_argument("--format", choices=FORMATS, default="table",
                     help="table (default: the headline; --layers adds the layer table), csv "
                          "(one row per layer, exact numbers) or json (the whole record), "
                          "e.g. --format json")
    cmd.add_argument("--out", metavar="DIR",
                     help="folder for layers.csv, summary.json, run.yaml, e.g. results/r50")


# --- config resolution ------------------------------------------------------------------------
def model_kwargs(name: str, cfg: dict) -> dict:
    """Builder kwargs for ``name`` from the ``model`` section and method namespaces of ``cfg``
    (checked against ``hwsim.catalog``, before torch is imported)."""
    entry = catalog.MODELS[catalog.check_model(name)]
    settable = entry["arguments"]
    kwargs = {}
    for key, value in cfg.get("model", {}).items():
        if key == "name":
            if value != name:
                raise UsageError(f"--set model.name={value}: disagrees with --model {name}")
            continue
        if key not in settable:
            raise UsageError(f"--set model.{key}: unknown argument of {name}; allowed: "
                             f"{', '.join(sorted(settable))}")
        try:  # the builder's own type and size rule, against the catalog's copy of its defaults
            kwargs[key] = check_type(name, key, value, settable[key])
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    for ns in METHOD_NAMESPACES:
        if ns in cfg:
            if ns not in entry["namespaces"]:
                raise UsageError(f"--set {ns}.*: {catalog.no_namespace(name, ns)}")
            kwargs[ns] = cfg[ns]
    return kwargs


def _check_namespaces(cfg: dict) -> None:
    for key in cfg:
        if key not in RUN_NAMESPACES:
            raise UsageError(f"--set {key}.*: unknown namespace; allowed: "
                             f"{', '.join(RUN_NAMESPACES)}")
        if not isinstance(cfg[key], dict):
            raise UsageError(f"--set {key}: expected {key}.KEY=VALUE")
    for key, value in cfg.get("trace", {}).items():
        if key not in TRACE_KEYS:
            raise UsageError(f"--set trace.{key}: unknown key; allowed: {', '.join(TRACE_KEYS)}")
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 32:
            raise UsageError(f"--set trace.{key}: expected an integer in 1..32, got {value!r}")


def _load_accel(spec: str, cfg: dict):
    from .accel import load_accelerator

    if spec == "none":
        if cfg.get("accel"):
            raise UsageError("--set accel.*: no accelerator (--accel none)")
        return None
    return load_accelerator(spec, cfg.get("accel") or None)


def _accel_changes(spec: str, accel) -> dict:
    """What ``--set accel.*`` changed in the preset (``hwsim.record.accelerator_changes``)."""
    from .accel import load_accelerator
    from .record import accelerator_changes

    return {} if accel is None else accelerator_changes(load_accelerator(spec), accel)


def _graph_for(name: str, kwargs: dict, cfg: dict, args, model=None, shape=None, calib=None):
    """Trace ``model`` (default: built from ``name``, ``kwargs``) at ``--input``, ``shape`` or
    the model's own input size, after the ``calib`` batches."""
    import models

    from .trace import trace

    model = model if model is not None else models.create_model(name, **kwargs)
    shape = args.input or shape or models.default_input_shape(name, kwargs.get("in_channels"))
    return trace(model, shape, calib=calib, batch=args.batch, name=name, **cfg.get("trace", {}))


def _report_for(name: str, kwargs: dict, cfg: dict, args, accel):
    """The record of the registered model ``name`` (``plot breakdown / roofline``)."""
    from .record import evaluate_record

    return evaluate_record(_graph_for(name, kwargs, cfg, args), accel, args.objective)


RUN_FILES = ("layers.csv", "summary.json", "run.yaml", "timeline.csv")


def save_run(out_dir: str, report: dict, config: dict, timeline=None) -> list[Path]:
    """Write layers.csv, summary.json (the report without layers), run.yaml (``config`` and
    the hwsim version) and, after ``--sim event``, timeline.csv into ``out_dir`` as one set:
    all of them or, on failure, none (``models.checkpoint.write_file_set``)."""
    from models.checkpoint import write_file_set
    from models.provenance import provenance

    from .report import layers_frame, to_json

    summary = {k: v for k, v in report.items() if k != "layers"}
    files = {"layers.csv": layers_frame(report).to_csv(index=False).encode(),
             "summary.json": to_json(summary).encode(),
             "run.yaml": dump_yaml({**config, **provenance()}).encode()}
    if timeline is not None:
        files["timeline.csv"] = timeline.to_csv(index=False).encode()
    return write_file_set(out_dir, files, replaceable=RUN_FILES)


def _baseline_for(name: str, kwargs: dict, graph, cfg: dict, args):
    """The dense model ``--baseline`` / ``--baseline-checkpoint`` names, traced like ``graph``
    (``hwsim.record`` holds the policy), or None."""
    import models

    from .pipeline import evaluate_accuracy, load_checkpoint_model
    from .record import baseline_name, trace_baseline

    if args.baseline_checkpoint:
        model, meta = load_checkpoint_model(args.baseline_checkpoint)
        try:  # traced before it is scored: a misfit should not wait for the test set
            traced = trace_baseline(name, kwargs, graph, cfg.get("trace", {}), meta["model"],
                                    model)
        except ValueError as exc:
            why = ""
            if tuple(meta["input_shape"]) != tuple(graph.input_shape[1:]):
                trained = "x".join(str(d) for d in meta["input_shape"])
                why = f"the baseline (trained at {trained}) is traced at the model's input; "
            raise UsageError(f"--baseline-checkpoint {args.baseline_checkpoint}: {why}{exc}"
                             ) from None
        test_acc = evaluate_accuracy(model, args.data, args.data_root) if args.data else None
        return dataclasses.replace(traced, test_acc=test_acc,
                                   checkpoint=args.baseline_checkpoint)
    base = baseline_name(name, args.baseline, models.list_models())
    if base is None:
        return None
    return trace_baseline(name, kwargs, graph, cfg.get("trace", {}), base)


def cmd_run(args) -> int:
    cfg = apply_overrides({}, args.set)
    _check_namespaces(cfg)
    fixed = [key for key in ("model", *METHOD_NAMESPACES) if cfg.get(key)]
    if args.checkpoint and fixed:
        raise UsageError(f"--set {fixed[0]}.*: a checkpoint's model is rebuilt with the "
                         f"settings it was trained with; these cannot change it (train "
                         f"another, e.g. hwsim pipeline CONFIG --set {fixed[0]}.KEY=VALUE)")
    if args.calib is not None and not args.checkpoint:
        raise UsageError("--calib needs --checkpoint FILE (calibration runs a trained model's "
                         "gated layers on training images; an untrained model has no gates "
                         "worth measuring)")
    if args.data and not (args.checkpoint or args.baseline_checkpoint):
        raise UsageError("--data needs --checkpoint or --baseline-checkpoint (accuracy of a "
                         "trained model)")
    if args.baseline_checkpoint and args.baseline not in ("auto", "none"):
        raise UsageError("--baseline-checkpoint and --baseline NAME: give one baseline")
    if args.baseline not in ("auto", "none"):
        catalog.check_model(args.baseline)
    if args.checkpoint is None:
        if not args.model:
            raise UsageError("hwsim run: give --model NAME or --checkpoint FILE")
        kwargs = model_kwargs(args.model, cfg)  # checked before torch is imported
    accel = _load_accel(args.accel, cfg)
    if args.sim == "event" and accel is None:
        raise UsageError("--sim event needs an accelerator (not --accel none)")

    from .pipeline import (
        calibration_batches,
        calibration_set,
        checkpoint_hardware,
        evaluate_accuracy,
        load_checkpoint_model,
    )
    from .record import evaluate_record, missing_counterpart_note

    model = shape = calib = None
    if args.checkpoint:
        model, meta = load_checkpoint_model(args.checkpoint)
        name = meta["model"]
        if args.model and args.model != name:
            raise UsageError(f"--model {args.model} disagrees with the checkpoint's model {name}")
        kwargs = dict(meta.get("model_kwargs", {}))
        shape = tuple(meta["input_shape"])
        # Traced and calibrated as the pipeline that trained it, where the options do not say.
        hw = checkpoint_hardware(meta)
        args.batch = args.batch or hw["batch"]
        cfg["trace"] = {"weight_bits": hw["weight_bits"], "act_bits": hw["act_bits"],
                        **cfg.get("trace", {})}
        batches = hw["calib_batches"] if args.calib is None else args.calib
        own_data = args.data in (None, meta.get("data"))
        calib_set = calibration_set(
            model, args.data or meta.get("data"),
            args.data_root or (hw["root"] if own_data else None),
            hw["split"] if own_data else "standard") if batches else None
        if calib_set is not None:  # gate densities are measured, not assumed
            calib = calibration_batches(calib_set, batches, hw["calib_batch_size"])
    else:
        name = args.model
        args.batch = args.batch or 1
    graph = _graph_for(name, kwargs, cfg, args, model, shape, calib)
    baseline = _baseline_for(name, kwargs, graph, cfg, args)  # a misfit before any scoring
    test_acc = (evaluate_accuracy(model, args.data, args.data_root)
                if args.data and args.checkpoint else None)
    report = evaluate_record(graph, accel, args.objective, baseline=baseline,
                             test_acc=test_acc, accel_changes=_accel_changes(args.accel, accel))
    if baseline is None and args.baseline == "auto":
        import models

        note = missing_counterpart_note(name, models.list_models())
        report["notes"] += [note] if note else []
    sim = _simulate(graph, accel, args.objective) if args.sim == "event" else None
    if sim is not None:
        _add_simulation(report, sim, accel)
    if args.out is not None:  # "" too: write_file_set refuses the working folder
        resolved = {"command": "run", "model": {"name": name, **kwargs},
                    "accel": args.accel, "accel_overrides": cfg.get("accel", {}),
                    "trace": cfg.get("trace", {}), "batch": args.batch,
                    "input": list(report["input_shape"][1:]), "objective": args.objective,
                    "checkpoint": args.checkpoint, "sim": args.sim,
                    "baseline": args.baseline, "baseline_checkpoint": args.baseline_checkpoint}
        paths = save_run(args.out, report, resolved, sim.timeline if sim is not None else None)
        print(f"wrote {', '.join(p.name for p in paths)} to {paths[0].parent}", file=sys.stderr)
    _print_record(report, args.format, args.layers, sim is not None)
    return 0


def _print_record(report: dict, fmt: str, layers: bool, simulated: bool) -> None:
    from .report import (
        DES_LAYER_COLUMNS,
        format_headline,
        format_layers,
        layers_frame,
        terminal_width,
        to_json,
    )

    if fmt == "json":
        print(to_json(report))
    elif fmt == "csv":
        print(layers_frame(report).to_csv(index=False), end="")
    else:
        width = terminal_width()
        print(format_headline(report, width), end="")
        if layers:
            print("\nper layer (every column: --format csv):")
            print(format_layers(report, width), end="")
            if simulated:
                print("\nevent-driven simulation per layer (busy fractions over each layer's "
                      "span):")
                print(format_layers(report, width, DES_LAYER_COLUMNS), end="")


def cmd_compare(args) -> int:
    """Every ``--model`` on every ``--accel``, one column each."""
    cfg = apply_overrides({}, args.set)
    _check_namespaces(cfg)
    for name in args.model:
        catalog.check_model(name)
    entries = [catalog.MODELS[name] for name in args.model]
    for ns in METHOD_NAMESPACES:
        if ns in cfg and not any(ns in e["namespaces"] for e in entries):
            raise UsageError(f"--set {ns}.*: none of the models has {ns} settings")
    for key in cfg.get("model", {}):
        if not any(key in e["arguments"] for e in entries):
            raise UsageError(f"--set model.{key}: none of the models takes it")
    kwargs = {}  # each model gets the --set keys it takes
    for name, entry in zip(args.model, entries):
        own = {k: v for k, v in cfg.items() if k not in METHOD_NAMESPACES
               or k in entry["namespaces"]}
        own["model"] = {k: v for k, v in cfg.get("model", {}).items()
                        if k in entry["arguments"]}
        kwargs[name] = model_kwargs(name, own)
    accels = [(accel, _accel_changes(spec, accel))
              for spec, accel in ((spec, _load_accel(spec, cfg)) for spec in args.accel)]

    from .record import evaluate_record, record_row
    from .report import format_compare, to_json

    records = []
    for name in args.model:
        graph = _graph_for(name, kwargs[name], cfg, args)
        for accel, changes in accels:
            records.append(evaluate_record(graph, accel, args.objective, accel_changes=changes,
                                           per_layer=False))
    if args.format == "json":
        print(to_json(records))
    elif args.format == "csv":
        import pandas as pd

        print(pd.DataFrame([record_row(r) for r in records]).to_csv(index=False), end="")
    else:
        print(format_compare(records), end="")
    return 0


# --- event-driven simulation (hwsim.des) --------------------------------------------------------
def _simulate(graph, accel, objective: str):
    from .cost import search_mappings
    from .des import simulate

    return simulate(graph, accel, search_mappings(graph, accel, objective))


def _add_simulation(report: dict, sim, accel) -> None:
    """The DES columns into every layer record, its totals beside the analytical ones."""
    from .record import plain

    for record in report["layers"]:
        record.update({k: plain(k, float(v)) for k, v in sim.layers.loc[record["name"]].items()})
    totals = report["totals"]
    totals.update({k: plain(k, v) for k, v in sim.totals().items()})
    totals.update({
        "latency_ms_des": sim.latency_cycles / (accel.clock_mhz * 1e3),
        "des_over_analytic_latency": sim.latency_cycles / totals["latency_cycles"],
        "des_events": sim.events})


def _zoom(text: str | None, names: list[str]) -> tuple[int, int] | None:
    """``FIRST[:LAST]`` (layer names or indices) as a pair of layer indices."""
    if text is None:
        return None

    def index(part: str) -> int:
        if part in names:
            return names.index(part)
        if part.isdigit() and int(part) < len(names):
            return int(part)
        raise UsageError(f"--zoom: no layer {part!r}; give a layer name or an index "
                         f"0..{len(names) - 1}")

    first, _, last = text.partition(":")
    pair = (index(first), index(last or first))
    if pair[0] > pair[1]:
        raise UsageError(f"--zoom: {first} comes after {last}")
    return pair


def _timeline(args, cfg: dict, accel):
    """The ``plot timeline`` figure: the model's tiles replayed on ``accel``."""
    from .cost import evaluate
    from .des import simulate
    from .timeline import timeline_figure

    graph = _graph_for(args.model, model_kwargs(args.model, cfg), cfg, args)
    costs = evaluate(graph, accel, objective=args.objective)
    sim = simulate(graph, accel, dict(costs["mapping"]))
    zoom = _zoom(args.zoom, list(sim.layers.index))
    title = args.title or (
        f"{args.model} on {accel.name}: {sim.latency_cycles:,.0f} cycles event-driven, "
        f"{costs['latency_cycles'].sum():,.0f} analytical ({sim.events:,} events)")
    return timeline_figure(sim, zoom=zoom, title=title)


def cmd_list(args) -> int:
    """The zoo from ``hwsim.catalog`` (no torch import), the accelerator presets."""
    import textwrap

    from .accel import list_accelerators, load_accelerator
    from .report import terminal_width, wrap_parts

    width, indent = max(terminal_width(), 40), " " * 23
    if args.what in (None, "models"):
        print(textwrap.fill("models (hwsim run --model NAME; --set model.KEY=VALUE changes an "
                            "argument):", width))
        for name, entry in catalog.MODELS.items():
            print(textwrap.fill(entry["summary"], width, initial_indent=f"  {name:<20} ",
                                subsequent_indent=indent))
            shown = [*(f"{k}={v!r}" for k, v in entry["arguments"].items()),
                     *(f"{ns}.*" for ns in entry["namespaces"])]
            print("\n".join(wrap_parts([indent + shown[0], *shown[1:]], width, indent)))
    if args.what in (None, "accelerators"):
        print(textwrap.fill("accelerators (hwsim run --accel NAME, or a YAML file of your "
                            "own):", width))
        for name in list_accelerators():
            print(textwrap.fill(load_accelerator(name).description, width,
                                initial_indent=f"  {name:<20} ", subsequent_indent=indent))
    return 0


def cmd_export(args) -> int:
    cfg = apply_overrides({}, args.set)
    _check_namespaces(cfg)
    kwargs = model_kwargs(args.model, cfg)
    accel = _load_accel(args.accel, cfg)

    from models.checkpoint import write_file_set

    from .export import scalesim_files

    files, skipped = scalesim_files(_graph_for(args.model, kwargs, cfg, args), accel)
    paths = write_file_set(args.out, {name: text.encode() for name, text in files.items()},
                           replaceable=("*.csv", "*.cfg"))  # an earlier export's files
    for path in paths:
        print(f"wrote {path}")
    for name in skipped:
        print(f"skipped (no SCALE-Sim equivalent): {name}")
    topology, layout, config = paths
    print(f"cross-check: python -m scalesim.scale -c {config} -t {topology} -l {layout} "
          f"-p LOGDIR")
    return 0


def _prepare_run(args):
    """The config with ``--set`` applied, checked, and its run folder (``hwsim.runs.Run``)."""
    from models.train import resolve_config

    from .pipeline import PIPELINE_SECTIONS, hardware_section
    from .runs import prepare_run

    config = apply_overrides(load_yaml(args.config), args.set)
    try:  # a bad config fails here, before a run folder exists
        hardware_section(config)
        resolve_config(config, PIPELINE_SECTIONS)
    except ValueError as exc:  # name the file: the key may be in it or in a --set
        raise ValueError(f"{args.config}: {exc}") from None
    return prepare_run(config, args.config, args.command, name=args.name,
                       runs_dir=args.runs_dir, resume=args.resume,
                       overwrite=args.overwrite,
                       main_process=_is_main_process(),
                       distributed=os.environ.get("WORLD_SIZE", "1") != "1")


def _in_run(run, work):
    """``work()``, removing ``run``'s folder if it fails before any checkpoint is written;
    Ctrl-C after one says how to continue."""
    from .runs import discard_if_unused

    try:
        return work()
    except BaseException as exc:
        discard_if_unused(run)
        if not isinstance(exc, KeyboardInterrupt):
            raise
        if run.folder.is_dir() and _is_main_process():
            print(f"hwsim: interrupted; the run is in {run.folder}, the same command with "
                  f"{run.resume_hint()} continues it", file=sys.stderr)
        raise SystemExit(130) from None


def _is_main_process() -> bool:
    """Only rank 0 prints under torchrun."""
    return os.environ.get("RANK", "0") == "0"


def cmd_train(args) -> int:
    import yaml

    from models.train import CHECKPOINT_NAME

    from .pipeline import train_from_config

    run = _prepare_run(args)
    resume = args.resume and (run.folder / CHECKPOINT_NAME).is_file()  # stopped before an epoch
    metrics = _in_run(run, lambda: train_from_config(
        run.config, config_path=args.config, resume=resume, progress=not args.no_progress))
    if _is_main_process():
        print(yaml.safe_dump(metrics, sort_keys=False), end="")
    return 0


PIPELINE_SUMMARY = [  # (column, header, kind of hwsim.report.human), dropped from the right
    ("model", "model", None), ("stage", "stage", None), ("accelerator", "accelerator", None),
    ("test_acc", "test_acc", "accuracy"), ("latency_ms", "latency", "ms"),
    ("energy_pj", "energy", "energy_pj"), ("dram_bytes", "DRAM", "bytes"),
    ("utilization", "util", "fraction"), ("stored_bytes", "stored_bytes", "bytes"),
    ("dram_bytes_ratio", "DRAM vs dense", "ratio"), ("flops_ratio", "flops_ratio", "ratio"),
    ("macs", "MACs", "count"), ("seed_flops", "seed_flops", "count"),
    ("memory_ratio", "memory_ratio", "ratio"), ("gate_sparsity", "gate_sparsity", None),
    ("ideal_speedup", "ideal", "ratio"), ("realized_speedup", "realized", "ratio"),
    ("energy_saving", "energy_saving", "ratio"), ("data", "data", None)]


def cmd_pipeline(args) -> int:
    from .pipeline import hardware_section, run_pipeline
    from .report import format_gating, format_rows, terminal_width

    run = _prepare_run(args)
    rows = _in_run(run, lambda: run_pipeline(run.config, progress=not args.no_progress,
                                             resume=args.resume))
    if _is_main_process():
        records = rows.to_dict(orient="records")
        print(format_rows(records, PIPELINE_SUMMARY), end="")
        for record in records:  # gated models: the gating block hwsim run prints, per row
            if isinstance(record.get("gating_mode"), str):
                summary = {k: v for k, v in record.items()
                           if not (isinstance(v, float) and math.isnan(v))}
                print(f"\n{record['model']} on {record['accelerator']}:")
                print("\n".join(format_gating(summary, terminal_width())))
        print(f"appended {len(rows)} row(s) to {hardware_section(run.config)['results']}; "
              f"run folder {run.folder}")
    return 0


def cmd_sweep(args) -> int:
    from .report import plural
    from .results import done_hashes
    from .sweep import load_sweep, run_sweep

    if args.scheduler and not re.fullmatch(r"\w+://\S+|[^\s/:]+:\d+", args.scheduler):
        raise UsageError(f"--scheduler {args.scheduler!r}: expected a Dask scheduler address "
                         f"HOST:PORT, e.g. tcp://10.0.0.5:8786")
    sweep = load_sweep(args.config, args.set)
    if args.dry_run:
        done = done_hashes(sweep.results, errors=not args.retry_errors)
        pending = [p for p in sweep.points if p.config_hash not in done]
        for point in pending[:20]:
            swept = ", ".join(f"{k}={v}" for k, v in point.swept.items())
            print(f"{point.config_hash}  {'train+cost' if point.train_hash else 'cost'}  {swept}")
        more = " (first 20 shown)" if len(pending) > 20 else ""
        print(f"{len(sweep.points)} points, {len(sweep.points) - len(pending)} already in "
              f"{sweep.results}, {len(pending)} to run{more}")
        return 0
    executor = "dask" if args.scheduler else args.executor
    resource = None if args.train_resource == "none" else args.train_resource
    try:
        report = run_sweep(sweep, executor=executor, workers=args.workers,
                           scheduler=args.scheduler, train_resource=resource,
                           progress=not args.no_progress, retry_errors=args.retry_errors)
    except KeyboardInterrupt:
        print(f"hwsim: interrupted; the rows finished so far are in {sweep.results}, the "
              f"same command resumes", file=sys.stderr)
        return 130
    print(f"{report.total} points: {report.skipped} already in the table, {report.ran} run "
          f"({report.failed} failed, rows with status=error); table {report.results}")
    if report.errors:  # what went wrong, without opening the table
        (message, count), others = report.errors[0], len(report.errors) - 1
        more = f" (and {plural(others, 'other error message')})" if others else ""
        print(f"most common error ({count} of {report.failed} failed): {message}{more}")
    return 0


def _where(table, items: list[str]):
    """Rows where every ``COLUMN=VALUE`` holds (numbers compared as numbers)."""
    import pandas as pd

    for item in items:
        column, sep, value = item.partition("=")
        if not sep or column not in table.columns:
            raise UsageError(f"--where {item!r}: expected COLUMN=VALUE with a column of the "
                             f"table")
        cells = table[column]
        if pd.api.types.is_numeric_dtype(cells):
            try:
                kept = table[cells == float(value)]
            except ValueError:
                raise UsageError(f"--where {item!r}: {column} holds numbers") from None
        else:
            kept = table[cells.astype(str) == value]
        if kept.empty:
            values = sorted(cells.dropna().astype(str).unique())
            raise UsageError(f"--where {item!r}: no row left; {column} holds "
                             f"{', '.join(values[:12])}{' ...' if len(values) > 12 else ''}")
        table = kept
    return table


def cmd_plot(args) -> int:
    if args.kind == "tradeoff" and not (args.table and args.x and args.y):
        raise UsageError("hwsim plot tradeoff: give TABLE --x COLUMN --y COLUMN")
    if args.kind != "tradeoff" and (args.table or not args.model):
        raise UsageError(f"hwsim plot {args.kind}: give --model NAME (and --accel)")

    from . import plot

    plot.figure_paths(args.out)  # a bad --out fails before the figure's work
    args.objective = args.objective or DEFAULT_OBJECTIVE
    if args.kind == "tradeoff":
        from .results import read_table

        table = _where(read_table(args.table), args.where)
        fig = plot.tradeoff(table, args.x, args.y, color=args.color, marker=args.marker,
                            title=args.title, maximize=tuple(args.maximize))
    else:
        cfg = apply_overrides({}, args.set)
        _check_namespaces(cfg)
        accel = _load_accel(args.accel, cfg)
        if accel is None:
            raise UsageError(f"hwsim plot {args.kind}: needs an accelerator")
        if args.kind == "timeline":
            fig = _timeline(args, cfg, accel)
            for path in plot.save(fig, args.out, dpi=120):
                print(f"wrote {path}")
            return 0
        from .report import layers_frame

        report = _report_for(args.model, model_kwargs(args.model, cfg), cfg, args, accel)
        layers = layers_frame(report)
        title = args.title or (f"{args.model}, batch {args.batch}, on {accel.name} "
                               f"({accel.array.rows}x{accel.array.cols} {accel.array.dataflow}, "
                               f"{accel.dram.bw_bytes_per_cycle:g} B/cycle DRAM)")
        if args.kind == "breakdown":
            fig = plot.breakdown(layers, title)
        else:
            fig = plot.roofline(layers, accel.array.num_pes, accel.dram.bw_bytes_per_cycle,
                                title)
    for path in plot.save(fig, args.out):
        print(f"wrote {path}")
    return 0


COMMANDS = {"run": cmd_run, "compare": cmd_compare, "list": cmd_list, "export": cmd_export,
            "train": cmd_train, "pipeline": cmd_pipeline, "sweep": cmd_sweep, "plot": cmd_plot}


def _exit_on_sigterm() -> None:
    """Turn ``kill``'s SIGTERM into ``SystemExit(143)`` so that unwinding runs: an atomic write
    in progress removes its temporary file (SIGKILL cannot be caught)."""
    def stop(signum, frame):
        raise SystemExit(128 + signum)

    if (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL):
        signal.signal(signal.SIGTERM, stop)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    _exit_on_sigterm()

    def dispatch() -> int:
        args, extra = build_parser().parse_known_args(argv)
        if extra:
            if not hasattr(args, "set"):
                raise UsageError(f"unrecognized arguments: {' '.join(extra)}")
            args.set = [*args.set, *_seed_style_sets(extra)]
        return COMMANDS[args.command](args)

    return guarded(dispatch)


def guarded(work, prog: str = "hwsim") -> int:
    """``work()``'s exit code; bad input (a ``UsageError``, ``ValueError``, ``KeyError`` or OS
    error) is one line on stderr and exit code 2, a bug one line and exit code 1, unless
    ``HWSIM_DEBUG=1`` asks for the traceback. The study scripts share it."""
    try:
        return work()
    except BrokenPipeError:  # the reader (e.g. `| head`) left: silence the final flush too
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (UsageError, ValueError, KeyError, OSError) as exc:
        if os.environ.get("HWSIM_DEBUG") == "1":
            raise
        print(f"{prog}: error: {_message(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug, not bad input: still one line, exit 1
        if os.environ.get("HWSIM_DEBUG") == "1":
            raise
        print(f"{prog}: internal error: {type(exc).__name__}: {_message(exc)} (a bug; "
              f"HWSIM_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1


def _message(exc: BaseException) -> str:
    """The error as one line: a KeyError's own text, an OS error's file and reason."""
    if isinstance(exc, KeyError) and exc.args:
        message = exc.args[0]
    elif isinstance(exc, OSError) and exc.filename is not None:
        message = f"{exc.filename}: {exc.strerror or exc}"
    else:
        message = exc
    return " ".join(str(message).split())

if __name__ == "__main__":
    sys.exit(main())
