"""Datasets: the embedded ``digits`` default, MNIST, CIFAR-10/100 and a synthetic benchmark set.

Every dataset is held in memory as uint8 images (N, C, H, W) with int64 labels. Batches are
normalized and, for training, augmented on the fly with batched torch ops (random crop with zero
padding, horizontal flip where it makes sense), so there is no per-image Python work and no
torchvision. Randomness comes only from the seed handed to ``batches`` so a run can be replayed
epoch by epoch (that is what makes resume exact).

Files are read from a local folder; ``download=True`` fetches the official archives once and
checks their MD5 before use. Tests never download.
"""

import gzip
import pickle
import tarfile
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from .checkpoint import file_digest

# Per-channel statistics of the official training splits (the values every CIFAR recipe uses).
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)

MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
CIFAR_ARCHIVES = {
    "cifar10": ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                "c58f30108f718f92721af3b95e74349a", "cifar-10-batches-py"),
    "cifar100": ("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                 "eb9058c3a382ffc7106e4002c42a8d85", "cifar-100-python"),
}
DIGITS_SIZE_PX = 16  # 8x8 upsampled so ResNet's two stride-2 stages still leave 4x4 maps
DIGITS_TEST_FRACTION = 0.2
TEST_ONLY_FRACTION = 0.2  # held-out share when only the official test split is at hand
SPLITS = ("standard", "test_only")


