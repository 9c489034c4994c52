"""Which hwsim wrote a file: the package version and, in a git checkout, the commit.

Checkpoints, run folders and results rows carry ``provenance()`` so a figure can be traced to
the code that made it. Both values are computed once per process; outside a git checkout (an
installed wheel, git missing) the commit is None and nothing fails.
"""

import functools
import subprocess
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the checkout holding models/ and hwsim/


@functools.cache
def hwsim_version() -> str:
    """The version in this checkout's pyproject.toml, else the installed distribution's."""
    try:
        import tomllib  # Python 3.11+

        project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
        if project.get("name") == "hwsim":
            return str(project["version"])
    except (ImportError, OSError, KeyError, ValueError):
        pass
    try:
        return metadata.version("hwsim")
    except metadata.PackageNotFoundError:
        return "unknown"


def _git(*args: str) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                              timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):  # no git, or it hung
        return None


@functools.cache
def git_commit() -> str | None:
    """HEAD of the checkout this code was imported from, ``-dirty`` when tracked files differ
    from it; None when the code does not lie in a git checkout of its own."""
    head = _git("rev-parse", "--show-toplevel", "HEAD")
    lines = head.stdout.split() if head is not None and head.returncode == 0 else []
    if len(lines) != 2 or Path(lines[0]).resolve() != ROOT:  # e.g. site-packages in a repo
        return None
    diff = _git("diff", "--quiet", "HEAD", "--")
    return lines[1] + ("-dirty" if diff is not None and diff.returncode == 1 else "")


def provenance() -> dict[str, str | None]:
    """``{"hwsim_version": ..., "git_commit": ...}`` for a checkpoint, run.yaml or row."""
    return {"hwsim_version": hwsim_version(), "git_commit": git_commit()}
