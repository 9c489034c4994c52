"""Train (or load a checkpoint) → test accuracy → trace with calibration → cost → results row.

The one place besides the CLI that joins ``models`` and ``hwsim`` (docs/architecture.md, The
flow). A pipeline config is a training config (``models.train.SCHEMA``) plus two top-level keys:

- ``checkpoint``: a trained checkpoint to use instead of training (optional);
- ``hardware``: what to measure it on, keys and defaults in ``HARDWARE`` below.

Each (model, accelerator) pair appends one row to ``hardware.results``: the result record of
``hwsim.record.evaluate_record`` flattened (``record_row``: accuracy, hardware totals, storage,
for a compressed model its dense baseline's ratios, for a gated one the gating summary), the
resolved config as a JSON string, the checkpoint's SHA-256 and the hwsim version and git
commit that made the row. Appends hold a file lock and
replace the table atomically, so concurrent jobs of a sweep can share one table.

Channel pruning (ResRep) adds a third key, ``base``: the dense model's own training config
(``data`` defaults to the main one's) or ``{checkpoint: PATH}``. The pipeline trains it first,
hands its checkpoint to the ``resrep_base`` initializer (unless that names one), trains the
compactor model, converts it to the narrower network (``pruned.pt`` beside ``last.pt``; the
base trains in ``<train.out_dir>/base`` unless ``base.train.out_dir`` names a folder) and
writes rows for both, with ``stage`` (base / pruned), ``flops_ratio`` (MACs against the
unpruned architecture), ``seed_flops`` (the seed's counter, docs/methods.md, ResRep: FLOPs)
and the conversion's figures.
"""

import itertools
import json
import os
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from models.checkpoint import build_model, file_digest, load_checkpoint
from models.data import ImageSet, dataset_shape, load_dataset, sample
from models.paths import check_destination
from models.provenance import provenance
from models.registry import create_model, list_models
from models.resrep import (
    DENSE_FORM,
    convert_checkpoint,
    dense_mismatch,
    has_compactors,
    seed_flops,
    unpruned_kwargs,
)
from models.train import (
    CHECKPOINT_NAME,
    check_section,
    evaluate,
    model_spec,
    resolve_config,
    train,
)

from .accel import load_accelerator
from .config import CALIB_LEAST
from .cost import DEFAULT_OBJECTIVE, OBJECTIVES
from .record import Baseline, baseline_name, evaluate_record, record_row, trace_baseline
from .results import append_table, check_table_format
from .trace import MAX_BATCH, MAX_BITS, trace

# key -> (default, allowed types)
HARDWARE: dict[str, tuple[object, tuple[type, ...]]] = {
    "accelerators": (["systolic_32"], (list,)),  # preset names or YAML paths
    "batch": (1, (int,)),  # batch the accelerator runs
    "calib_batches": (2, (int,)),  # training batches run before reading dynamic statistics
    "calib_batch_size": (64, (int,)),
    "objective": (DEFAULT_OBJECTIVE, (str,)),  # what the mapper minimizes, as hwsim run does
    "weight_bits": (8, (int,)),  # precision of layers that do not state their own
    "act_bits": (8, (int,)),
    "results": ("experiments/results/results.csv", (str,)),
}
PIPELINE_SECTIONS = ("hardware", "checkpoint", "base")
BASE_KEYS = ("model", "data", "optimizer", "schedule", "train", "losses", "grad_hooks", "init",
             "checkpoint")
EVAL_BATCH_SIZE = 256
BASE_FOLDER = "base"  # a ResRep base trains in <train.out_dir>/base unless it names a folder


def _hardware_keys(section: object) -> dict:
    """``section`` checked against ``HARDWARE``, defaults filled in (no file-system checks)."""
    return check_section("hardware", section, HARDWARE, choices={"objective": OBJECTIVES},
                         positive=("batch", "weight_bits", "act_bits",
                                   *(k for k, least in CALIB_LEAST.items() if least == 1)),
                         non_negative=tuple(k for k, least in CALIB_LEAST.items() if least == 0),
                         items={"accelerators": ((str,), None)},
                         at_most={"weight_bits": MAX_BITS, "act_bits": MAX_BITS,
                                  "batch": MAX_BATCH})


