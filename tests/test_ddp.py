"""Data-parallel training: two CPU processes (gloo) stay in lockstep and split the batch."""

import json
import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from models.checkpoint import load_checkpoint
from models.plugins import GRAD_HOOKS, register_grad_hook
from models.train import train

if "test_record_sync" not in GRAD_HOOKS:
    @register_grad_hook("test_record_sync")
    def _record_sync(model, folder: str):
        """Writes this rank's weight and gradient sums at every step (overwriting)."""
        def hook(step):
            weights = sum(p.double().sum().item() for p in model.parameters())
            grads = sum(p.grad.double().sum().item() for p in model.parameters())
            path = os.path.join(folder, f"sync.{dist.get_rank()}.json")
            with open(path, "w") as fh:
                json.dump({"step": step, "weights": weights, "grads": grads,
                           "threads": torch.get_num_threads()}, fh)
        return hook


def _worker(rank: int, world_size: int, port: int, folder: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                      LOCAL_WORLD_SIZE=str(world_size))
    cfg = {"model": {"name": "resnet20", "width": 0.25},
           "data": {"name": "digits", "train_subset": 256, "test_subset": 128},
           "train": {"epochs": 2, "batch_size": 64, "out_dir": os.path.join(folder, "run")},
           "grad_hooks": {"test_record_sync": {"folder": folder}}}
    metrics = train(cfg, progress=False)
    with open(os.path.join(folder, f"metrics.{rank}.json"), "w") as fh:
        json.dump({**metrics, "threads_left": _native_thread_names()}, fh)


def _native_thread_names() -> list[str]:
    """This process's native threads by name (Linux), e.g. gloo's ``pt_gloo_runloop``."""
    tasks = "/proc/self/task"
    if not os.path.isdir(tasks):
        return []
    names = []
    for task in os.listdir(tasks):
        try:
            with open(os.path.join(tasks, task, "comm")) as fh:
                names.append(fh.read().strip())
        except OSError:  # the thread ended meanwhile
            pass
    return names


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_gloo_processes_train_in_lockstep(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    syncs = [json.loads((tmp_path / f"sync.{r}.json").read_text()) for r in range(2)]
    assert syncs[0] == syncs[1]  # same weights and all-reduced gradients on both ranks
    assert syncs[0]["step"] == 7  # 256 examples / global batch 64 = 4 steps an epoch
    metrics = [json.loads((tmp_path / f"metrics.{r}.json").read_text()) for r in range(2)]
    assert metrics[0]["world_size"] == 2 and metrics[0]["test_acc"] == metrics[1]["test_acc"]
    for rank_metrics in metrics:  # the gloo backend went with the group, not at interpreter exit
        assert not [name for name in rank_metrics["threads_left"] if "gloo" in name]
    assert syncs[0]["threads"] == max(1, (os.cpu_count() or 1) // 2)  # cores shared, not doubled
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["epoch"] == 2 and ckpt["step"] == 8
