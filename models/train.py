"""The training loop: config in, trained checkpoint and metrics out. Read ``train`` top to bottom.

The config schema (sections, keys, defaults) is ``SCHEMA`` below and is documented for users at
the top of ``experiments/configs/default.yaml``. Extra loss terms, gradient hooks, initializers
and evaluation metrics come from ``models.plugins`` by the names the config gives, so a new
method never edits this file. Runs are deterministic for a seed on CPU and resume exactly: the
data order and augmentation of epoch ``e`` derive from ``(seed, e)``, and the checkpoint written
after every epoch holds the weights, optimizer state, RNG state and step count. Under ``torchrun``
the loop runs data-parallel (gloo on CPU, NCCL on GPU); ``train.batch_size`` is the global batch.
"""

import csv
import io
import json
import math
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.distributed.nn  # noqa: F401  (before any process group: see _distributed_setup)
import torch.nn.functional as F
import yaml
from torch import nn
from tqdm import tqdm

from . import losses  # noqa: F401  (registers the generic loss terms)
from .checkpoint import (
    atomic_write_bytes,
    load_checkpoint,
    load_weights,
    new_checkpoint,
    save_checkpoint,
)
from .data import DATASETS, SPLITS, ImageSet, load_dataset, sample
from .plugins import check_params, lookup
from .provenance import provenance
from .registry import check_arguments, create_model, model_arguments

# Mirrors hwsim.config.METHOD_NAMESPACES (models/ must not import hwsim; a test keeps them equal).
METHOD_NAMESPACES = ("mlg", "resrep", "pg", "cg")
PLUGIN_SECTIONS = {"losses": "loss", "grad_hooks": "grad_hook", "init": "init",
                   "metrics": "metric"}
OPTIMIZERS = ("sgd", "adam", "radam")
SCHEDULES = ("cosine", "step", "exponential", "constant")
DEVICES = ("auto", "cpu", "cuda")
_NUMBER = (int, float)
_OPT_INT = (int, type(None))
_OPT_STR = (str, type(None))
# section -> key -> (default, allowed types)
SCHEMA: dict[str, dict[str, tuple[object, tuple[type, ...]]]] = {
    "data": {"name": ("digits", (str,)), "root": (None, _OPT_STR), "download": (False, (bool,)),
             "split": ("standard", (str,)), "train_subset": (None, _OPT_INT),
             "test_subset": (None, _OPT_INT)},
    "optimizer": {"name": ("sgd", (str,)), "lr": (0.1, _NUMBER), "momentum": (0.9, _NUMBER),
                  "nesterov": (True, (bool,)), "betas": ([0.9, 0.999], (list,)),
                  "eps": (1e-8, _NUMBER), "weight_decay": (5e-4, _NUMBER),
                  "no_decay": (["bn", "bias"], (list,)), "groups": ({}, (dict,))},
    "schedule": {"name": ("cosine", (str,)), "warmup_epochs": (0, _NUMBER),
                 "min_lr": (0.0, _NUMBER), "milestones": ([], (list,)), "gamma": (0.1, _NUMBER)},
    "train": {"epochs": (10, (int,)), "batch_size": (128, (int,)),
              "eval_batch_size": (512, (int,)), "seed": (0, (int,)),
              "out_dir": ("runs/default", (str,)), "eval_every_epochs": (1, (int,)),
              "augment": (True, (bool,)), "device": ("auto", (str,)),
              "threads": (None, _OPT_INT)},
}
CHOICES = {"data": {"name": tuple(DATASETS), "split": SPLITS},
           "optimizer": {"name": OPTIMIZERS}, "schedule": {"name": SCHEDULES},
           "train": {"device": DEVICES}}
POSITIVE = {"data": ("train_subset", "test_subset"),
            "optimizer": ("lr", "eps"),
            "schedule": ("gamma",),
            "train": ("epochs", "batch_size", "eval_batch_size", "eval_every_epochs", "threads")}
NON_NEGATIVE = {"optimizer": ("momentum", "weight_decay"),
                "schedule": ("warmup_epochs", "min_lr", "milestones"),
                "train": ("seed",)}
