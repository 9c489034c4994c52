"""Results tables: one row per design point, CSV or Parquet, appended under a lock.

Shared by ``hwsim sweep`` and ``hwsim pipeline``. A table is read whole, extended and written
back with an atomic replace while an ``fcntl`` lock is held, so concurrent jobs can share one
file. Where rows carry ``config_hash`` / ``status`` (sweeps) one row per point stays.
"""

import fcntl
import io
import os
from pathlib import Path

import pandas as pd

from models.checkpoint import atomic_write_bytes

HASH_COLUMN = "config_hash"
TABLE_SUFFIXES = (".csv", ".parquet")
# Columns every sweep row has, first in the table; the rest follow in the order first seen.
ID_COLUMNS = ("config_hash", "status", "error", "method", "model", "accelerator", "batch",
              "objective", "test_acc")


def read_table(path: str | os.PathLike, columns: list[str] | None = None):
    """The results table at ``path`` (Parquet if it ends in .parquet, else CSV)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such results table")
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path, columns=columns)
        # Hashes are text even when every digit is a number ("12e4..." is no float).
        return pd.read_csv(path, usecols=columns, dtype={HASH_COLUMN: str})
    except (ValueError, KeyError, OSError) as exc:  # pandas' parser errors are ValueErrors
        wanted = f" columns {', '.join(columns)}" if columns else ""
        raise ValueError(f"{path}: cannot read this results table{wanted} "
                         f"({' '.join(str(exc).split())[:160]})") from None


def done_hashes(path: str | os.PathLike, errors: bool = True) -> set[str]:
    """Hashes of the points already in the table at ``path`` (without ``errors``: only the
    points whose row is ``ok``)."""
    path = Path(path)
    if not path.is_file():
        return set()
    table = read_table(path, [HASH_COLUMN, "status"])
    return set(table[HASH_COLUMN] if errors else table[HASH_COLUMN][table["status"] == "ok"])


def _one_type_per_column(table):
    """Parquet columns hold one type: a swept key with mixed values (0.25, "wide") as text."""
    table = table.copy()
    for column in table.columns:
        values = table[column].dropna()
        if pd.api.types.is_object_dtype(values) and len({type(v) for v in values}) > 1:
            table[column] = table[column].map(lambda v: v if v is None or v != v else str(v))
    return table


def _one_row_per_point(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """``old`` then ``new``: a new row replaces an error row of the same point, and a point
    another sweep has meanwhile finished keeps its row."""
    keyed = all(c in frame.columns for c in (HASH_COLUMN, "status") for frame in (old, new))
    if keyed:
        ok = set(old[HASH_COLUMN][old["status"] == "ok"])
        old = old[~(old[HASH_COLUMN].isin(new[HASH_COLUMN]) & (old["status"] != "ok"))]
        new = new[~new[HASH_COLUMN].isin(ok)]
    return pd.concat([old, new], ignore_index=True)


def append_table(path: str | os.PathLike, rows: pd.DataFrame | list[dict]) -> None:
    """Append ``rows`` to the table at ``path``: locked read, append, atomic replace.

    Parquet (with pyarrow) when the name ends in .parquet, else CSV; columns are the union,
    the ``ID_COLUMNS`` first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    new = pd.DataFrame(rows)
    with open(path.with_name(f".{path.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        table = _one_row_per_point(read_table(path), new) if path.exists() else new
        front = [c for c in ID_COLUMNS if c in table.columns]
        table = table[front + [c for c in table.columns if c not in front]]
        if path.suffix == ".parquet":
            buffer = io.BytesIO()
            _one_type_per_column(table).to_parquet(buffer, index=False)
            data = buffer.getvalue()
        else:
            data = table.to_csv(index=False).encode()
        atomic_write_bytes(path, data)
