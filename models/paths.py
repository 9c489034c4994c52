"""Where a file or folder is about to be written, checked without torch (the command line's
checks run before it loads)."""

from pathlib import Path


def check_destination(path: Path, kind: str) -> None:
    """A one-line error when ``path`` cannot become a ``kind`` ("file" or "folder")."""
    for folder in (path.parent, *path.parent.parents):
        if folder.exists():
            if not folder.is_dir():
                raise ValueError(f"{folder}: exists and is not a folder; cannot write {path}")
            break
    if kind == "file" and path.is_dir():
        raise ValueError(f"{path}: is a folder; cannot write a file there")
    if kind == "folder" and path.exists() and not path.is_dir():
        raise ValueError(f"{path}: exists and is not a folder; cannot write files into it")