# list key -> (item types, required length or None)
ITEMS = {"optimizer": {"betas": (_NUMBER, 2), "no_decay": ((str,), None)},
         "schedule": {"milestones": (_NUMBER, None)}}
FRACTIONS = {"optimizer": ("betas", "momentum")}  # in [0, 1)
# Seeds past 2^32 overflow the per-epoch generator; torch crashes with ~1e5 threads.
AT_MOST = {"train": {"seed": 2 ** 32 - 1, "threads": 1024}}
CHECKPOINT_NAME = "last.pt"


class TrainingDiverged(ValueError):
    """The loss became NaN or infinite; the last good checkpoint is left as it was."""


def _mapping(value: object, where: str) -> dict:
    """``value`` if it is a mapping (None counts as empty)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{where}: must be a mapping, got {value!r}")
    return value


def _describe(types: tuple[type, ...]) -> str:
    return " or ".join("null" if t is type(None) else t.__name__ for t in types)


def _is_instance(value: object, types: tuple[type, ...]) -> bool:
    """``isinstance`` where a bool is not an int (YAML ``true`` is not a number)."""
    return isinstance(value, types) and not (isinstance(value, bool) and bool not in types)


def check_section(name: str, given: object, schema: dict[str, tuple[object, tuple[type, ...]]],
                  choices: dict[str, tuple] | None = None, positive: tuple[str, ...] = (),
                  non_negative: tuple[str, ...] = (), *,
                  items: dict[str, tuple[tuple[type, ...], int | None]] | None = None,
                  fractions: tuple[str, ...] = (), at_most: dict[str, float] | None = None
                  ) -> dict:
    """Config section ``name`` checked against ``schema`` (key -> (default, allowed types)),
    with defaults filled in. Every number must be finite and no string empty; ``choices``
    limit a key's values, ``positive`` keys must be > 0, ``non_negative`` keys >= 0,
    ``fractions`` in [0, 1) and ``at_most`` keys at most their bound (a list's items each);
    ``items`` gives a list key's item types and length (None: any). A null value skips the
    checks of its key. Any problem is a one-line error naming the key."""
    given, choices, items, at_most = (_mapping(given, name), choices or {}, items or {},
                                      at_most or {})
    out = {}
    for key, value in given.items():
        if key not in schema:
            raise ValueError(f"{name}.{key}: unknown key; allowed: {', '.join(schema)}")
        types = schema[key][1]
        if not _is_instance(value, types):
            raise ValueError(f"{name}.{key}: must be {_describe(types)}, got {value!r}")
        if isinstance(value, str) and not value.strip():
            raise ValueError(f"{name}.{key}: must not be empty")
        values = [value]
        if isinstance(value, list) and key in items:
            item_types, length = items[key]
            if length is not None and len(value) != length:
                raise ValueError(f"{name}.{key}: must be a list of {length} "
                                 f"{_describe(item_types)}, got {value!r}")
            for item in value:
                if not _is_instance(item, item_types):
                    raise ValueError(f"{name}.{key}: items must be {_describe(item_types)}, "
                                     f"got {item!r} in {value!r}")
            values = value
        for item in values:
            if isinstance(item, float) and not math.isfinite(item):
                raise ValueError(f"{name}.{key}: must be a finite number, got {value!r}")
            if item is None or not isinstance(item, _NUMBER):
                continue
            if key in positive and item <= 0:
                raise ValueError(f"{name}.{key}: must be > 0, got {value!r}")
            if key in non_negative and item < 0:
                raise ValueError(f"{name}.{key}: must be >= 0, got {value!r}")
            if key in fractions and not 0 <= item < 1:
                raise ValueError(f"{name}.{key}: must be in [0, 1), got {value!r}")
            if key in at_most and item > at_most[key]:
                raise ValueError(f"{name}.{key}: must be at most {at_most[key]}, got {value!r}")
        if key in choices and value not in choices[key]:
            raise ValueError(f"{name}.{key}: {value!r} is not one of {', '.join(choices[key])}")
        out[key] = value
    return {key: out.get(key, default) for key, (default, _) in schema.items()}


def _model_section(config: dict) -> dict:
    """The ``model`` section, its name registered and its arguments (and the method namespaces
    the config gives) accepted by that builder."""
    model = _mapping(config.get("model"), "model")
    if "name" not in model:
        raise ValueError("model: a mapping with at least 'name' is required, "
                         "e.g. model: {name: resnet20}")
    name = model["name"]
    try:
        accepted = model_arguments(name)
    except KeyError as exc:
        raise ValueError(f"model.name: {exc.args[0]}") from None
    except ValueError as exc:
        raise ValueError(f"model.name: {exc}") from None
    kwargs = {k: v for k, v in model.items() if k != "name"}
    for namespace in METHOD_NAMESPACES:
        if namespace in config:
            if namespace not in accepted:
                raise ValueError(f"{namespace}: model {name} takes no {namespace} settings")
            kwargs[namespace] = _mapping(config[namespace], namespace)
    check_arguments(name, kwargs)
    return dict(model)


def resolve_config(config: dict, extra_sections: tuple[str, ...] = ()) -> dict:
    """Check every section and key of ``config`` and fill in the defaults.

    ``extra_sections`` are top-level keys other consumers own (the pipeline's ``hardware``);
    they are kept unchecked here.
    """
    allowed = ("model", *SCHEMA, *PLUGIN_SECTIONS, *METHOD_NAMESPACES, *extra_sections)
    for key in config:
        if key not in allowed:
            raise ValueError(f"config: unknown section {key!r}; allowed: {', '.join(allowed)}")
    resolved = {"model": _model_section(config)}
    resolved.update({name: check_section(
        name, config.get(name), SCHEMA[name], CHOICES.get(name), POSITIVE.get(name, ()),
        NON_NEGATIVE.get(name, ()), items=ITEMS.get(name), fractions=FRACTIONS.get(name, ()),
        at_most=AT_MOST.get(name)) for name in SCHEMA})
    check_groups(resolved["optimizer"])
    for name, kind in PLUGIN_SECTIONS.items():
        entries = _mapping(config.get(name), name)
        resolved[name] = {}
        for plugin, params in entries.items():
            try:
                factory = lookup(kind, plugin)
            except KeyError as exc:
                raise ValueError(f"{name}.{plugin}: {exc.args[0]}") from None
            params = dict(_mapping(params, f"{name}.{plugin}"))
            check_params(f"{name}.{plugin}", factory, params)
            resolved[name][plugin] = params
    for key in (*METHOD_NAMESPACES, *extra_sections):
        if key in config:
            resolved[key] = config[key]
    return resolved


def model_spec(config: dict, input_shape: tuple[int, ...], num_classes: int
               ) -> tuple[str, dict]:
    """Builder name and keyword arguments from the ``model`` section and method namespaces.

    ``in_channels`` and ``num_classes`` default to the data's; given ones must agree with it.
    """
    kwargs = {k: v for k, v in config["model"].items() if k != "name"}
    name = config["model"]["name"]
    accepted = model_arguments(name)
    for key, value in (("in_channels", input_shape[0]), ("num_classes", num_classes)):
        if key in accepted and kwargs.setdefault(key, value) != value:
            raise ValueError(f"model.{key}: {kwargs[key]} does not match data "
                             f"{config['data']['name']} ({value})")
    for namespace in METHOD_NAMESPACES:
        if namespace in config:  # resolve_config checked that the builder takes it
            kwargs[namespace] = config[namespace]
    return name, kwargs


GROUP_KEYS = {"sgd": ("momentum", "weight_decay"), "adam": ("weight_decay",),
              "radam": ("weight_decay",)}


def check_groups(cfg: dict) -> dict[str, dict]:
    """``optimizer.groups``: name word -> settings for the parameters whose name contains it
    (``momentum`` for sgd, ``weight_decay``), e.g. ResRep's ``{compactor: {momentum: 0.99,
    weight_decay: 0}}``."""
    allowed = GROUP_KEYS[cfg["name"]]
    for word, settings in cfg["groups"].items():
        where = f"optimizer.groups.{word}"
        settings = _mapping(settings, where)
        for key, value in settings.items():
            if key not in allowed:
                raise ValueError(f"{where}.{key}: unknown key for {cfg['name']}; allowed: "
                                 f"{', '.join(allowed)}")
            if (isinstance(value, bool) or not isinstance(value, _NUMBER)
                    or not 0 <= value < math.inf):
                raise ValueError(f"{where}.{key}: must be a finite number >= 0, got {value!r}")
    return {word: dict(settings or {}) for word, settings in cfg["groups"].items()}


def param_groups(model: nn.Module, weight_decay: float, no_decay: list[str],
                 groups: dict[str, dict] | None = None) -> list[dict]:
    """Parameters whose name contains a ``groups`` word (first match) get that group's
    settings; of the rest, those whose name contains a ``no_decay`` word get no weight decay."""
    groups = groups or {}
    special = {word: [] for word in groups}
    decay, plain = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        word = next((w for w in groups if w in name), None)
        if word is not None:
            special[word].append(param)
        else:
            (plain if any(w in name for w in no_decay) else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": plain, "weight_decay": 0.0},
            *({"params": special[word], "weight_decay": weight_decay, **groups[word]}
              for word in groups if special[word])]


def optimizer_groups(model: nn.Module, cfg: dict) -> dict[str, dict]:
    """The ``groups`` the optimizer uses: the model's own (its ``optimizer_groups``, e.g.
    ResRep's compactors: momentum 0.99, no weight decay, as the seed trains them; only the keys
    this optimizer takes), each key overridden by the config's ``optimizer.groups``."""
    allowed = GROUP_KEYS[cfg["name"]]
    groups = {word: {k: v for k, v in settings.items() if k in allowed}
              for word, settings in getattr(model, "optimizer_groups", {}).items()}
    for word, settings in check_groups(cfg).items():
        groups[word] = {**groups.get(word, {}), **settings}
    return groups


