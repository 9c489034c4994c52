"""``hwsim`` command line: run, list, export, train, pipeline.

A thin layer over the library: it parses arguments, resolves one config dict (the same dotted
``--set`` keys for every command), calls the library and prints. Bad input is one line on stderr
and exit code 2 (an internal error: one line, exit 1); ``HWSIM_DEBUG=1`` shows the traceback
instead.
"""

import argparse
import json
import os
import re
import signal
import sys
import threading
from pathlib import Path

import yaml

import models
from models.checkpoint import write_file_set
from models.provenance import provenance
from models.train import CHECKPOINT_NAME, resolve_config

from .accel import list_accelerators, load_accelerator
from .config import METHOD_NAMESPACES, apply_overrides, dump_yaml, load_yaml
from .cost import DEFAULT_OBJECTIVE, OBJECTIVES, evaluate
from .export import scalesim_files
from .gating import format_summary, gating_summary, is_gated
from .pipeline import (
    HARDWARE,
    PIPELINE_SECTIONS,
    calibration_batches,
    calibration_set,
    evaluate_accuracy,
    hardware_section,
    load_checkpoint_model,
    run_pipeline,
    train_from_config,
)
from .report import build_report, figure, format_table, layers_frame, to_json
from .runs import RUNS_DIR, Run, discard_if_unused, prepare_run
from .trace import trace

RUN_NAMESPACES = ("model", "accel", "trace", *METHOD_NAMESPACES)
TRACE_KEYS = {"weight_bits": int, "act_bits": int}
FORMATS = ("table", "csv", "json")
SIMS = ("analytic", "event")
DEFAULT_ACCEL = "systolic_32"
COMPRESSED_PREFIXES = tuple(f"{ns}_" for ns in (*METHOD_NAMESPACES, "resrep"))