def hardware_section(config: dict) -> dict:
    """The ``hardware`` section with defaults filled in; unknown keys and bad values are errors."""
    hw = _hardware_keys(config.get("hardware"))
    if not hw["accelerators"]:
        raise ValueError("hardware.accelerators: give at least one accelerator")
    results = Path(hw["results"])
    if not results.name:
        raise ValueError(f"hardware.results: {results} is a folder; give the CSV file to "
                         f"append to")
    try:
        check_destination(results, "file")
        check_table_format(results)
    except ValueError as exc:
        raise ValueError(f"hardware.results: {exc}") from None
    checkpoint = config.get("checkpoint")
    if checkpoint is not None and not (isinstance(checkpoint, str) and checkpoint):
        raise ValueError(f"checkpoint: must be the path of a trained checkpoint, got "
                         f"{checkpoint!r}")
    return hw


def train_from_config(config: dict, config_path: str | None = None, resume: bool = False,
                      progress: bool = True) -> dict:
    """Train the model of ``config`` (``hwsim train``); returns the final metrics.

    The metrics include ``test_acc`` and ``checkpoint`` (the path of the final checkpoint).
    """
    hardware_section(config)  # a typo there should fail now, not after training
    return train(config, resume=resume, progress=progress, config_path=config_path,
                 extra_sections=PIPELINE_SECTIONS)


def load_checkpoint_model(path: str | os.PathLike) -> tuple[nn.Module, dict]:
    """Rebuild a checkpoint's model (eval mode) and describe it (``hwsim run --checkpoint``).

    ``meta`` holds ``model`` (builder name), ``model_kwargs``, ``input_shape`` (C, H, W) the
    model was trained on, ``data``, ``config``, ``epoch``, ``metrics`` (last epoch's) and
    ``sha256`` of the file.
    """
    checkpoint = load_checkpoint(path)
    return build_model(checkpoint, path).eval(), _checkpoint_meta(checkpoint, path)


def _checkpoint_meta(checkpoint: dict, path: str | os.PathLike) -> dict:
    """``load_checkpoint_model``'s ``meta`` of the loaded ``checkpoint`` read from ``path``."""
    history = checkpoint.get("history") or [{}]
    return {"model": checkpoint["model_name"], "model_kwargs": checkpoint["model_kwargs"],
            "input_shape": tuple(checkpoint["input_shape"]), "data": checkpoint.get("data"),
            "config": checkpoint["config"], "epoch": checkpoint.get("epoch"),
            "metrics": history[-1], "sha256": file_digest(path)}


def _accuracy(model: nn.Module, test_set: ImageSet, batch_size: int) -> float:
    expected = tuple(test_set.input_shape)
    try:
        return evaluate(model, test_set, batch_size, torch.device("cpu"))[1]
    except RuntimeError as exc:
        raise ValueError(f"data {test_set.name}: inputs of shape {expected} do not fit the model "
                         f"({str(exc).splitlines()[0]})") from None


def evaluate_accuracy(model: nn.Module, data_name: str, data_root: str | None = None,
                      batch_size: int = EVAL_BATCH_SIZE) -> float:
    """Top-1 accuracy of ``model`` on the test split of dataset ``data_name``."""
    _, test_set = load_dataset(data_name, data_root)
    return _accuracy(model, test_set, batch_size)


def calibration_batches(train_set: ImageSet, batches: int = HARDWARE["calib_batches"][0],
                        batch_size: int = HARDWARE["calib_batch_size"][0]) -> list[torch.Tensor]:
    """The first ``batches`` training batches, unaugmented (as the model will see data): the
    inputs dynamic statistics such as gate densities are measured on."""
    return [images for images, _ in itertools.islice(train_set.batches(batch_size), batches)]


def checkpoint_hardware(meta: dict) -> dict:
    """The ``hardware`` keys of the pipeline that trained a checkpoint (the section of the
    config it stores; the defaults for a ``hwsim train`` checkpoint or a section this hwsim
    does not accept) and the ``split`` and ``root`` of its data: what ``hwsim run
    --checkpoint`` traces and calibrates with unless its options say, so it reproduces the
    results rows."""
    config = meta.get("config") or {}
    try:
        hw = _hardware_keys(config.get("hardware"))
    except ValueError:
        hw = _hardware_keys(None)
    data = config.get("data")
    data = data if isinstance(data, dict) else {}
    return {**hw, "split": data.get("split") or "standard", "root": data.get("root")}


def calibration_set(model: nn.Module, data_name: str | None, data_root: str | None = None,
                    split: str = "standard") -> ImageSet | None:
    """Training set of ``data_name`` (its ``split``) when ``model`` keeps dynamic statistics,
    else None."""
    if not any(hasattr(m, "reset_hw_stats") for m in model.modules()):
        return None
    if not data_name:
        raise ValueError("the model has gated layers whose densities are measured on data: "
                         "give --data NAME (calibration uses its training split)")
    return load_dataset(data_name, data_root, split=split)[0]


