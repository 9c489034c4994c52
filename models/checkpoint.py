"""Checkpoints that rebuild their own model: weights plus the builder's name and arguments.

A checkpoint is a dict of tensors and primitives only, so it loads with
``torch.load(weights_only=True)`` (no pickled code runs). It carries the model name and keyword
arguments (a pruned or compressed architecture is rebuilt from them), the resolved config, the
input shape, the training state for an exact resume, the metrics history and the hwsim version
that wrote it. Writes are atomic (temporary file in the same folder, then ``os.replace``) so a
crash never leaves a torn file; ``write_file_set`` does the same for a folder of files.
"""

import fnmatch
import hashlib
import io
import os
import re
import secrets
import shutil
import stat
from pathlib import Path

import torch
from torch import nn

from .paths import check_destination
from .provenance import provenance
from .registry import create_model

FORMAT = "hwsim-checkpoint"
VERSION = 1
REQUIRED_KEYS = ("format", "version", "model_name", "model_kwargs", "state_dict", "config",
                 "input_shape")


def _temp_name(path: Path) -> Path:
    """A fresh hidden name beside ``path`` for a temporary file or folder."""
    return path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")


def _cannot_write(path: Path, exc: BaseException) -> None:
    """An OS error while writing ``path`` raised again naming ``path`` (not the temporary name
    beside it, which the user never gave); anything else is raised as it is."""
    if isinstance(exc, OSError):
        raise OSError(exc.errno, f"cannot write there ({exc.strerror or exc})", str(path)
                      ) from None


def _write_new_file(path: Path, data: bytes, mode: int = 0o666) -> None:
    """Create ``path`` (which must not exist) holding ``data``, flushed to disk.

    ``os.open`` with ``mode`` lets the kernel apply the umask, as for any file a user creates
    (``tempfile.mkstemp`` would force 0600 and lock others out of a shared results table).
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and a rename.

    A new file gets the permissions of the user's umask; a replaced file keeps its own. A write
    that fails (or is interrupted by an exception) removes its temporary file and leaves
    ``path`` as it was.
    """
    path = Path(path)
    check_destination(path, "file")
    tmp = _temp_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_new_file(tmp, data)
        if path.exists():
            os.chmod(tmp, stat.S_IMODE(path.stat().st_mode))
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        _cannot_write(path, exc)
        raise


def write_file_set(folder: str | os.PathLike, files: dict[str, bytes],
                   replaceable: tuple[str, ...] = ()) -> list[Path]:
    """Write ``files`` (name -> bytes) as the whole content of ``folder``, as one set.

    The files are written into a temporary folder beside ``folder``, which is then renamed into
    place, so a reader sees the previous set or the new one, never a mix, and a failed write
    changes nothing. An existing ``folder`` is replaced only if every entry in it is a name of
    ``files`` or matches a ``replaceable`` pattern (``fnmatch``: what an earlier run of the
    same command wrote); other files are not ours to delete. Returns the paths written.
    """
    given, folder = Path(folder), Path(os.path.realpath(folder))  # replace what a link names
    check_destination(folder, "folder")
    if folder == Path.cwd() or folder in Path.cwd().parents:
        raise ValueError(f"{folder}: is the working folder or holds it; give a folder inside it")
    if folder.is_dir():
        foreign = sorted(p.name for p in folder.iterdir() if p.name not in files and not any(
            fnmatch.fnmatchcase(p.name, pattern) for pattern in replaceable))
        if foreign:
            shown = ", ".join(foreign[:3]) + (" ..." if len(foreign) > 3 else "")
            raise ValueError(f"{folder}: holds files this command did not write ({shown}); "
                             f"give a new or empty folder")
    tmp, old = _temp_name(folder), _temp_name(folder)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        os.mkdir(tmp)  # mode 0777 less the umask, unlike tempfile.mkdtemp's 0700
        for name, data in files.items():
            _write_new_file(tmp / name, data)
        if folder.is_dir():
            os.rename(folder, old)
        os.rename(tmp, folder)
    except BaseException as exc:
        if old.exists() and not folder.exists():
            os.rename(old, folder)  # put the previous set back
        shutil.rmtree(tmp, ignore_errors=True)
        _cannot_write(given, exc)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return [given / name for name in files]


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
    """The checkpoint dict for ``model``; ``extra`` adds training state (epoch, optimizer...).

    It records the hwsim version and git commit that wrote it (``models.provenance``)."""
    return {"format": FORMAT, "version": VERSION, "model_name": model_name,
            "model_kwargs": model_kwargs, "state_dict": model.state_dict(), "config": config,
            "input_shape": list(input_shape), **provenance(), **extra}


def _load_failure(exc: Exception) -> str:
    """Why ``torch.load`` failed, in our words (torch's own text suggests ``weights_only=False``,
    which would run whatever code the file carries)."""
    foreign = re.search(r"GLOBAL (\S+)", str(exc))
    if foreign:
        return (f"it holds Python objects ({foreign.group(1)}), not only tensors and plain "
                f"values as an hwsim checkpoint does; refusing to load it")
    if isinstance(exc, EOFError):
        return "the file is empty or truncated"
    if isinstance(exc, OSError):
        return f"cannot read it ({exc.strerror or type(exc).__name__})"
    return f"the file is corrupt or not a PyTorch checkpoint ({type(exc).__name__})"


def _is_shape(value: object) -> bool:
    return isinstance(value, (list, tuple)) and len(value) == 3 and all(
        isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in value)


# key -> (check, what is allowed) for the entries every checkpoint carries.
_ENTRY_CHECKS = {
    "model_name": (lambda v: isinstance(v, str), "a model name"),
    "model_kwargs": (lambda v: isinstance(v, dict) and all(isinstance(k, str) for k in v),
                     "a mapping of builder arguments"),
    "state_dict": (lambda v: isinstance(v, dict) and all(
        isinstance(k, str) and isinstance(t, torch.Tensor) for k, t in v.items()),
        "a mapping of parameter names to tensors"),
    "config": (lambda v: isinstance(v, dict), "a mapping"),
    "input_shape": (_is_shape, "[C, H, W] of positive integers"),
    "history": (lambda v: isinstance(v, list) and all(isinstance(r, dict) for r in v),
                "a list of metric mappings"),
    "data": (lambda v: v is None or isinstance(v, str), "a dataset name"),
    "hwsim_version": (lambda v: isinstance(v, str), "a version string"),
    "git_commit": (lambda v: v is None or isinstance(v, str), "a commit hash or null"),
}


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load and check a checkpoint; a missing, corrupt or foreign file is a one-line error."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a folder, expected a checkpoint file")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises a dozen types for a garbled or foreign file
        raise ValueError(f"{path}: not a readable checkpoint: {_load_failure(exc)}") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise ValueError(f"{path}: not an hwsim checkpoint (no format={FORMAT!r} entry)")
    if checkpoint.get("version") != VERSION:
        raise ValueError(f"{path}: checkpoint version {checkpoint.get('version')!r} is not "
                         f"supported (expected {VERSION})")
    missing = [k for k in REQUIRED_KEYS if k not in checkpoint]
    if missing:
        raise ValueError(f"{path}: checkpoint lacks {', '.join(missing)}")
    for key, (check, allowed) in _ENTRY_CHECKS.items():
        if key in checkpoint and not check(checkpoint[key]):
            shown = type(checkpoint[key]).__name__
            raise ValueError(f"{path}: checkpoint entry {key} must be {allowed}, got {shown}")
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