class UsageError(ValueError):
    """Bad command-line input; printed as one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise UsageError(f"{self.prog}: {message}")


def _input_shape(text: str) -> tuple[int, int, int]:
    if not re.fullmatch(r"\d+x\d+x\d+", text or "") or 0 in (dims := tuple(
            int(d) for d in text.split("x"))):
        raise argparse.ArgumentTypeError(
            f"expected CxHxW with positive integers, e.g. 3x32x32, got {text!r}")
    return dims


def _positive_int(text: str) -> int:
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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hwsim", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="trace a model and evaluate it on an accelerator")
    run.add_argument("--model", help="registered model name (see `hwsim list`)")
    run.add_argument("--checkpoint", help="trained checkpoint; the model is rebuilt from it")
    run.add_argument("--data", help="dataset to report the checkpoint's test accuracy on")
    run.add_argument("--data-root", help="folder with the dataset files")
    run.add_argument("--accel", default=DEFAULT_ACCEL,
                     help=f"accelerator preset name or YAML file (default {DEFAULT_ACCEL}); "
                          "'none' for the workload only")
    run.add_argument("--batch", type=_positive_int, default=1, help="batch size (default 1)")
    run.add_argument("--input", type=_input_shape, help="input shape CxHxW (default: the model's)")
    run.add_argument("--objective", choices=OBJECTIVES, default=DEFAULT_OBJECTIVE,
                     help=f"what the mapper minimizes (default {DEFAULT_OBJECTIVE})")
    run.add_argument("--calib", type=_non_negative_int, default=HARDWARE["calib_batches"][0],
                     help="calibration batches of 64 training images run through a "
                          "checkpoint's gated layers before tracing (default "
                          f"{HARDWARE['calib_batches'][0]}; 0: none, densities 1.0)")
    run.add_argument("--baseline", default="auto",
                     help="dense model to compare with: a model name, 'auto' (the dense "
                          "counterpart of a compressed model) or 'none'")
    run.add_argument("--sim", choices=SIMS, default="analytic",
                     help="'event' also replays the tiles in the event-driven simulator and "
                          "adds its columns (default analytic)")
    _common(run)

    lst = sub.add_parser("list", help="list models and accelerators")
    lst.add_argument("what", nargs="?", choices=("models", "accelerators"), default=None)

    export = sub.add_parser("export", help="write the workload for a peer tool")
    export.add_argument("--model", required=True)
    export.add_argument("--accel", default=DEFAULT_ACCEL)
    export.add_argument("--format", choices=("scalesim",), default="scalesim")
    export.add_argument("--batch", type=_positive_int, default=1)
    export.add_argument("--input", type=_input_shape)
    export.add_argument("--out", required=True, help="output folder")
    export.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")

    for name, text in (("train", "train a model from a YAML config"),
                       ("pipeline", "train, measure accuracy, trace, simulate, append results")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("config", help="YAML config (see experiments/configs/)")
        cmd.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                         help="dotted override, e.g. optimizer.lr=0.05 (repeatable)")
        cmd.add_argument("--name", help="run folder name under --runs-dir (default: the config "
                                        "file's name and the UTC time, a fresh folder per run)")
        cmd.add_argument("--runs-dir", default=RUNS_DIR, metavar="DIR",
                         help=f"folder the run folders go in (default {RUNS_DIR})")
        cmd.add_argument("--resume", action="store_true",
                         help="continue the run --name NAME from its last checkpoint")
        cmd.add_argument("--overwrite", action="store_true",
                         help="delete the run --name NAME and start it again")
        cmd.add_argument("--no-progress", action="store_true", help="hide progress bars")
    _sweep_parsers(sub)
    return parser


def _sweep_parsers(sub) -> None:
    """``hwsim sweep`` and ``hwsim plot tradeoff|breakdown|roofline``."""
    sweep = sub.add_parser("sweep", help="run a grid of design points into one results table")
    sweep.add_argument("config", help="sweep YAML (see experiments/sweeps/)")
    sweep.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a key of the sweep config, e.g. results=out.csv")
    sweep.add_argument("--executor", choices=("local", "dask"), default="local",
                       help="local process pool (default) or Dask distributed")
    sweep.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                       help="address of a running Dask scheduler (implies --executor dask)")
    sweep.add_argument("--workers", type=_positive_int,
                       help="pool / local Dask cluster size (default: one per core)")
    sweep.add_argument("--train-resource", default="GPU", metavar="NAME",
                       help="Dask worker resource a training point needs (default GPU; "
                            "'none' for any worker)")
    sweep.add_argument("--retry-errors", action="store_true",
                       help="run the points whose row is an error again (the new row replaces "
                            "it)")
    sweep.add_argument("--dry-run", action="store_true",
                       help="print the points and how many are still to run; run nothing")
    sweep.add_argument("--no-progress", action="store_true", help="hide progress bars")

    plot = sub.add_parser("plot", help="draw a figure: tradeoff, breakdown, roofline or "
                                       "timeline")
    plot.add_argument("kind", choices=("tradeoff", "breakdown", "roofline", "timeline"),
                      help="timeline: Gantt chart of the event-driven simulation")
    plot.add_argument("table", nargs="?", help="tradeoff: results table (.csv or .parquet)")
    plot.add_argument("--x", help="tradeoff: column on the x axis, e.g. dram_bytes")
    plot.add_argument("--y", help="tradeoff: column on the y axis, e.g. test_acc")
    plot.add_argument("--color", default="method", help="tradeoff: column for colours")
    plot.add_argument("--marker", default="accelerator", help="tradeoff: column for markers")
    plot.add_argument("--maximize", action="append", default=[], metavar="COLUMN",
                      help="tradeoff: treat COLUMN as higher-is-better for the Pareto front")
    plot.add_argument("--where", action="append", default=[], metavar="COLUMN=VALUE",
                      help="tradeoff: keep only rows where COLUMN equals VALUE (repeatable)")
    plot.add_argument("--title", help="figure title")
    plot.add_argument("--model", help="breakdown/roofline/timeline: registered model name")
    plot.add_argument("--zoom", metavar="FIRST[:LAST]",
                      help="timeline: layers of the zoomed panel, by name or index (default: "
                           "the three consecutive layers where the array waits longest)")
    plot.add_argument("--accel", default=DEFAULT_ACCEL,
                      help=f"breakdown/roofline: accelerator (default {DEFAULT_ACCEL})")
    plot.add_argument("--batch", type=_positive_int, default=1)
    plot.add_argument("--input", type=_input_shape, help="input shape CxHxW")
    plot.add_argument("--objective", choices=OBJECTIVES,
                      help="what the mapper minimizes (default: the cost model's)")
    plot.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="breakdown/roofline: model.*, accel.*, trace.*, mlg.* ... overrides")
    plot.add_argument("--out", required=True,
                      help="figure file: .png or .svg, or no suffix for both")


def _common(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override, namespaced: model.*, accel.*, trace.*, mlg.*, resrep.*, "
                          "pg.*, cg.* (repeatable)")
    cmd.add_argument("--format", choices=FORMATS, default="table")
    cmd.add_argument("--out", help="folder for layers.csv, summary.json, run.yaml")


# --- config resolution ------------------------------------------------------------------------
def model_kwargs(name: str, cfg: dict) -> dict:
    """Builder kwargs for ``name`` from the ``model`` section and method namespaces of ``cfg``."""
    allowed = models.model_arguments(name)
    settable = {k for k, v in allowed.items()
                if v is None or isinstance(v, (bool, int, float, str))}
    kwargs = {}
    for key, value in cfg.get("model", {}).items():
        if key == "name":
            if value != name:
                raise UsageError(f"--set model.name={value}: disagrees with --model {name}")
            continue
        if key not in settable:
            raise UsageError(f"--set model.{key}: unknown argument of {name}; allowed: "
                             f"{', '.join(sorted(settable))}")
        kwargs[key] = value
    for ns in METHOD_NAMESPACES:
        if ns in cfg:
            if ns not in allowed:
                takers = [m for m in models.list_models() if ns in models.model_arguments(m)]
                raise UsageError(f"--set {ns}.*: model {name} has no {ns} settings; models that "
                                 f"do: {', '.join(takers) or 'none yet'}")
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


def dense_counterpart(name: str) -> str | None:
    """``resnet18`` for ``mlg_resnet18``: the dense model a compressed one is measured against."""
    for prefix in COMPRESSED_PREFIXES:
        if name.startswith(prefix) and name[len(prefix):] in models.list_models():
            return name[len(prefix):]
    return None


def baseline_kwargs(name: str, base_name: str, kwargs: dict) -> dict:
    """Arguments of the dense ``base_name`` for comparison with ``name(**kwargs)``: the ones the
    two builders share, at ``name``'s values (its defaults where they differ: ResRep's ResNets
    default to projection shortcuts); method settings and channel plans are not shared."""
    own, base = models.model_arguments(name), models.model_arguments(base_name)
    return {k: kwargs.get(k, own[k]) for k in base
            if k in own and k not in METHOD_NAMESPACES and (k in kwargs or own[k] != base[k])}


def _load_accel(spec: str, cfg: dict):
    if spec == "none":
        if cfg.get("accel"):
            raise UsageError("--set accel.*: no accelerator (--accel none)")
        return None
    return load_accelerator(spec, cfg.get("accel") or None)


def _graph_for(name: str, kwargs: dict, cfg: dict, args, model=None, shape=None, calib=None):
    """Trace ``model`` (default: built from ``name``, ``kwargs``) at ``--input``, ``shape`` or
    the model's own input size, after the ``calib`` batches."""
    model = model if model is not None else models.create_model(name, **kwargs)
    shape = args.input or shape or models.default_input_shape(name, kwargs.get("in_channels"))
    return trace(model, shape, calib=calib, batch=args.batch, name=name, **cfg.get("trace", {}))