def make_optimizer(model: nn.Module, cfg: dict) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg["weight_decay"], cfg["no_decay"],
                          optimizer_groups(model, cfg))
    if cfg["name"] == "sgd":
        return torch.optim.SGD(groups, lr=cfg["lr"], momentum=cfg["momentum"],
                               nesterov=cfg["nesterov"] and cfg["momentum"] > 0)
    betas = tuple(cfg["betas"])
    if cfg["name"] == "adam":
        return torch.optim.Adam(groups, lr=cfg["lr"], betas=betas, eps=cfg["eps"])
    return torch.optim.RAdam(groups, lr=cfg["lr"], betas=betas, eps=cfg["eps"])


def lr_at(step: int, steps_per_epoch: int, epochs: int, base_lr: float, schedule: dict) -> float:
    """Learning rate for optimizer step ``step`` (0-based): linear warmup, then the schedule.

    ``cosine`` anneals per step to ``min_lr``; ``step`` multiplies by ``gamma`` at each epoch in
    ``milestones``; ``exponential`` multiplies by ``gamma`` every epoch.
    """
    epoch = step / steps_per_epoch
    warmup = schedule["warmup_epochs"]
    if epoch < warmup:  # a warm-up shorter than one step must not overshoot base_lr
        return base_lr * min(1.0, (step + 1) / (warmup * steps_per_epoch))
    if schedule["name"] == "cosine":
        progress = (epoch - warmup) / max(epochs - warmup, 1e-12)
        return schedule["min_lr"] + (base_lr - schedule["min_lr"]) * 0.5 * (
            1 + math.cos(math.pi * min(progress, 1.0)))
    if schedule["name"] == "step":
        passed = sum(1 for m in schedule["milestones"] if math.floor(epoch) >= m)
        return base_lr * schedule["gamma"] ** passed
    if schedule["name"] == "exponential":
        return base_lr * schedule["gamma"] ** math.floor(epoch)
    return base_lr