def append_rows(path: str | os.PathLike, rows: pd.DataFrame) -> None:
    """Append ``rows`` to the table at ``path``: locked read, append, atomic replace."""
    append_table(path, rows)


def base_config(config: dict) -> dict | None:
    """The ``base`` section as a config of its own (``data`` from the main config), or None."""
    base = config.get("base")
    if base is None:
        return None
    if not isinstance(base, dict):
        raise ValueError(f"base: must be a mapping (a training config or checkpoint: PATH), "  # noqa: TRY004
                         f"got {base!r}")
    for key in base:
        if key not in BASE_KEYS:
            raise ValueError(f"base.{key}: unknown key; allowed: {', '.join(BASE_KEYS)}")
    base = {"data": config.get("data"), **base}
    if not base.get("checkpoint"):
        main_out = resolve_config(config, PIPELINE_SECTIONS)["train"]["out_dir"]
        section = base.get("train") or {}
        if isinstance(section, dict) and "out_dir" not in section:  # the run's own subfolder
            base["train"] = {**section, "out_dir": str(Path(main_out) / BASE_FOLDER)}
        resolved = resolve_config({k: v for k, v in base.items() if k != "checkpoint"})
        if Path(resolved["train"]["out_dir"]) == Path(main_out):
            raise ValueError(f"base.train.out_dir: {main_out} is the main run's folder; give "
                             f"the base model its own")
    return base


def _with_base(config: dict, base_checkpoint: str) -> dict:
    """``config`` whose ``resrep_base`` initializer starts from ``base_checkpoint``."""
    init = dict(config.get("init") or {})
    if "resrep_base" in init and not (init["resrep_base"] or {}).get("checkpoint"):
        init["resrep_base"] = {**(init["resrep_base"] or {}), "checkpoint": base_checkpoint}
    return {**config, "init": init}


def pruned_checkpoint(checkpoint: str, test_acc: float | None
                      ) -> tuple[str, dict, nn.Module, dict]:
    """The checkpoint to cost for the trained ``checkpoint``, the columns its rows gain and
    its model and meta (``load_checkpoint_model``; each file is read once).

    A ResRep compactor model is converted to its narrower network, saved as ``pruned.pt``
    beside it; the columns keep what training measured (``test_acc_unconverted``: the mask
    does not act in the forward pass, so conversion can change the accuracy, which the caller
    scores again), the largest dropped compactor row, the channel plan and the unconverted
    checkpoint. Any other checkpoint is returned as it is, with no columns.
    """
    loaded = load_checkpoint(checkpoint)
    model = build_model(loaded, checkpoint).eval()
    if not has_compactors(model):
        return checkpoint, {}, model, _checkpoint_meta(loaded, checkpoint)
    pruned = str(Path(checkpoint).with_name("pruned.pt"))
    conversion = convert_checkpoint(checkpoint, pruned, (loaded, model))
    return pruned, {"test_acc_unconverted": test_acc,
                    "dropped_row_norm": conversion.dropped_row_norm,
                    "channels": json.dumps(list(conversion.channels)),
                    "unconverted_checkpoint": checkpoint}, *load_checkpoint_model(pruned)


def _check_dense_base(config: dict, base_train: dict) -> None:
    """A base that the main model's ``resrep_base`` initializer cannot start from is an error
    before the base trains, not after."""
    init = config.get("init") or {}
    if "resrep_base" not in init or (init["resrep_base"] or {}).get("checkpoint"):
        return
    built = []
    for cfg in (resolve_config(config, PIPELINE_SECTIONS), resolve_config(base_train)):
        name, kwargs = model_spec(cfg, *dataset_shape(cfg["data"]["name"]))  # no data read
        built.append((name, create_model(name, **kwargs)))
    (name, model), (dense_name, dense) = built
    bad = dense_mismatch(model.state_dict(), dense.state_dict())
    if bad:
        raise ValueError(f"base.model: {dense_name} is not the dense form of {name} (first "
                         f"mismatch: {bad}); {DENSE_FORM}")


