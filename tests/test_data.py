"""Datasets: shapes, fixed splits, augmentation as pure torch ops, file errors."""

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models.data import DATASET_SHAPES, ImageSet, dataset_shape, load_dataset, read_idx, sample

MNIST_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def test_digits_is_a_fixed_disjoint_split_of_1x16x16_images():
    train, test = load_dataset("digits")
    again, _ = load_dataset("digits")
    assert train.input_shape == (1, 16, 16) and train.images.dtype == torch.uint8
    assert len(train) + len(test) == 1797 and abs(len(test) - 0.2 * 1797) <= 1
    assert torch.equal(train.labels, again.labels)
    assert set(train.labels.unique().tolist()) == set(range(10))
    assert not train.hflip  # flipped digits are different digits
    images, _ = next(train.batches(len(train)))
    assert abs(images.mean().item()) < 1e-3 and abs(images.std().item() - 1) < 1e-2


def _toy(n=10, channels=2, size_px=6, pad=2, hflip=True) -> ImageSet:
    images = torch.arange(n * channels * size_px * size_px).view(n, channels, size_px, size_px)
    return ImageSet("toy", (images % 251).to(torch.uint8), torch.arange(n) % 3, 3,
                    (0.0,) * channels, (1 / 255,) * channels, crop_padding_px=pad, hflip=hflip)


def test_augmented_image_is_a_window_of_the_padded_or_flipped_original():
    toy = _toy()
    ((images, _),) = toy.batches(len(toy), augment=True, seed=3)
    padded = F.pad(toy.images, (2, 2, 2, 2)).float()
    n, hits = len(toy), 0
    order = torch.randperm(n, generator=torch.Generator().manual_seed(3))
    for out, source in zip(images, order):
        windows = [padded[source, :, dy:dy + 6, dx:dx + 6] for dy in range(5) for dx in range(5)]
        windows += [w.flip(2) for w in windows]
        hits += any(torch.equal(out, w) for w in windows)
    assert hits == n


def test_batches_are_replayable_and_ranks_split_the_data():
    toy = _toy(n=20)
    first = [b[0] for b in toy.batches(4, augment=True, seed=7)]
    second = [b[0] for b in toy.batches(4, augment=True, seed=7)]
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    shares = [torch.cat([y for _, y in toy.batches(3, seed=1, rank=r, world_size=2,
                                                   drop_last=True)]) for r in range(2)]
    assert len(shares[0]) == len(shares[1]) == 9  # equal counts: DDP needs the same step count
    eval_labels = torch.cat([y for r in range(2) for _, y in toy.batches(3, rank=r, world_size=2)])
    assert sorted(eval_labels.tolist()) == sorted(toy.labels.tolist())


def test_sample_is_fixed_and_bounded():
    toy = _toy(n=20)
    assert torch.equal(sample(toy, 5).images, sample(toy, 5).images)
    assert len(sample(toy, 5)) == 5 and sample(toy, None) is toy and len(sample(toy, 99)) == 20


def _write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)


@pytest.mark.parametrize("compress", [True, False])
def test_mnist_reads_idx_files_gz_or_raw(tmp_path, compress):
    rng = np.random.default_rng(0)
    suffix = ".gz" if compress else ""
    for prefix, n in (("train", 12), ("t10k", 5)):
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte{suffix}",
                   rng.integers(0, 256, (n, 28, 28)), compress)
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte{suffix}", rng.integers(0, 10, n),
                   compress)
    train, test = load_dataset("mnist", str(tmp_path))
    assert (len(train), len(test), train.input_shape) == (12, 5, (1, 28, 28))


def test_mnist_missing_or_corrupt_file_is_a_one_line_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"{tmp_path}: MNIST file train-images"):
        load_dataset("mnist", str(tmp_path))
    bad = tmp_path / "t10k-images-idx3-ubyte"
    bad.write_bytes(bytes([0, 0, 8, 3]) + (10).to_bytes(4, "big") * 3 + b"\0" * 7)
    with pytest.raises(ValueError, match="truncated or corrupt"):
        read_idx(bad)


def _write_cifar(folder: Path, names: list[str], label_key: bytes, n: int) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in names:
        batch = {b"data": rng.integers(0, 256, (n, 3072)).astype(np.uint8),
                 label_key: rng.integers(0, 10, n).tolist()}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))


def test_cifar10_reads_python_batches_and_names_missing_or_corrupt_files(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar(folder, [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"], b"labels", 4)
    train, test = load_dataset("cifar10", str(tmp_path))
    assert (len(train), len(test), train.input_shape, train.hflip) == (20, 4, (3, 32, 32), True)
    (folder / "test_batch").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="test_batch: corrupt CIFAR batch"):
        load_dataset("cifar10", str(tmp_path))
    (folder / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py: CIFAR file data_batch_3"):
        load_dataset("cifar10", str(tmp_path))


def test_cifar_loader_refuses_pickled_code(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    (folder / "train").write_bytes(pickle.dumps({b"data": Path("x")}))
    with pytest.raises(ValueError, match="corrupt CIFAR batch"):
        load_dataset("cifar100", str(tmp_path))


def test_unknown_dataset_or_split_lists_the_allowed_ones():
    with pytest.raises(ValueError, match="data.name: unknown dataset 'svhn'; allowed: digits"):
        load_dataset("svhn")
    with pytest.raises(ValueError, match="only available for mnist"):
        load_dataset("digits", split="test_only")


@pytest.mark.skipif(not MNIST_DIR.is_dir(), reason=f"MNIST test files not found at {MNIST_DIR}")
def test_real_mnist_test_only_split():
    train, test = load_dataset("mnist", str(MNIST_DIR), split="test_only")
    assert (len(train), len(test), train.input_shape) == (8000, 2000, (1, 28, 28))


def test_dataset_shapes_are_those_of_the_loaded_sets(tmp_path):
    rng = np.random.default_rng(0)
    for prefix in ("train", "t10k"):
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (3, 28, 28)),
                   False)
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, 3), False)
    _write_cifar(tmp_path / "cifar-10-batches-py",
                 [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"], b"labels", 2)
    _write_cifar(tmp_path / "cifar-100-python", ["train", "test"], b"fine_labels", 2)
    for name in DATASET_SHAPES:
        train = load_dataset(name, str(tmp_path))[0]
        assert dataset_shape(name) == (train.input_shape, train.num_classes), name
    with pytest.raises(ValueError, match="data.name: unknown dataset 'svhn'; allowed: digits"):
        dataset_shape("svhn")