@torch.no_grad()
def evaluate(model: nn.Module, dataset: ImageSet, batch_size: int, device: torch.device,
             rank: int = 0, world_size: int = 1) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on ``dataset`` (summed over all ranks)."""
    was_training = model.training
    model.eval()
    totals = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, correct, count
    for images, labels in dataset.batches(batch_size, rank=rank, world_size=world_size):
        images, labels = images.to(device), labels.to(device)
        logits = model(images)
        totals += torch.stack([F.cross_entropy(logits, labels, reduction="sum").double(),
                               (logits.argmax(1) == labels).sum().double(),
                               torch.tensor(len(labels), dtype=torch.float64, device=device)])
    if world_size > 1:
        dist.all_reduce(totals)
    model.train(was_training)
    loss_sum, correct, count = totals.tolist()
    return loss_sum / max(count, 1), correct / max(count, 1)


def _write_metrics(out_dir: Path, history: list[dict]) -> None:
    atomic_write_bytes(out_dir / "metrics.jsonl",
                       "".join(json.dumps(row) + "\n" for row in history).encode())
    text = io.StringIO()
    # Plug-in metrics appear only in evaluated epochs: the header is the union of the keys.
    writer = csv.DictWriter(text, fieldnames=list(dict.fromkeys(k for row in history for k in row)))
    writer.writeheader()
    writer.writerows(history)
    atomic_write_bytes(out_dir / "metrics.csv", text.getvalue().encode())


def _check_model_runs(model: nn.Module, name: str, dataset: ImageSet, device: torch.device
                      ) -> None:
    """One example through the model (eval mode, no grad), so a network too deep for the
    data's image size is a one-line error before training, not a traceback at step 0."""
    images, _ = next(dataset.batches(1))
    model.eval()
    try:
        with torch.no_grad():
            model(images.to(device))
    except RuntimeError as exc:
        raise ValueError(f"model {name}: cannot run on {dataset.name} images of shape "
                         f"{dataset.input_shape} ({str(exc).splitlines()[0]})") from None
    finally:
        model.train()