def _stage_rows(stage: str, checkpoint_path: str, loaded: tuple[nn.Module, dict],
                test_acc: float | None, extra: dict, resolved: dict, hw: dict,
                accelerators: list, train_set: ImageSet, test_set: ImageSet,
                resrep_columns: bool,
                baseline: Baseline | None = None) -> tuple[list[dict], Baseline]:
    """One results row per accelerator for the checkpoint of one pipeline stage (the record
    of ``hwsim.record.evaluate_record``, flattened), and the stage as a baseline for the next;
    ``loaded``: ``load_checkpoint_model(checkpoint_path)``.

    The baseline is ``baseline`` (the trained base stage) or else the policy's dense
    counterpart of a compressed model, traced like this stage's graph.
    """
    data_cfg = resolved["data"]
    model, meta = loaded
    if test_acc is None:
        test_acc = _accuracy(model, sample(test_set, data_cfg["test_subset"]), EVAL_BATCH_SIZE)

    calib = calibration_batches(train_set, hw["calib_batches"], hw["calib_batch_size"])
    shape = (hw["batch"], *meta["input_shape"])
    bits = {"weight_bits": hw["weight_bits"], "act_bits": hw["act_bits"]}
    graph = trace(model, shape, calib=calib, name=meta["model"], **bits)
    if baseline is None:
        base = baseline_name(meta["model"], "auto", list_models())
        if base is not None:
            baseline = trace_baseline(meta["model"], meta["model_kwargs"], graph, bits, base)
    if resrep_columns:
        full = create_model(meta["model"], **unpruned_kwargs(meta["model_kwargs"]))
        extra = {"stage": stage,
                 "flops_ratio": graph.macs / trace(full, shape, **bits).macs,
                 "seed_flops": seed_flops(model, meta["input_shape"]), **extra}
    rows = []
    for accel in accelerators:
        record = evaluate_record(graph, accel, hw["objective"], baseline=baseline,
                                 test_acc=test_acc, per_layer=False)
        rows.append({
            "time_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "data": data_cfg["name"], "batch": hw["batch"], **provenance(), **extra,
            **record_row(record),
            "model_kwargs": json.dumps(meta["model_kwargs"], sort_keys=True),
            "config": json.dumps(resolved, sort_keys=True),
            "checkpoint": checkpoint_path, "checkpoint_sha256": meta["sha256"]})
    return rows, Baseline(graph, test_acc)


def _resumes(config: dict, resume: bool) -> bool:
    """Resume the training of ``config`` only where it left a checkpoint (a ResRep pipeline
    stopped while training its base has none for the main model yet)."""
    out_dir = resolve_config(config, PIPELINE_SECTIONS)["train"]["out_dir"]
    return resume and (Path(out_dir) / CHECKPOINT_NAME).is_file()


def run_pipeline(config: dict, progress: bool = True, resume: bool = False) -> pd.DataFrame:
    """Train or load, measure accuracy, trace, cost on every accelerator, append the rows.

    ``resume`` continues an interrupted training run from its last checkpoint (a stage that
    had written none starts afresh). With a ``base``
    section the dense base model is trained (or loaded) first and costed too; a model with
    ResRep compactors is converted to its pruned network before it is costed.
    """
    hw = hardware_section(config)
    resolved = {**resolve_config(config, PIPELINE_SECTIONS), "hardware": hw}
    data_cfg = resolved["data"]
    base = base_config(config)
    accelerators = [load_accelerator(name) for name in hw["accelerators"]]  # fail before training
    stages = []  # (stage, checkpoint, (model, meta), test accuracy or None to measure, extra)
    if base is not None:
        if base.get("checkpoint"):
            path = str(base["checkpoint"])
            stages.append(("base", path, load_checkpoint_model(path), None, {}))
        else:
            base_train = {k: v for k, v in base.items() if k != "checkpoint"}
            _check_dense_base(config, base_train)
            metrics = train(base_train, resume=_resumes(base_train, resume), progress=progress)
            stages.append(("base", metrics["checkpoint"],
                           load_checkpoint_model(metrics["checkpoint"]), metrics["test_acc"], {}))
        config = _with_base(config, stages[0][1])
    if config.get("checkpoint"):
        checkpoint_path, test_acc = str(config["checkpoint"]), None
    else:
        metrics = train_from_config(config, resume=_resumes(config, resume), progress=progress)
        checkpoint_path, test_acc = metrics["checkpoint"], metrics["test_acc"]
    costed, extra, model, meta = pruned_checkpoint(checkpoint_path, test_acc)
    stage = "pruned" if extra else "trained"
    stages.append((stage, costed, (model, meta), None if extra else test_acc, extra))
    train_set, test_set = load_dataset(data_cfg["name"], data_cfg["root"], data_cfg["download"],
                                       data_cfg["split"])
    resrep_columns = base is not None or stage == "pruned"
    rows, baseline = [], None
    for stage, path, loaded, acc, extra in stages:  # the base is the later stages' baseline
        stage_rows, done = _stage_rows(stage, path, loaded, acc, extra, resolved, hw,
                                       accelerators, train_set, test_set, resrep_columns,
                                       baseline)
        rows += stage_rows
        baseline = done if stage == "base" else baseline
    frame = pd.DataFrame(rows)
    append_rows(hw["results"], frame)
    return frame