def _report_for(name: str, kwargs: dict, cfg: dict, args, accel, model=None, shape=None,
                calib=None):
    return _graph_report(_graph_for(name, kwargs, cfg, args, model, shape, calib), args, accel)


def _graph_report(graph, args, accel) -> dict:
    report = build_report(graph, accel, objective=args.objective)
    if accel is not None and any(is_gated(layer) for layer in graph.layers):
        report["gating"] = gating_summary(graph, accel, evaluate(graph, accel, args.objective))
    return report


BASELINE_KEYS = ("macs", "weight_bytes", "gen_macs", "weight_dram_bytes", "dram_bytes",
                 "dram_transactions", "compute_cycles", "latency_cycles", "energy_pj",
                 "gen_energy_pj", "dram_energy_pj")


def _baseline(report: dict, base: dict) -> dict:
    ratios = {}
    for key in BASELINE_KEYS:
        a, b = report["totals"].get(key), base["totals"].get(key)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b:
            ratios[f"{key}_ratio"] = a / b
    ratios["memory_ratio"] = report["storage"]["memory_ratio"] / base["storage"]["memory_ratio"]
    return {"model": base["model"], "totals": base["totals"], "storage": base["storage"],
            "ratios": ratios}


RUN_FILES = ("layers.csv", "summary.json", "run.yaml", "timeline.csv")


def save_run(out_dir: str, report: dict, config: dict, timeline=None) -> list[Path]:
    """Write layers.csv, summary.json (the report without layers), run.yaml (``config`` and
    the hwsim version) and, after ``--sim event``, timeline.csv into ``out_dir`` as one set:
    all of them or, on failure, none (``models.checkpoint.write_file_set``)."""
    summary = {k: v for k, v in report.items() if k != "layers"}
    files = {"layers.csv": layers_frame(report).to_csv(index=False).encode(),
             "summary.json": json.dumps(summary, indent=2).encode(),
             "run.yaml": dump_yaml({**config, **provenance()}).encode()}
    if timeline is not None:
        files["timeline.csv"] = timeline.to_csv(index=False).encode()
    return write_file_set(out_dir, files, replaceable=RUN_FILES)


