"""Training throughput of ``models.train.train`` against a bare hand-written PyTorch loop.

Both train the same model at the same batch size on random CIFAR-shaped data, with the same
number of steps and intra-op threads, alternating run by run so machine load hits both alike.
The loop's figure is its own timed training phase (``train_images_per_s``: batching, augmentation,
forward, backward, step, bookkeeping; evaluation and checkpointing excluded); the bare loop
times forward, backward and step over pre-made normalized batches.

    python experiments/bench_train.py --runs 5 --steps 12
"""

import argparse
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

from models import create_model
from models.train import train


def bare_loop(model_name: str, batch_size: int, steps: int, seed: int) -> float:
    """Images per second of the minimal loop: forward, cross-entropy, backward, SGD step."""
    torch.manual_seed(seed)
    model = create_model(model_name)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True,
                                weight_decay=5e-4)
    batches = [(torch.randn(batch_size, 3, 32, 32), torch.randint(0, 10, (batch_size,)))
               for _ in range(steps)]
    model.train()
    started = time.perf_counter()
    for images, labels in batches:
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return batch_size * steps / (time.perf_counter() - started)


def our_loop(model_name: str, batch_size: int, steps: int, seed: int, threads: int | None,
             out_dir: str) -> float:
    config = {"model": {"name": model_name},
              "data": {"name": "synthetic", "train_subset": batch_size * steps,
                       "test_subset": 128},
              "train": {"epochs": 1, "batch_size": batch_size, "seed": seed, "out_dir": out_dir,
                        "threads": threads}}
    return train(config, progress=False)["train_images_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=12, help="optimizer steps per run")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads for both loops (default: torch's)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    ours, bare = [], []
    with tempfile.TemporaryDirectory() as out_dir:
        for run in range(args.runs):
            bare.append(bare_loop(args.model, args.batch_size, args.steps, run))
            ours.append(our_loop(args.model, args.batch_size, args.steps, run, args.threads,
                                 out_dir))
            print(f"run {run}: bare {bare[-1]:.1f} img/s, hwsim loop {ours[-1]:.1f} img/s",
                  flush=True)
    ratios = [o / b for o, b in zip(ours, bare)]
    print(f"{args.model}, batch {args.batch_size}, {args.steps} steps x {args.runs} runs, "
          f"{torch.get_num_threads()} threads")
    print(f"median bare {statistics.median(bare):.1f} img/s, median hwsim loop "
          f"{statistics.median(ours):.1f} img/s, ratio of medians "
          f"{statistics.median(ours) / statistics.median(bare):.3f}, median of per-run ratios "
          f"{statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
