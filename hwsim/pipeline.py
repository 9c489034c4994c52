"""Train (or load a checkpoint) → test accuracy → trace with calibration → cost → results row.

The one place besides the CLI that joins ``models`` and ``hwsim`` (DESIGN.md 2). A pipeline
config is a training config (``models.train.SCHEMA``) plus two top-level keys:

- ``checkpoint``: a trained checkpoint to use instead of training (optional);
- ``hardware``: what to measure it on, keys and defaults in ``HARDWARE`` below.

Each (model, accelerator) pair appends one row to ``hardware.results``: accuracy, the hardware
totals of ``hwsim.cost.hardware_totals`` (gated models add ``hwsim.gating.gating_summary``:
measured densities, ideal vs realized speed-up and energy), the trace's storage accounting,
the resolved config as a JSON string and the checkpoint's SHA-256. Appends hold a file lock and
replace the table atomically, so concurrent jobs of a sweep can share one table.
"""

import fcntl
import itertools
import json
import os
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from models.checkpoint import atomic_write_bytes, build_model, file_digest, load_checkpoint
from models.data import ImageSet, load_dataset, sample
from models.train import check_section, evaluate, resolve_config, train

from .accel import load_accelerator
from .cost import DEFAULT_OBJECTIVE, OBJECTIVES, hardware_totals
from .cost import evaluate as evaluate_cost
from .gating import gating_summary, is_gated
from .trace import trace

# key -> (default, allowed types)
HARDWARE: dict[str, tuple[object, tuple[type, ...]]] = {
    "accelerators": (["systolic_32"], (list,)),  # preset names or YAML paths
    "batch": (1, (int,)),  # batch the accelerator runs
    "calib_batches": (2, (int,)),  # training batches run before reading dynamic statistics
    "calib_batch_size": (64, (int,)),
    "objective": (DEFAULT_OBJECTIVE, (str,)),  # what the mapper minimizes (hwsim.cost.OBJECTIVES)
    "weight_bits": (8, (int,)),  # precision of layers that do not state their own
    "act_bits": (8, (int,)),
    "results": ("experiments/results/results.csv", (str,)),
}
PIPELINE_SECTIONS = ("hardware", "checkpoint")
EVAL_BATCH_SIZE = 256


def hardware_section(config: dict) -> dict:
    """The ``hardware`` section with defaults filled in; unknown keys and bad values are errors."""
    hw = check_section("hardware", config.get("hardware"), HARDWARE,
                       choices={"objective": OBJECTIVES},
                       positive=("batch", "calib_batch_size", "weight_bits", "act_bits"),
                       non_negative=("calib_batches",))
    if not hw["accelerators"]:
        raise ValueError("hardware.accelerators: give at least one accelerator")
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
    model = build_model(checkpoint, path).eval()
    history = checkpoint.get("history") or [{}]
    meta = {"model": checkpoint["model_name"], "model_kwargs": checkpoint["model_kwargs"],
            "input_shape": tuple(checkpoint["input_shape"]), "data": checkpoint.get("data"),
            "config": checkpoint["config"], "epoch": checkpoint.get("epoch"),
            "metrics": history[-1], "sha256": file_digest(path)}
    return model, meta


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


def calibration_set(model: nn.Module, data_name: str | None, data_root: str | None = None
                    ) -> ImageSet | None:
    """Training split of ``data_name`` when ``model`` keeps dynamic statistics, else None."""
    if not any(hasattr(m, "reset_hw_stats") for m in model.modules()):
        return None
    if not data_name:
        raise ValueError("the model has gated layers whose densities are measured on data: "
                         "give --data NAME (calibration uses its training split)")
    return load_dataset(data_name, data_root)[0]


def append_rows(path: str | os.PathLike, rows: pd.DataFrame) -> None:
    """Append ``rows`` to the CSV table at ``path``: locked read, append, atomic replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        table = pd.concat([pd.read_csv(path), rows], ignore_index=True) if path.exists() \
            else rows
        atomic_write_bytes(path, table.to_csv(index=False).encode())


def run_pipeline(config: dict, progress: bool = True, resume: bool = False) -> pd.DataFrame:
    """Train or load, measure accuracy, trace, cost on every accelerator, append the rows.

    ``resume`` continues an interrupted training run from its last checkpoint.
    """
    hw = hardware_section(config)
    resolved = {**resolve_config(config, PIPELINE_SECTIONS), "hardware": hw}
    data_cfg = resolved["data"]
    accelerators = [load_accelerator(name) for name in hw["accelerators"]]  # fail before training
    if config.get("checkpoint"):
        checkpoint_path, test_acc = str(config["checkpoint"]), None
    else:
        metrics = train_from_config(config, resume=resume, progress=progress)
        checkpoint_path, test_acc = metrics["checkpoint"], metrics["test_acc"]
    model, meta = load_checkpoint_model(checkpoint_path)
    train_set, test_set = load_dataset(data_cfg["name"], data_cfg["root"], data_cfg["download"],
                                       data_cfg["split"])
    if test_acc is None:
        test_acc = _accuracy(model, sample(test_set, data_cfg["test_subset"]), EVAL_BATCH_SIZE)

    calib = calibration_batches(train_set, hw["calib_batches"], hw["calib_batch_size"])
    graph = trace(model, (hw["batch"], *meta["input_shape"]), calib=calib,
                  weight_bits=hw["weight_bits"], act_bits=hw["act_bits"], name=meta["model"])
    gated = any(is_gated(layer) for layer in graph.layers)
    storage = {key: value for key, value in graph.storage.items()
               if isinstance(value, (int, float))}
    rows = []
    for accel in accelerators:
        costs = evaluate_cost(graph, accel, objective=hw["objective"])
        totals = hardware_totals(costs, graph, accel)
        if gated:  # measured densities, ideal vs realized speed-up and energy
            totals.update(gating_summary(graph, accel, costs))
        rows.append({
            "time_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "model": meta["model"], "accelerator": accel.name, "data": data_cfg["name"],
            "test_acc": test_acc, "batch": hw["batch"],
            **{k: v for k, v in totals.items() if k not in ("model", "accelerator")},
            **storage,
            "model_kwargs": json.dumps(meta["model_kwargs"], sort_keys=True),
            "config": json.dumps(resolved, sort_keys=True),
            "checkpoint": checkpoint_path, "checkpoint_sha256": meta["sha256"]})
    frame = pd.DataFrame(rows)
    append_rows(hw["results"], frame)
    return frame