def _check_training_state(ckpt: dict, path: Path) -> None:
    """The entries a resume reads, with their types; a one-line error otherwise."""
    checks = {"optimizer": dict, "epoch": int, "step": int, "history": list,
              "rng_cpu": torch.Tensor}
    for key, kind in checks.items():
        if key not in ckpt:
            raise ValueError(f"{path}: holds no training state ({key}); cannot resume from it")
        if not isinstance(ckpt[key], kind) or isinstance(ckpt[key], bool):
            raise ValueError(f"{path}: training state {key} must be {kind.__name__}, got "
                             f"{type(ckpt[key]).__name__}")
    if ckpt["rng_cpu"].dtype != torch.uint8:
        raise ValueError(f"{path}: training state rng_cpu must be a uint8 tensor")


def _env_int(key: str, default: int) -> int:
    """An integer environment variable set by torchrun (``WORLD_SIZE``, ``RANK``, ...)."""
    text = os.environ.get(key, str(default))
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0 or (key == "WORLD_SIZE" and value == 0):
        raise ValueError(f"environment variable {key}: expected an integer >= "
                         f"{int(key == 'WORLD_SIZE')}, got {text!r}")
    return value


def _distributed_setup(device_name: str) -> tuple[int, int, torch.device, bool]:
    """(rank, world size, device, whether this call started the process group)."""
    world_size, rank, local_rank = (_env_int(key, default) for key, default in (
        ("WORLD_SIZE", 1), ("RANK", 0), ("LOCAL_RANK", 0)))
    use_cuda = device_name == "cuda" or (device_name == "auto" and torch.cuda.is_available())
    if device_name == "cuda" and not torch.cuda.is_available():
        raise ValueError("train.device: 'cuda' requested but no CUDA device is available")
    device = torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")
    started = False
    # torch.distributed.nn.functional takes the default group as a default argument when it is
    # imported, which DDP does (through torch._dynamo); imported after init_process_group it
    # would keep the gloo backend and its threads alive past destroy_process_group, into
    # interpreter shutdown, where a rank can abort. This module imports it first (top).
    if world_size > 1 and not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if use_cuda else "gloo")
        started = True
    return rank, world_size, device, started