def cmd_run(args) -> int:
    cfg = apply_overrides({}, args.set)
    _check_namespaces(cfg)
    model = shape = None
    if args.checkpoint:
        model, meta = load_checkpoint_model(args.checkpoint)
        name = meta["model"]
        if args.model and args.model != name:
            raise UsageError(f"--model {args.model} disagrees with the checkpoint's model {name}")
        kwargs = dict(meta.get("model_kwargs", {}))
        shape = tuple(meta["input_shape"])
    elif args.model:
        name = args.model
        kwargs = model_kwargs(name, cfg)
    else:
        raise UsageError("hwsim run: give --model NAME or --checkpoint FILE")
    if args.data and not args.checkpoint:
        raise UsageError("--data needs --checkpoint (accuracy of a trained model)")
    accel = _load_accel(args.accel, cfg)
    if args.sim == "event" and accel is None:
        raise UsageError("--sim event needs an accelerator (not --accel none)")
    calib = None
    if args.checkpoint and args.calib:  # gate densities are measured, not assumed
        calib_set = calibration_set(model, args.data or meta.get("data"), args.data_root)
        calib = calibration_batches(calib_set, args.calib) if calib_set is not None else None
    graph = _graph_for(name, kwargs, cfg, args, model, shape, calib)
    report = _graph_report(graph, args, accel)
    sim = _simulate(graph, accel, args.objective) if args.sim == "event" else None
    if sim is not None:
        _add_simulation(report, sim, accel)
    if args.data:
        report["totals"]["test_accuracy"] = evaluate_accuracy(model, args.data, args.data_root)
    base_name = dense_counterpart(name) if args.baseline == "auto" else (
        None if args.baseline == "none" else args.baseline)
    if base_name:
        base_kwargs = baseline_kwargs(name, base_name, kwargs)
        report["baseline"] = _baseline(report, _report_for(base_name, base_kwargs, cfg, args,
                                                           accel, shape=shape))
    if args.out:
        resolved = {"command": "run", "model": {"name": name, **kwargs},
                    "accel": args.accel, "accel_overrides": cfg.get("accel", {}),
                    "trace": cfg.get("trace", {}), "batch": args.batch,
                    "input": list(report["input_shape"][1:]), "objective": args.objective,
                    "checkpoint": args.checkpoint, "sim": args.sim}
        save_run(args.out, report, resolved, sim.timeline if sim is not None else None)
    if args.format == "json":
        print(to_json(report))
    elif args.format == "csv":
        print(layers_frame(report).to_csv(index=False), end="")
    else:
        print(format_table(report), end="")
        if sim is not None:
            print(_simulation_table(report), end="")
        if "gating" in report:
            print(format_summary(report["gating"]))
    return 0


# --- event-driven simulation (hwsim.des) --------------------------------------------------------
DES_TABLE = ("name", "op", "compute_cycles", "latency_cycles", "latency_cycles_des",
             "array_wait_data_cycles", "dma_wait_space_cycles", "dram_busy_fraction",
             "gen_busy_fraction", "array_busy_fraction")


def _simulate(graph, accel, objective: str):
    from .cost import search_mappings
    from .des import simulate

    return simulate(graph, accel, search_mappings(graph, accel, objective))


def _add_simulation(report: dict, sim, accel) -> None:
    """The DES columns into every layer record, its totals beside the analytical ones."""
    for record in report["layers"]:
        record.update({k: float(v) for k, v in sim.layers.loc[record["name"]].items()})
    totals = report["totals"]
    totals.update({
        "latency_cycles_des": sim.latency_cycles,
        "latency_ms_des": sim.latency_cycles / (accel.clock_mhz * 1e3),
        "des_over_analytic_latency": sim.latency_cycles / totals["latency_cycles"],
        "array_wait_data_cycles": float(sim.layers["array_wait_data_cycles"].sum()),
        "dma_wait_space_cycles": float(sim.layers["dma_wait_space_cycles"].sum()),
        "des_events": sim.events})


def _simulation_table(report: dict) -> str:
    frame = layers_frame(report)
    return ("event-driven simulation (cycles; busy fractions over each layer's span):\n"
            + frame[list(DES_TABLE)].to_string(index=False, float_format=figure) + "\n")


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
    if args.what in (None, "models"):
        print("models:")
        for name in models.list_models():
            arguments = models.model_arguments(name)
            shown = ", ".join(f"{k}={v!r}" for k, v in arguments.items()
                              if v is None or isinstance(v, (bool, int, float, str)))
            summary = (models.model_builder(name).__doc__ or "").strip().splitlines()
            print(f"  {name:<20} {summary[0] if summary else ''}\n  {'':<20} {shown}")
    if args.what in (None, "accelerators"):
        print("accelerators:")
        for name in list_accelerators():
            print(f"  {name:<20} {load_accelerator(name).description}")
    return 0


