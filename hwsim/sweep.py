"""Design-space sweeps: models x accelerators x knobs into one resumable results table.

A sweep config (YAML, every key checked) names the table and the points::

    results: experiments/results/sweep.csv   # .csv, or .parquet (needs pyarrow)
    checkpoints: runs/sweep                  # trained points: <checkpoints>/<train hash>/last.pt
    base: {accel: {name: systolic_32}, batch: 1}    # every point starts from this config
    points:                                  # a list: each entry is one variant
      - {method: dense, model.name: resnet18}
      - {method: mlg, model.name: mlg_resnet18, mlg.base_out: 44}
    zip: {accel.array.rows: [16, 32], accel.array.cols: [16, 32]}   # lists varied together
    grid: {accel.dram.bw_bytes_per_cycle: [4, 16, 64]}              # cartesian product

The points are points x zip x grid; their keys are the dotted ``--set`` keys of ``hwsim run``
(``model.*``, ``accel.name`` / ``accel.SECTION.KEY``, ``trace.*``, ``mlg.*`` ...) plus
``batch``, ``objective``, ``input`` (CxHxW) and ``method`` (a label for plots). A point with a
training section (``data``, ``optimizer``, ``schedule``, ``train``, ``losses``, ``grad_hooks``,
``init``: the schema of ``hwsim train``) is trained first, its checkpoint keyed by the hash of
its training config so that points differing only in hardware share one run; its accuracy is
measured and the model traced with calibration batches as ``hwsim pipeline`` does. A trained
point with ``quantize: ptq`` is scored after post-training quantization to the widths its trace
runs (``trace.weight_bits`` / ``trace.act_bits``, ``models.ptq``; the fp32 accuracy stays in
``test_acc_fp32``).

Every point is keyed by the SHA-256 of its resolved config (defaults filled in, accelerator
spec files by content); points already in the table are skipped, so an interrupted sweep
resumes where it stopped. A point that fails (a tile that does not fit, a model that cannot
be built) becomes a row with ``status: error`` and its message. Each simulation model is
traced once in this process and its graph shipped to the workers; the points go out in chunks
sorted by accelerator, so an accelerator is built once for all models and whatever the cost
model keeps per graph and array shape is reused. Executors: a local process pool (default,
one worker per core) or Dask distributed.
"""

import collections
import functools
import hashlib
import inspect
import itertools
import json
import math
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from models.paths import check_destination

from .config import METHOD_NAMESPACES, load_yaml, set_dotted
from .executors import dask_results, local_results
from .results import HASH_COLUMN, TABLE_SUFFIXES, append_table, check_table_format, done_hashes

SWEEP_KEYS = ("results", "checkpoints", "base", "points", "zip", "grid")
TRAIN_SECTIONS = ("data", "optimizer", "schedule", "train", "losses", "grad_hooks", "init")
POINT_SECTIONS = ("model", "accel", "trace", *METHOD_NAMESPACES, *TRAIN_SECTIONS)
POINT_SCALARS = {"batch": int, "objective": str, "input": str, "method": str,
                 "calib_batches": int, "calib_batch_size": int, "quantize": str}
CALIB_LEAST = {"calib_batches": 0, "calib_batch_size": 1}  # as hwsim pipeline's hardware keys
QUANTIZE_MODES = ("none", "ptq")  # ptq: accuracy after post-training quantization (models.ptq)
TRACE_KEYS = ("weight_bits", "act_bits")
DEFAULT_ACCEL = "systolic_32"
DEFAULT_RESULTS = "experiments/results/sweep.csv"
DEFAULT_CHECKPOINTS = "runs/sweep"
FLUSH_S = 10.0  # seconds between table appends at least; each append rewrites the table,
FLUSH_SHARE = 0.05  # so appends are spaced to take at most this share of the time
CHUNKS_PER_WORKER = 8  # enough chunks to balance the workers and move the progress bar
MAX_CHUNK = 250