def train(config: dict, *, resume: bool = False, progress: bool = True,
          config_path: str | None = None, extra_sections: tuple[str, ...] = ()) -> dict:
    """Train the model ``config`` describes; returns the final metrics and the checkpoint path.

    ``resume`` continues from ``train.out_dir/last.pt`` exactly where it stopped (the config
    may extend ``train.epochs``; the model must be the same). Raises ``TrainingDiverged`` on a
    NaN/inf loss, leaving the last good checkpoint in place.
    """
    cfg = resolve_config(config, extra_sections)
    tcfg, ocfg = cfg["train"], cfg["optimizer"]
    rank, world_size, device, started_group = _distributed_setup(tcfg["device"])
    threads_before = torch.get_num_threads()  # restored on return: a setting, not a side effect
    try:
        if tcfg["threads"] is not None:
            torch.set_num_threads(tcfg["threads"])
        elif world_size > 1 and device.type == "cpu":  # do not oversubscribe the cores
            local_world = _env_int("LOCAL_WORLD_SIZE", world_size) or 1
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
        if tcfg["batch_size"] % world_size:
            raise ValueError(f"train.batch_size: {tcfg['batch_size']} is not divisible by the "
                             f"{world_size} processes")
        rank_batch = tcfg["batch_size"] // world_size

        # Data and model.
        dcfg = cfg["data"]
        train_set, test_set = load_dataset(dcfg["name"], dcfg["root"], dcfg["download"],
                                           dcfg["split"])
        train_set = sample(train_set, dcfg["train_subset"])
        test_set = sample(test_set, dcfg["test_subset"])
        steps_per_epoch = len(train_set) // tcfg["batch_size"]
        if steps_per_epoch == 0:
            raise ValueError(f"train.batch_size: {tcfg['batch_size']} exceeds the "
                             f"{len(train_set)} training examples")
        torch.manual_seed(tcfg["seed"])
        model_name, model_kwargs = model_spec(cfg, train_set.input_shape, train_set.num_classes)
        model = create_model(model_name, **model_kwargs).to(device)
        _check_model_runs(model, model_name, train_set, device)
        optimizer = make_optimizer(model, ocfg)

        # Start fresh (initializers run) or continue from the last checkpoint.
        out_dir = Path(tcfg["out_dir"])
        ckpt_path = out_dir / CHECKPOINT_NAME
        epoch, step, history = 0, 0, []
        ckpt = load_checkpoint(ckpt_path, map_location=device) if resume else None
        if ckpt is not None:
            if (ckpt["model_name"], ckpt["model_kwargs"]) != (model_name, model_kwargs):
                raise ValueError(f"{ckpt_path}: holds {ckpt['model_name']}"
                                 f"({ckpt['model_kwargs']}) but the config asks for "
                                 f"{model_name}({model_kwargs}); resume needs the same model")
            _check_training_state(ckpt, ckpt_path)
            load_weights(model, ckpt["state_dict"], ckpt_path, f"model {model_name}")
            try:
                optimizer.load_state_dict(ckpt["optimizer"])
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"{ckpt_path}: optimizer state does not fit optimizer."
                                 f"{ocfg['name']} ({exc})") from None
            epoch, step, history = ckpt["epoch"], ckpt["step"], ckpt["history"]
        else:
            for name, params in cfg["init"].items():
                lookup("init", name)(model, **params)
        loss_terms = [(name, lookup("loss", name)(model, **params))
                      for name, params in cfg["losses"].items()]
        grad_hooks = [lookup("grad_hook", name)(model, **params)
                      for name, params in cfg["grad_hooks"].items()]
        eval_metrics = [lookup("metric", name)(model, **params)
                        for name, params in cfg["metrics"].items()]
        if ckpt is not None:  # last, so the RNG stream continues as if never interrupted
            torch.set_rng_state(ckpt["rng_cpu"])
            if device.type == "cuda" and ckpt.get("rng_cuda") is not None:
                torch.cuda.set_rng_state(ckpt["rng_cuda"], device)
        net = nn.parallel.DistributedDataParallel(model) if world_size > 1 else model
        if rank == 0:
            made_by = provenance()  # a comment keeps the file a loadable config
            atomic_write_bytes(out_dir / "config.yaml", (
                f"# written by hwsim {made_by['hwsim_version']} (git commit "
                f"{made_by['git_commit'] or 'unknown'})\n"
                + yaml.safe_dump(cfg, sort_keys=False)).encode())

        bar = tqdm(total=tcfg["epochs"] * steps_per_epoch, initial=step, unit="step",
                   desc=f"train {model_name}", disable=not progress or rank != 0)
        metrics = history[-1] if history else {}
        while epoch < tcfg["epochs"]:
            net.train()
            started = time.perf_counter()
            loss_sum, correct, count = 0.0, 0, 0
            epoch_seed = tcfg["seed"] * 1_000_003 + epoch
            for images, labels in train_set.batches(
                    rank_batch, augment=tcfg["augment"], seed=epoch_seed, rank=rank,
                    world_size=world_size, drop_last=True):
                images, labels = images.to(device), labels.to(device)
                lr = lr_at(step, steps_per_epoch, tcfg["epochs"], ocfg["lr"], cfg["schedule"])
                for group in optimizer.param_groups:
                    group["lr"] = lr
                logits = net(images)
                loss = F.cross_entropy(logits, labels)
                for name, term in loss_terms:
                    try:
                        loss = loss + term(images, logits, labels)
                    except RuntimeError as exc:  # e.g. a teacher with other classes
                        raise ValueError(f"losses.{name}: {str(exc).splitlines()[0]}") from None
                loss_value = loss.item()
                diverged = not math.isfinite(loss_value)
                if world_size > 1:  # every rank must stop together or the others hang
                    flag = torch.tensor([float(diverged)], device=device)
                    dist.all_reduce(flag)
                    diverged = flag.item() > 0
                if diverged:
                    last = f"last good checkpoint: {ckpt_path}" if epoch else "no checkpoint yet"
                    raise TrainingDiverged(
                        f"training diverged: loss {loss_value} at epoch {epoch + 1} step "
                        f"{step}; lower optimizer.lr or check the loss terms ({last})")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                for hook in grad_hooks:
                    hook(step)
                optimizer.step()
                step += 1
                loss_sum += loss_value * len(labels)
                correct += int((logits.argmax(1) == labels).sum())
                count += len(labels)
                bar.update()
            train_s = time.perf_counter() - started
            sums = torch.tensor([loss_sum, correct, count], dtype=torch.float64, device=device)
            if world_size > 1:
                dist.all_reduce(sums)
            loss_sum, correct, count = sums.tolist()
            epoch += 1
            metrics = {"epoch": epoch, "step": step, "lr": lr,
                       "train_loss": loss_sum / count, "train_acc": correct / count,
                       "test_loss": None, "test_acc": None, "train_s": train_s,
                       "train_images_per_s": count / train_s}
            if epoch % tcfg["eval_every_epochs"] == 0 or epoch == tcfg["epochs"]:
                metrics["test_loss"], metrics["test_acc"] = evaluate(
                    model, test_set, tcfg["eval_batch_size"], device, rank, world_size)
                for metric in eval_metrics:
                    metrics.update(metric())
                bar.set_postfix(test_acc=f"{metrics['test_acc']:.4f}")
            history.append(metrics)
            if rank == 0:
                save_checkpoint(ckpt_path, new_checkpoint(
                    model_name, model_kwargs, model, cfg, train_set.input_shape,
                    epoch=epoch, step=step, optimizer=optimizer.state_dict(),
                    rng_cpu=torch.get_rng_state(),
                    rng_cuda=torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                    history=history, data=dcfg["name"], config_path=config_path))
                _write_metrics(out_dir, history)
        bar.close()
        if world_size > 1:
            # Ranks finish at different times (rank 0 writes the checkpoint): wait for all and
            # drop DDP's reducer, so that destroy_process_group frees the backend and joins its
            # threads while the interpreter is fully alive.
            del net
            dist.barrier()
        return {**metrics, "checkpoint": str(ckpt_path), "model_name": model_name,
                "model_kwargs": model_kwargs, "world_size": world_size}
    finally:
        torch.set_num_threads(threads_before)
        if started_group:
            dist.destroy_process_group()
