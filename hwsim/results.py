"""Results tables: one row per design point, CSV or Parquet, appended under a lock.

Shared by ``hwsim sweep`` and ``hwsim pipeline``. A table is read whole, extended and written
back with an atomic replace while an ``fcntl`` lock is held, so concurrent jobs can share one
file. Where rows carry ``config_hash`` / ``status`` (sweeps) one row per point stays.
"""

import fcntl
import importlib.util
import io
import os
from pathlib import Path

import pandas as pd

HASH_COLUMN = "config_hash"
TABLE_SUFFIXES = (".csv", ".parquet")
# Columns every sweep row has, first in the table; the rest follow in the order first seen.
ID_COLUMNS = ("config_hash", "status", "error", "method", "model", "accelerator", "batch",
              "objective", "test_acc")


def check_table_format(path: str | os.PathLike) -> None:
    """A one-line error when ``path`` names a Parquet table and pyarrow is not installed (a
    sweep would find out only when it writes its first rows)."""
    if Path(path).suffix == ".parquet" and importlib.util.find_spec("pyarrow") is None:
        raise ValueError(f"{path}: a .parquet table needs pyarrow (pip install pyarrow); or "
                         f"name a .csv table")


def read_table(path: str | os.PathLike, columns: list[str] | None = None):
    """The results table at ``path`` (Parquet if it ends in .parquet, else CSV)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such results table")
    check_table_format(path)
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


def _one_row_per_point(old: pd.DataFrame, new: pd.DataFrame
                       ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows of ``old`` and of ``new`` to keep: a new row replaces an error row of the same
    point, and a point another sweep has meanwhile finished keeps its row."""
    keyed = all(c in frame.columns for c in (HASH_COLUMN, "status") for frame in (old, new))
    if keyed:
        ok = set(old[HASH_COLUMN][old["status"] == "ok"])
        old = old[~(old[HASH_COLUMN].isin(new[HASH_COLUMN]) & (old["status"] != "ok"))]
        new = new[~new[HASH_COLUMN].isin(ok)]
    return old, new


# The table this process wrote last: (path, file identity, table, CSV bytes). A sweep appends
# every few seconds; while nobody else has replaced the file, its table need not be read back
# and a CSV only needs its new rows encoded.
_LAST_WRITTEN: tuple | None = None


def _identity(path: Path) -> tuple:
    stat = path.stat()
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


def append_table(path: str | os.PathLike, rows: pd.DataFrame | list[dict]) -> None:
    """Append ``rows`` to the table at ``path``: locked read, append, atomic replace.

    Parquet (with pyarrow) when the name ends in .parquet, else CSV; columns are the union,
    the ``ID_COLUMNS`` first.
    """
    from models.checkpoint import atomic_write_bytes  # imports torch: only when writing

    global _LAST_WRITTEN
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    new = pd.DataFrame(rows)
    with open(path.with_name(f".{path.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        mine = _LAST_WRITTEN is not None and _LAST_WRITTEN[0] == path and path.exists() \
            and _LAST_WRITTEN[1] == _identity(path)
        old = _LAST_WRITTEN[2] if mine else read_table(path) if path.exists() else None
        if old is None:
            kept, table = None, new
        else:
            kept, new = _one_row_per_point(old, new)
            table = pd.concat([kept, new], ignore_index=True)
        front = [c for c in ID_COLUMNS if c in table.columns]
        table = table[front + [c for c in table.columns if c not in front]]
        if path.suffix == ".parquet":
            buffer = io.BytesIO()
            _one_type_per_column(table).to_parquet(buffer, index=False)
            data = buffer.getvalue()
        elif mine and len(kept) == len(old) and table.dtypes.equals(old.dtypes):
            # Same columns and types, no row replaced: the old text plus the new rows' text.
            data = _LAST_WRITTEN[3] + table.iloc[len(old):].to_csv(index=False,
                                                                   header=False).encode()
        else:
            data = table.to_csv(index=False).encode()
        atomic_write_bytes(path, data)
        _LAST_WRITTEN = (path, _identity(path), table, data)