@dataclass(frozen=True)
class Point:
    """One design point: its resolved config, content hash and the swept values that made it.

    Points with equal ``graph_key`` share one traced graph, points with equal ``accel_key``
    one accelerator."""

    config_hash: str
    config: dict
    swept: dict
    graph_key: str
    accel_key: str
    train_hash: str | None = None  # hash of the training config (trained points only)


def _point(config: dict, swept: dict, train_hash: str | None) -> Point:
    graph = {k: config.get(k) for k in ("model", *METHOD_NAMESPACES, "trace", "batch", "input")}
    return Point(_digest(config), config, swept, _digest(graph), _canonical(config["accel"]),
                 train_hash)


@dataclass(frozen=True)
class Sweep:
    results: Path
    checkpoints: Path
    points: tuple[Point, ...]


def _canonical(data) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


def _digest(data) -> str:
    return hashlib.sha256(_canonical(data).encode()).hexdigest()[:16]


# --- expansion ---------------------------------------------------------------------------
def _mapping(value, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(value).__name__}")  # noqa: TRY004
    return value


def _lists(value, where: str) -> dict[str, list]:
    value = _mapping(value, where)
    for key, values in value.items():
        if not isinstance(values, list) or not values:
            raise ValueError(f"{where}.{key}: expected a non-empty list of values, got "
                             f"{values!r}")
    return value


def combinations(raw: dict, where: str = "sweep") -> list[dict]:
    """The dotted-key assignments of every point: ``points`` x ``zip`` x ``grid``, in order."""
    points = raw.get("points")
    if points is None:
        points = [{}]
    if not isinstance(points, list) or not points:
        raise ValueError(f"{where}.points: expected a non-empty list of mappings")
    for i, entry in enumerate(points):
        _mapping(entry, f"{where}.points[{i}]")
    zipped = _lists(raw.get("zip"), f"{where}.zip")
    lengths = {len(v) for v in zipped.values()}
    if len(lengths) > 1:
        raise ValueError(f"{where}.zip: lists must have equal lengths, got "
                         + ", ".join(f"{k}: {len(v)}" for k, v in zipped.items()))
    zip_rows = [dict(zip(zipped, values)) for values in zip(*zipped.values())] or [{}]
    grid = _lists(raw.get("grid"), f"{where}.grid")
    for key in {*grid, *zipped, *(k for entry in points for k in entry)}:
        if not isinstance(key, str) or not key or any(not part for part in key.split(".")):
            raise ValueError(f"{where}: {key!r} is not a dotted key like accel.array.rows")
    grid_rows = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    return [{**p, **z, **g} for p in points for z in zip_rows for g in grid_rows]