@dataclass(frozen=True)
class ImageSet:
    """Labelled uint8 images with their normalization and training augmentation."""

    name: str
    images: torch.Tensor  # (N, C, H, W) uint8
    labels: torch.Tensor  # (N,) int64
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_padding_px: int  # random-crop padding for training; 0 disables the crop
    hflip: bool  # random horizontal flips for training (not for digits)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    def subset(self, indices: torch.Tensor) -> "ImageSet":
        return replace(self, images=self.images[indices], labels=self.labels[indices])

    def normalize(self, images_u8: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean).view(1, -1, 1, 1) * 255.0
        std = torch.tensor(self.std).view(1, -1, 1, 1) * 255.0
        return images_u8.float().sub_(mean).div_(std)

    def batches(self, batch_size: int, *, augment: bool = False, seed: int | None = None,
                rank: int = 0, world_size: int = 1, drop_last: bool = False
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield normalized ``(images, labels)`` batches of this rank's share.

        ``seed`` shuffles (the same permutation on every rank, each rank takes every
        ``world_size``-th index) and drives the augmentation (different per rank); without a seed
        the order is fixed and nothing is augmented. ``drop_last`` keeps every batch full and the
        batch count equal on all ranks, which DDP needs.
        """
        n = len(self)
        if seed is None:
            order = torch.arange(n)
        else:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        if drop_last:
            per_rank = n // world_size // batch_size * batch_size
            order = order[:per_rank * world_size]
        order = order[rank::world_size]
        aug_rng = torch.Generator().manual_seed((seed or 0) * 7919 + rank + 1)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            if drop_last and len(idx) < batch_size:
                break
            images = self.images[idx]
            if augment and seed is not None:
                images = self._augment(images, aug_rng)
            yield self.normalize(images), self.labels[idx]

    def _augment(self, images: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        batch, _, height, width = images.shape
        pad = self.crop_padding_px
        if pad:
            # One gather over the flattened padded images: far cheaper than 4-D fancy indexing.
            padded = F.pad(images, (pad, pad, pad, pad)).flatten(2)
            dy = torch.randint(0, 2 * pad + 1, (batch, 1, 1), generator=rng)
            dx = torch.randint(0, 2 * pad + 1, (batch, 1, 1), generator=rng)
            pixel = ((dy + torch.arange(height)[:, None]) * (width + 2 * pad)
                     + dx + torch.arange(width))  # (B, H, W) positions in the padded image
            index = pixel.flatten(1)[:, None, :].expand(-1, padded.shape[1], -1)
            images = padded.gather(2, index).view(images.shape)
        if self.hflip:
            flip = torch.rand(batch, generator=rng) < 0.5
            images = torch.where(flip[:, None, None, None], images.flip(3), images)
        return images


def _fixed_split(images: torch.Tensor, labels: torch.Tensor, test_fraction: float
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Train and test indices of a fixed (seed 0) random split."""
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    n_test = round(len(labels) * test_fraction)
    return order[n_test:], order[:n_test]


def _channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    pixels = images.double().div(255.0)
    return (tuple(pixels.mean(dim=(0, 2, 3)).tolist()),
            tuple(pixels.std(dim=(0, 2, 3)).tolist()))


def _download(url: str, path: Path, md5: str) -> None:
    """Fetch ``url`` to ``path`` (via a temporary name) and check its MD5."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    try:
        urllib.request.urlretrieve(url, tmp)
    except OSError as exc:
        raise FileNotFoundError(f"{path}: download from {url} failed ({exc})") from None
    if file_digest(tmp, "md5") != md5:
        tmp.unlink()
        raise ValueError(f"{path}: download from {url} has the wrong MD5 (expected {md5})")
    tmp.replace(path)


def digits(root: str | None = None, download: bool = False) -> tuple[ImageSet, ImageSet]:
    """scikit-learn's bundled 8x8 handwritten digits, upsampled to 1x16x16; fixed 80/20 split."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    small = torch.tensor(bunch.images, dtype=torch.float32)[:, None] / 16.0
    large = F.interpolate(small, size=(DIGITS_SIZE_PX, DIGITS_SIZE_PX), mode="bilinear",
                          align_corners=False)
    images = (large.clamp(0, 1) * 255).round().to(torch.uint8)
    labels = torch.tensor(bunch.target, dtype=torch.int64)
    train_idx, test_idx = _fixed_split(images, labels, DIGITS_TEST_FRACTION)
    mean, std = _channel_stats(images[train_idx])
    make = ImageSet("digits", images, labels, 10, mean, std, crop_padding_px=2, hflip=False)
    return make.subset(train_idx), make.subset(test_idx)


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (MNIST's format), gzip-compressed or raw, as a uint8 array."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise ValueError(f"{path}: unreadable IDX file ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file (bad magic number)")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    body = raw[4 + 4 * ndim:]
    if len(body) != int(np.prod(shape)):
        raise ValueError(f"{path}: IDX header says shape {shape} but the file holds "
                         f"{len(body)} bytes (truncated or corrupt)")
    return np.frombuffer(body, dtype=np.uint8).reshape(shape)


def _check_labels(where: Path, labels: np.ndarray, num_classes: int) -> None:
    """Labels index the classes; anything else would fail deep inside the loss."""
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"{where}: labels must lie in 0..{num_classes - 1}, found "
                         f"{int(labels.min())}..{int(labels.max())} (corrupt file?)")


# The same folder comes from hwsim run --data-root or a config's data.root; only a training
# config can download.
_WHERE_FILES = ("give the folder holding {what} (hwsim run --data-root DIR, data.root in a "
                "config), or set data.download: true in a training config to fetch them")


def _why(folder: Path) -> str:
    """Why a dataset file is not in ``folder``, when the folder itself is the reason."""
    if folder.is_file():
        return f" ({folder} is a file, not a folder)"
    return "" if folder.is_dir() else f" ({folder} does not exist)"


def _mnist_file(folder: Path, stem: str, download: bool) -> Path:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    if download:
        path = folder / f"{stem}.gz"
        _download(MNIST_URL + path.name, path, MNIST_MD5[path.name])
        return path
    raise FileNotFoundError(f"{folder}: MNIST file {stem}(.gz) not found{_why(folder)}; "
                            f"{_WHERE_FILES.format(what='the IDX files')}")


def _mnist_split(folder: Path, prefix: str, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    images = read_idx(_mnist_file(folder, f"{prefix}-images-idx3-ubyte", download))
    labels = read_idx(_mnist_file(folder, f"{prefix}-labels-idx1-ubyte", download))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"{folder}: MNIST {prefix} images {images.shape} and labels "
                         f"{labels.shape} do not match")
    _check_labels(folder / f"{prefix}-labels-idx1-ubyte", labels, 10)
    return torch.from_numpy(images.copy())[:, None], torch.from_numpy(labels.astype(np.int64))


def mnist(root: str | None = None, download: bool = False, split: str = "standard"
          ) -> tuple[ImageSet, ImageSet]:
    """MNIST from IDX files in ``root`` (default ``data/mnist``); no flips for digits.

    ``split="test_only"`` needs only the two t10k files: it splits the official test set 80/20
    (fixed seed), for quick checks where the training files are not at hand.
    """
    folder = Path(root or "data/mnist")
    make = ImageSet("mnist", torch.empty(0, 1, 28, 28, dtype=torch.uint8),
                    torch.empty(0, dtype=torch.int64), 10, MNIST_MEAN, MNIST_STD,
                    crop_padding_px=2, hflip=False)
    if split == "test_only":
        images, labels = _mnist_split(folder, "t10k", download)
        train_idx, test_idx = _fixed_split(images, labels, TEST_ONLY_FRACTION)
        full = replace(make, images=images, labels=labels)
        return full.subset(train_idx), full.subset(test_idx)
    train_images, train_labels = _mnist_split(folder, "train", download)
    test_images, test_labels = _mnist_split(folder, "t10k", download)
    return (replace(make, images=train_images, labels=train_labels),
            replace(make, images=test_images, labels=test_labels))


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler for CIFAR batches that rebuilds numpy arrays and nothing else."""

    ALLOWED: ClassVar[set[tuple[str, str]]] = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("_codecs", "encode")}  # how protocol-2 pickles written by Python 3 carry raw bytes

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _cifar_batch(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        root = path.parent.parent
        raise FileNotFoundError(f"{path.parent}: CIFAR file {path.name} not found{_why(root)}; "
                                f"{_WHERE_FILES.format(what=f'{path.parent.name}/')}")
    try:
        with path.open("rb") as fh:
            batch = _ArrayUnpickler(fh, encoding="bytes").load()
        images = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(batch[label_key], dtype=np.int64)
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError,
            AttributeError, IndexError) as exc:
        raise ValueError(f"{path}: corrupt CIFAR batch ({type(exc).__name__}: "
                         f"{' '.join(str(exc).split())[:120]})") from None
    if len(images) != len(labels):
        raise ValueError(f"{path}: corrupt CIFAR batch ({len(images)} images, "
                         f"{len(labels)} labels)")
    return images, labels


def _cifar(name: str, root: str | None, download: bool, train_files: list[str],
           test_file: str, label_key: bytes, num_classes: int,
           mean: tuple[float, ...], std: tuple[float, ...]) -> tuple[ImageSet, ImageSet]:
    url, md5, folder_name = CIFAR_ARCHIVES[name]
    base = Path(root or f"data/{name}")
    folder = base / folder_name
    if download and not folder.is_dir():
        archive = base / url.rsplit("/", 1)[1]
        if not archive.is_file():
            _download(url, archive, md5)
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(base, filter="data")
        except (tarfile.TarError, EOFError) as exc:
            raise ValueError(f"{archive}: corrupt archive ({exc}); delete it to download "
                             f"again") from None

    def load(files: list[str]) -> ImageSet:
        parts = [_cifar_batch(folder / f, label_key) for f in files]
        for f, (_, labels) in zip(files, parts):
            _check_labels(folder / f, labels, num_classes)
        images = torch.from_numpy(np.concatenate([p[0] for p in parts]))
        labels = torch.from_numpy(np.concatenate([p[1] for p in parts]))
        return ImageSet(name, images, labels, num_classes, mean, std, crop_padding_px=4,
                        hflip=True)

    return load(train_files), load([test_file])


def cifar10(root: str | None = None, download: bool = False) -> tuple[ImageSet, ImageSet]:
    """CIFAR-10 python batches from ``root/cifar-10-batches-py`` (default root ``data/cifar10``)."""
    return _cifar("cifar10", root, download, [f"data_batch_{i}" for i in range(1, 6)],
                  "test_batch", b"labels", 10, CIFAR10_MEAN, CIFAR10_STD)


def cifar100(root: str | None = None, download: bool = False) -> tuple[ImageSet, ImageSet]:
    """CIFAR-100 fine labels from ``root/cifar-100-python`` (default root ``data/cifar100``)."""
    return _cifar("cifar100", root, download, ["train"], "test", b"fine_labels", 100,
                  CIFAR100_MEAN, CIFAR100_STD)


def synthetic(root: str | None = None, download: bool = False) -> tuple[ImageSet, ImageSet]:
    """Random CIFAR-shaped images (3x32x32, 10 classes) for throughput benchmarks only."""
    rng = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (5632, 3, 32, 32), dtype=torch.uint8, generator=rng)
    labels = torch.randint(0, 10, (5632,), generator=rng)
    make = ImageSet("synthetic", images, labels, 10, (0.5,) * 3, (0.29,) * 3,
                    crop_padding_px=4, hflip=True)
    return make.subset(torch.arange(5120)), make.subset(torch.arange(5120, 5632))


DATASETS: dict[str, Callable[..., tuple[ImageSet, ImageSet]]] = {
    "digits": digits, "mnist": mnist, "cifar10": cifar10, "cifar100": cifar100,
    "synthetic": synthetic,
}
# (C, H, W) and classes of each dataset, for the checks that need no images (a test holds
# them to the loaded sets)
DATASET_SHAPES: dict[str, tuple[tuple[int, int, int], int]] = {
    "digits": ((1, DIGITS_SIZE_PX, DIGITS_SIZE_PX), 10), "mnist": ((1, 28, 28), 10),
    "cifar10": ((3, 32, 32), 10), "cifar100": ((3, 32, 32), 100),
    "synthetic": ((3, 32, 32), 10),
}


def _check_name(name: str) -> None:
    if name not in DATASETS:
        raise ValueError(f"data.name: unknown dataset {name!r}; allowed: {', '.join(DATASETS)}")


def dataset_shape(name: str) -> tuple[tuple[int, int, int], int]:
    """(input shape (C, H, W), number of classes) of dataset ``name``, without loading it."""
    _check_name(name)
    return DATASET_SHAPES[name]


def load_dataset(name: str, root: str | None = None, download: bool = False,
                 split: str = "standard") -> tuple[ImageSet, ImageSet]:
    """Train and test sets of dataset ``name``; ``split`` is only meaningful for ``mnist``."""
    _check_name(name)
    if split not in SPLITS:
        raise ValueError(f"data.split: unknown split {split!r}; allowed: {', '.join(SPLITS)}")
    if split == "test_only":
        if name != "mnist":
            raise ValueError(f"data.split: 'test_only' is only available for mnist, not {name}")
        return mnist(root, download, split)
    return DATASETS[name](root, download)


def sample(dataset: ImageSet, count: int | None) -> ImageSet:
    """``count`` examples picked with a fixed seed (all of them when ``count`` is None)."""
    if count is None or count >= len(dataset):
        return dataset
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))
    return dataset.subset(order[:count])