def cmd_export(args) -> int:
    cfg = apply_overrides({}, args.set)
    _check_namespaces(cfg)
    kwargs = model_kwargs(args.model, cfg)
    accel = _load_accel(args.accel, cfg)
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


def _prepare_run(args) -> Run:
    """The config with ``--set`` applied, checked, and its run folder (``hwsim.runs``)."""
    config = apply_overrides(load_yaml(args.config), args.set)
    hardware_section(config)  # a bad config fails here, before a run folder exists
    resolve_config(config, PIPELINE_SECTIONS)
    return prepare_run(config, args.config, args.command, name=args.name,
                       runs_dir=args.runs_dir, resume=args.resume, overwrite=args.overwrite,
                       main_process=_is_main_process(),
                       distributed=os.environ.get("WORLD_SIZE", "1") != "1")


def _in_run(run: Run, work):
    """``work()``, removing ``run``'s folder if it fails before any checkpoint is written;
    Ctrl-C after one says how to continue."""
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
    run = _prepare_run(args)
    resume = args.resume and (run.folder / CHECKPOINT_NAME).is_file()  # stopped before an epoch
    metrics = _in_run(run, lambda: train_from_config(
        run.config, config_path=args.config, resume=resume, progress=not args.no_progress))
    if _is_main_process():
        print(yaml.safe_dump(metrics, sort_keys=False), end="")
    return 0


PIPELINE_SUMMARY = ("model", "stage", "accelerator", "data", "test_acc", "macs", "flops_ratio",
                    "seed_flops", "memory_ratio", "dram_bytes", "latency_ms", "energy_pj",
                    "utilization", "gate_sparsity", "ideal_speedup", "realized_speedup",
                    "energy_saving")


def cmd_pipeline(args) -> int:
    run = _prepare_run(args)
    rows = _in_run(run, lambda: run_pipeline(run.config, progress=not args.no_progress,
                                             resume=args.resume))
    if _is_main_process():
        shown = [c for c in PIPELINE_SUMMARY if c in rows.columns]
        print(rows[shown].to_string(index=False, float_format=figure))
        print(f"appended {len(rows)} row(s) to {hardware_section(run.config)['results']}; "
              f"run folder {run.folder}")
    return 0


def cmd_sweep(args) -> int:
    from .results import done_hashes
    from .sweep import load_sweep, run_sweep

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
                table = table[cells == float(value)]
                continue
            except ValueError:
                raise UsageError(f"--where {item!r}: {column} holds numbers") from None
        table = table[cells.astype(str) == value]
    return table


def cmd_plot(args) -> int:
    from . import plot
    from .sweep import default_objective

    args.objective = args.objective or default_objective()
    if args.kind == "tradeoff":
        from .results import read_table

        if not (args.table and args.x and args.y):
            raise UsageError("hwsim plot tradeoff: give TABLE --x COLUMN --y COLUMN")
        table = _where(read_table(args.table), args.where)
        fig = plot.tradeoff(table, args.x, args.y, color=args.color, marker=args.marker,
                            title=args.title, maximize=tuple(args.maximize))
    else:
        if args.table or not args.model:
            raise UsageError(f"hwsim plot {args.kind}: give --model NAME (and --accel)")
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


COMMANDS = {"run": cmd_run, "list": cmd_list, "export": cmd_export, "train": cmd_train,
            "pipeline": cmd_pipeline, "sweep": cmd_sweep, "plot": cmd_plot}


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
    try:
        args, extra = build_parser().parse_known_args(argv)
        if extra:
            if not hasattr(args, "set"):
                raise UsageError(f"unrecognized arguments: {' '.join(extra)}")
            args.set = [*args.set, *_seed_style_sets(extra)]
        return COMMANDS[args.command](args)
    except BrokenPipeError:  # the reader (e.g. `| head`) left: silence the final flush too
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (UsageError, ValueError, KeyError, OSError) as exc:
        if os.environ.get("HWSIM_DEBUG") == "1":
            raise
        print(f"hwsim: error: {_message(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug, not bad input: still one line, exit 1
        if os.environ.get("HWSIM_DEBUG") == "1":
            raise
        print(f"hwsim: internal error: {type(exc).__name__}: {_message(exc)} (a bug; "
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