def _copy(node):
    """A copy of a YAML tree: new dicts and lists all the way down, scalars shared."""
    if isinstance(node, dict):
        return {k: _copy(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_copy(v) for v in node]
    return node


def _point_config(base: dict, assignments: dict) -> dict:
    config = _copy(base)
    for key, value in assignments.items():
        set_dotted(config, key, value)
    return config


def _check_point(config: dict, where: str) -> None:
    for key, value in config.items():
        if key in POINT_SCALARS:
            expected = POINT_SCALARS[key]
            if not isinstance(value, expected) or isinstance(value, bool):
                raise ValueError(f"{where}: {key} must be {expected.__name__}, got {value!r}")
        elif key in POINT_SECTIONS:
            _mapping(value, f"{where}: {key}")
        else:
            raise ValueError(f"{where}: unknown key {key!r}; allowed: "
                             f"{', '.join((*POINT_SECTIONS, *POINT_SCALARS))}")
    if not isinstance(config.get("model", {}).get("name"), str):
        raise ValueError(f"{where}: model.name is required (a registered model)")
    for key in config.get("trace", {}):
        if key not in TRACE_KEYS:
            raise ValueError(f"{where}: trace.{key}: unknown key; allowed: "
                             f"{', '.join(TRACE_KEYS)}")
    for key, least in CALIB_LEAST.items():
        if key in config and config[key] < least:
            raise ValueError(f"{where}: {key} must be >= {least}, got {config[key]!r}")
    if config.get("quantize", "none") not in QUANTIZE_MODES:
        raise ValueError(f"{where}: quantize must be one of {', '.join(QUANTIZE_MODES)}, got "
                         f"{config['quantize']!r}")
    if config.get("quantize", "none") != "none" and _training_config(config) is None:
        raise ValueError(f"{where}: quantize: {config['quantize']} needs a trained point "
                         f"(a {' / '.join(TRAIN_SECTIONS)} section)")
    if "out_dir" in config.get("train", {}):
        raise ValueError(f"{where}: train.out_dir is set by the sweep (checkpoints/<hash>); "
                         "set checkpoints: instead")


def _input_shape(text: str | None, where: str) -> list[int] | None:
    if text is None:
        return None
    dims = text.split("x")
    if len(dims) != 3 or not all(d.isdigit() and int(d) > 0 for d in dims):
        raise ValueError(f"{where}: input must be CxHxW with positive integers, got {text!r}")
    return [int(d) for d in dims]


def resolve_point(config: dict, where: str, spec_digests: dict[str, str],
                  objective: str) -> dict:
    """Defaults filled in (``objective`` where none is given); the accelerator spec file
    enters by its content digest."""
    from .accel import _resolve

    _check_point(config, where)
    accel = dict(config.get("accel", {}))
    name = accel.pop("name", DEFAULT_ACCEL)
    if name not in spec_digests:
        path = _resolve(str(name))
        if not path.is_file():
            raise FileNotFoundError(f"{where}: accel.name {name}: no such file (or a folder)")
        spec_digests[name] = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    resolved = {k: v for k, v in config.items() if k not in ("accel", "input")}
    resolved.update({
        "accel": {"name": name, "overrides": accel, "spec_sha256": spec_digests[name]},
        "trace": dict(config.get("trace", {})),
        "batch": config.get("batch", 1),
        "objective": config.get("objective") or objective,
        "input": _input_shape(config.get("input"), where),
        "method": config.get("method") or method_label(config["model"]["name"]),
    })
    return resolved


def method_label(model_name: str) -> str:
    """``mlg`` for ``mlg_resnet18``, ``dense`` for a plain model: the default plot colour."""
    prefix = model_name.split("_", 1)[0]
    return prefix if prefix in METHOD_NAMESPACES and "_" in model_name else "dense"


def _training_config(config: dict) -> dict | None:
    if not any(section in config for section in TRAIN_SECTIONS):
        return None
    return {k: v for k, v in config.items() if k in ("model", *METHOD_NAMESPACES,
                                                    *TRAIN_SECTIONS)}


def load_sweep(path: str | os.PathLike, overrides: list[str] | None = None) -> Sweep:
    """Read and expand a sweep config; ``overrides`` are ``--set`` items on the config."""
    from .config import apply_overrides

    raw = apply_overrides(load_yaml(path), overrides or [])
    where = Path(path).name
    for key in raw:
        if key not in SWEEP_KEYS:
            raise ValueError(f"{where}: unknown key {key!r}; allowed: {', '.join(SWEEP_KEYS)}")
    paths = {}
    for key, default, kind in (("results", DEFAULT_RESULTS, "file"),
                               ("checkpoints", DEFAULT_CHECKPOINTS, "folder")):
        given = raw.get(key, default)
        if not isinstance(given, str) or not given:
            raise ValueError(f"{where}: {key} must be a path, got {given!r}")
        try:  # now, not after the models are traced (or trained)
            check_destination(Path(given), kind)
        except ValueError as exc:
            raise ValueError(f"{where}: {key}: {exc}") from None
        paths[key] = Path(given)
    results, checkpoints = paths["results"], paths["checkpoints"]
    if results.suffix not in TABLE_SUFFIXES:
        raise ValueError(f"{where}: results must end in {' or '.join(TABLE_SUFFIXES)}, "
                         f"got {str(results)!r}")
    try:
        check_table_format(results)
    except ValueError as exc:
        raise ValueError(f"{where}: results: {exc}") from None
    base = _mapping(raw.get("base"), f"{where}.base")
    digests: dict[str, str] = {}
    from .objective import DEFAULT_OBJECTIVE

    objective = DEFAULT_OBJECTIVE
    points, trained = [], {}
    for i, assignments in enumerate(combinations(raw, where)):
        config = _point_config(base, assignments)
        resolved = resolve_point(config, f"{where}: point {i} ({_describe(assignments)})",
                                 digests, objective)
        train_cfg = _training_config(resolved)
        train_hash = None
        if train_cfg is not None:
            key = _digest(train_cfg)
            if key not in trained:
                trained[key] = _digest(_resolve_training(train_cfg, where))
            train_hash = trained[key]
        points.append(_point(resolved, assignments, train_hash))
    seen: dict[str, int] = {}
    for i, point in enumerate(points):
        j = seen.setdefault(point.config_hash, i)
        if j != i:
            raise ValueError(f"{where}: points {j} and {i} resolve to the same config")
    return Sweep(results, checkpoints, tuple(points))


def _describe(assignments: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in assignments.items()) or "base"


def _resolve_training(train_cfg: dict, where: str) -> dict:
    from models.train import resolve_config

    try:
        return resolve_config(train_cfg)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


# --- evaluating points (these run on the workers) ----------------------------------------
def _base_row(point: Point) -> dict:
    from models.provenance import provenance

    c = point.config
    return {HASH_COLUMN: point.config_hash, "status": "ok", "error": "", "method": c["method"],
            "model": c["model"]["name"], "accelerator": c["accel"]["name"],
            "batch": c["batch"], "objective": c["objective"], "test_acc": math.nan,
            **{key: _cell(value) for key, value in point.swept.items()}, **provenance()}


def _cell(value):
    return value if isinstance(value, (int, float, str, bool)) else json.dumps(value)


def error_row(point: Point, exc: BaseException) -> dict:
    # str() of a KeyError quotes its message (the registry's "unknown model ..." is one line)
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
    message = " ".join(str(text).split()) or type(exc).__name__
    if not isinstance(exc, ValueError):  # ValueErrors are our one-line messages already
        message = f"{type(exc).__name__}: {message}"
    return {**_base_row(point), "status": "error", "error": message,
            "time_utc": _now(), "config": json.dumps(point.config, sort_keys=True)}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@functools.lru_cache(maxsize=8)
def _accelerator(accel_key: str):
    """The accelerator of a point's ``accel`` section (``Point.accel_key``); points come
    sorted by it, so neighbours share one spec instead of each building its own."""
    from .accel import load_accelerator

    accel = json.loads(accel_key)
    return load_accelerator(accel["name"], accel["overrides"] or None)


def _hardware_row(point: Point, graph, extra: dict | None = None) -> dict:
    from .record import evaluate_record, record_row

    c = point.config
    accel = _accelerator(point.accel_key)
    record = evaluate_record(graph, accel, c["objective"], per_layer=False)
    row = _base_row(point)
    row.update({k: v for k, v in record_row(record).items()
                if k not in ("model", "accelerator", "objective", "tech_citation")})
    row.update(extra or {})
    row.update({"time_utc": _now(), "config": json.dumps(c, sort_keys=True)})
    return row


def _model_kwargs(config: dict) -> dict:
    from .catalog import MODELS, no_namespace

    name = config["model"]["name"]
    kwargs = {k: v for k, v in config["model"].items() if k != "name"}
    for ns in METHOD_NAMESPACES:
        if ns in config:  # the message hwsim run gives, not the builder's "unknown argument"
            if name in MODELS and ns not in MODELS[name]["namespaces"]:
                raise ValueError(f"{ns}.*: {no_namespace(name, ns)}")
            kwargs[ns] = config[ns]
    return kwargs


def trace_point(config: dict):
    """The LayerGraph of a simulation point's model (random weights: costs need shapes only)."""
    import torch

    import models

    from .trace import trace

    name = config["model"]["name"]
    kwargs = _model_kwargs(config)
    torch.manual_seed(0)
    model = models.create_model(name, **kwargs)
    shape = config["input"] or models.default_input_shape(name, kwargs.get("in_channels"))
    return trace(model, tuple(shape), batch=config["batch"], name=name, **config["trace"])


def run_simulation_chunk(graphs: dict, points: list[Point]) -> list[dict]:
    """Rows of simulation points, each costed on ``graphs[point.graph_key]``; a failing point
    becomes an error row."""
    rows = []
    for point in points:
        try:
            rows.append(_hardware_row(point, graphs[point.graph_key]))
        except Exception as exc:  # noqa: BLE001  (a failed point is a row, not a crash)
            rows.append(error_row(point, exc))
    return rows


def _trained_model(checkpoint: str, test_acc: float) -> tuple:
    """The model to cost for a finished training run (``test_acc``: as training measured it),
    its metadata, its training split (for calibration), the test set training scored on and
    the row columns it adds. A ResRep compactor model is converted to its narrower network
    and scored again, as ``hwsim pipeline`` does (``pipeline.pruned_checkpoint``)."""
    import torch

    from models.data import load_dataset, sample
    from models.resrep import seed_flops
    from models.train import evaluate as evaluate_accuracy

    from .pipeline import EVAL_BATCH_SIZE, load_checkpoint_model, pruned_checkpoint

    costed, extra = pruned_checkpoint(checkpoint, test_acc)
    model, meta = load_checkpoint_model(costed)
    data = meta["config"]["data"]
    train_set, test_set = load_dataset(data["name"], data["root"], data["download"],
                                       data["split"])
    scored = sample(test_set, data["test_subset"])  # what training scored on
    if extra:  # the seed's FLOPs counter beside ours, as the pipeline's rows
        test_acc = evaluate_accuracy(model, scored, EVAL_BATCH_SIZE, torch.device("cpu"))[1]
        extra["seed_flops"] = seed_flops(model, meta["input_shape"])
    return model, meta, train_set, scored, {
        "test_acc": test_acc, **extra, "checkpoint": costed, "checkpoint_sha256": meta["sha256"]}


def _ptq_accuracy(model, scored, calib: list, trace_bits: dict, extra: dict) -> dict:
    """Row columns of a ``quantize: ptq`` point: the test accuracy of ``model`` quantized
    after training to the widths the point's trace runs (``models.ptq``); the unquantized
    accuracy moves to ``test_acc_fp32``."""
    import torch

    from models.ptq import post_training_quantize
    from models.train import evaluate as evaluate_accuracy

    from .pipeline import EVAL_BATCH_SIZE
    from .trace import trace

    defaults = inspect.signature(trace).parameters
    bits = {k: trace_bits.get(k, defaults[k].default) for k in TRACE_KEYS}
    quantized = post_training_quantize(model, bits["weight_bits"], bits["act_bits"], calib)
    accuracy = evaluate_accuracy(quantized, scored, EVAL_BATCH_SIZE, torch.device("cpu"))[1]
    return {"test_acc": accuracy, "test_acc_fp32": extra["test_acc"],
            "ptq_weight_bits": bits["weight_bits"], "ptq_act_bits": bits["act_bits"]}


def run_training_group(points: list[Point], checkpoints: str) -> list[dict]:
    """Train (or reuse) the checkpoint the points share, then cost it for every point."""
    import torch

    from models.registry import create_model
    from models.resrep import unpruned_kwargs
    from models.train import CHECKPOINT_NAME, train

    from .pipeline import HARDWARE, calibration_batches
    from .trace import trace

    first = points[0]
    train_cfg = _training_config(first.config)
    out_dir = Path(checkpoints) / first.train_hash
    train_cfg["train"] = {**train_cfg.get("train", {}), "out_dir": str(out_dir)}
    try:
        metrics = train(train_cfg, resume=(out_dir / CHECKPOINT_NAME).is_file(), progress=False)
        model, meta, train_set, scored, extra = _trained_model(metrics["checkpoint"],
                                                               metrics["test_acc"])
    except Exception as exc:  # noqa: BLE001
        return [error_row(point, exc) for point in points]
    extra = {**extra, "train_hash": first.train_hash}
    rows, graphs, full_macs = [], {}, {}  # full_macs: the unpruned model's, per graph key
    for point in points:
        c = point.config
        try:
            key = point.graph_key + str(c.get("calib_batches")) + str(c.get("calib_batch_size")) \
                + str(c.get("quantize"))
            if key not in graphs:
                calib = calibration_batches(
                    train_set, c.get("calib_batches", HARDWARE["calib_batches"][0]),
                    c.get("calib_batch_size", HARDWARE["calib_batch_size"][0]))
                shape = (c["batch"], *meta["input_shape"])
                with torch.no_grad():
                    graph = trace(model, shape, calib=calib, name=meta["model"], **c["trace"])
                    if point.graph_key not in full_macs:
                        full = create_model(meta["model"],
                                            **unpruned_kwargs(meta["model_kwargs"]))
                        full_macs[point.graph_key] = trace(full, shape, name=meta["model"],
                                                           **c["trace"]).macs
                # Conv + FC MACs against the same architecture at full width (1 unpruned).
                columns = {"flops_ratio": graph.macs / full_macs[point.graph_key]}
                if c.get("quantize") == "ptq":  # one quantized scoring for all its accelerators
                    columns.update(_ptq_accuracy(model, scored, calib, c["trace"], extra))
                graphs[key] = graph, columns
            graph, columns = graphs[key]
            rows.append(_hardware_row(point, graph, {**extra, **columns}))
        except Exception as exc:  # noqa: BLE001
            rows.append({**error_row(point, exc), **extra})
    return rows


# --- planning and executing --------------------------------------------------------------
@dataclass(frozen=True)
class Task:
    """One unit of work for a worker: a chunk of simulation points or one training group."""

    points: tuple[Point, ...]
    graph_keys: tuple[str, ...] | None  # simulation chunks: the graphs they need; None: trains


def plan(points: list[Point], workers: int) -> list[Task]:
    """Simulation points in chunks, sorted by accelerator and graph (each accelerator is built
    once for all models, and the cost model's caches per array shape stay warm); trained
    points grouped by checkpoint."""
    simulated = sorted((p for p in points if p.train_hash is None),
                       key=lambda p: (p.accel_key, p.graph_key))
    by_train: dict[str, list[Point]] = {}
    for point in points:
        if point.train_hash is not None:
            by_train.setdefault(point.train_hash, []).append(point)
    size = max(1, min(MAX_CHUNK, math.ceil(len(simulated) / max(1, workers * CHUNKS_PER_WORKER))))
    tasks = [Task(tuple(group), None) for group in by_train.values()]
    for i in range(0, len(simulated), size):
        chunk = tuple(simulated[i:i + size])
        tasks.append(Task(chunk, tuple(dict.fromkeys(p.graph_key for p in chunk))))
    return tasks


def trace_graphs(points: list[Point], progress: bool) -> tuple[dict, list[dict]]:
    """Trace every graph the simulation points need once; the points of a graph that fails
    become error rows."""
    from tqdm import tqdm

    configs = {}
    for point in points:
        if point.train_hash is None:
            configs.setdefault(point.graph_key, point.config)
    graphs, failed = {}, {}
    for key, config in tqdm(configs.items(), desc="trace", unit="model",
                            disable=not progress or not configs):
        try:
            graphs[key] = trace_point(config)
        except Exception as exc:  # noqa: BLE001
            failed[key] = exc
    rows = [error_row(point, failed[point.graph_key]) for point in points
            if point.train_hash is None and point.graph_key in failed]
    return graphs, rows


def run_task(task: Task, graphs: dict, checkpoints: str) -> list[dict]:
    """The rows of one task; ``graphs`` holds (at least) the traced graphs a simulation chunk
    needs, by graph key."""
    if task.graph_keys is None:
        return run_training_group(list(task.points), checkpoints)
    return run_simulation_chunk(graphs, list(task.points))


@dataclass(frozen=True)
class SweepReport:
    """What a sweep did: points in the config, already in the table, run now, failed now."""

    total: int
    skipped: int
    ran: int
    failed: int
    results: Path
    errors: tuple[tuple[str, int], ...] = ()  # the failed points' messages, most common first


def run_sweep(sweep: Sweep, executor: str = "local", workers: int | None = None,
              scheduler: str | None = None, train_resource: str | None = "GPU",
              progress: bool = True, retry_errors: bool = False) -> SweepReport:
    """Run the points not yet in the table and append their rows (every ``FLUSH_S`` seconds).

    ``executor``: ``local`` (process pool of ``workers``, default one per core) or ``dask``
    (``scheduler`` address of an existing cluster, else a local cluster of ``workers``).
    An interrupted sweep keeps the rows appended so far. ``retry_errors`` runs the points
    whose row is an error again (their new rows replace the old).
    """
    from tqdm import tqdm

    if executor not in ("local", "dask"):
        raise ValueError(f"executor must be local or dask, got {executor!r}")
    workers = workers or os.cpu_count() or 1
    if workers <= 0:
        raise ValueError(f"workers must be > 0, got {workers}")
    done = done_hashes(sweep.results, errors=not retry_errors)
    pending = [p for p in sweep.points if p.config_hash not in done]
    report = SweepReport(len(sweep.points), len(sweep.points) - len(pending), 0, 0,
                         sweep.results)
    if not pending:
        return report
    graphs, rows = trace_graphs(pending, progress)
    tasks = plan([p for p in pending if p.train_hash is not None or p.graph_key in graphs],
                 workers)
    ran, failed = len(rows), len(rows)
    errors = collections.Counter(row["error"] for row in rows)
    bar = tqdm(total=len(pending), initial=len(rows), unit="point", desc="sweep",
               disable=not progress, smoothing=0.1)
    last_flush, flush_s = time.monotonic(), 0.0
    if executor == "dask":
        results = dask_results(run_task, tasks, graphs, str(sweep.checkpoints), workers,
                               scheduler, train_resource)
    else:
        results = local_results(run_task, tasks, graphs, str(sweep.checkpoints), workers)
    try:
        for _, task_rows in results:
            rows += task_rows
            ran += len(task_rows)
            failed += sum(row["status"] == "error" for row in task_rows)
            errors.update(row["error"] for row in task_rows if row["status"] == "error")
            bar.update(len(task_rows))
            if time.monotonic() - last_flush > max(FLUSH_S, flush_s / FLUSH_SHARE):
                started = time.monotonic()
                append_table(sweep.results, rows)
                rows, last_flush = [], time.monotonic()
                flush_s = last_flush - started
    finally:
        bar.close()
        if rows:
            append_table(sweep.results, rows)
    return SweepReport(report.total, report.skipped, ran, failed, sweep.results,
                       tuple(errors.most_common()))


__all__ = ["Point", "Sweep", "SweepReport", "combinations", "load_sweep", "resolve_point",
           "run_sweep"]
