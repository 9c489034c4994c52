"""Checkpoints that rebuild their own model: weights plus the builder's name and arguments.

A checkpoint is a dict of tensors and primitives only, so it loads with
``torch.load(weights_only=True)`` (no pickled code runs). It carries the model name and keyword
arguments (a pruned or compressed architecture is rebuilt from them), the resolved config, the
input shape, the training state for an exact resume and the metrics history. Writes are atomic
(temporary file in the same folder, then ``os.replace``) so a crash never leaves a torn file.
"""

import hashlib
import io
import os
import pickle
import tempfile
from pathlib import Path

import torch
from torch import nn

from .registry import create_model

FORMAT = "hwsim-checkpoint"
VERSION = 1
REQUIRED_KEYS = ("format", "version", "model_name", "model_kwargs", "state_dict", "config",
                 "input_shape")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_checkpoint(path: str | os.PathLike, checkpoint: dict) -> None:
    """Save ``checkpoint`` (see ``REQUIRED_KEYS``) atomically."""
    missing = [k for k in REQUIRED_KEYS if k not in checkpoint]
    if missing:
        raise ValueError(f"{path}: checkpoint lacks {', '.join(missing)}")
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def new_checkpoint(model_name: str, model_kwargs: dict, model: nn.Module, config: dict,
                   input_shape: tuple[int, ...], **extra) -> dict:
    """The checkpoint dict for ``model``; ``extra`` adds training state (epoch, optimizer...)."""
    return {"format": FORMAT, "version": VERSION, "model_name": model_name,
            "model_kwargs": model_kwargs, "state_dict": model.state_dict(), "config": config,
            "input_shape": list(input_shape), **extra}


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load and check a checkpoint; a missing, corrupt or foreign file is a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, KeyError, EOFError, OSError, ValueError, pickle.UnpicklingError) as exc:
        # What torch raises for a truncated, garbled or code-carrying file.
        reason = " ".join(str(exc).split())[:200]
        raise ValueError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {reason})"
                         ) from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise ValueError(f"{path}: not an hwsim checkpoint (no format={FORMAT!r} entry)")
    if checkpoint.get("version") != VERSION:
        raise ValueError(f"{path}: checkpoint version {checkpoint.get('version')!r} is not "
                         f"supported (expected {VERSION})")
    missing = [k for k in REQUIRED_KEYS if k not in checkpoint]
    if missing:
        raise ValueError(f"{path}: checkpoint lacks {', '.join(missing)}")
    return checkpoint


def load_weights(model: nn.Module, state_dict: dict, path: str | os.PathLike,
                 description: str) -> None:
    """Load ``state_dict`` strictly; missing, unexpected or reshaped tensors are one error."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    reshaped = [f"{k} {tuple(state_dict[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
                if k in state_dict and state_dict[k].shape != v.shape]
    if missing or unexpected or reshaped:
        parts = [f"{label}: {', '.join(items[:3])}{' ...' if len(items) > 3 else ''}"
                 for label, items in (("missing", missing), ("unexpected", unexpected),
                                      ("shape (file vs model)", reshaped)) if items]
        raise ValueError(f"{path}: weights do not match {description}; {'; '.join(parts)}")
    model.load_state_dict(state_dict)


def build_model(checkpoint: dict, path: str | os.PathLike) -> nn.Module:
    """Rebuild the checkpoint's model from its name and arguments and load its weights."""
    name, kwargs = checkpoint["model_name"], checkpoint["model_kwargs"]
    try:
        model = create_model(name, **kwargs)
    except (KeyError, ValueError, TypeError) as exc:
        raise ValueError(f"{path}: cannot rebuild model {name!r} ({exc})") from None
    load_weights(model, checkpoint["state_dict"], path, f"model {name}({kwargs})")
    return model
