"""Run folders of ``hwsim train`` and ``hwsim pipeline``: a fresh one per run, never overwritten.

A run trains into ``train.out_dir`` when the config (or ``--set``) gives one, else into
``<runs dir>/<NAME>``: ``--name NAME``, or the config file's name and the UTC start time
(``default-20261201-224800``, ``-2`` appended when that folder is taken). A folder named
explicitly that already holds a run is refused unless ``--resume`` continues it or
``--overwrite`` replaces it. The folder gets a ``run.yaml`` (name, command, config file, the
hwsim version and git commit of the start and of every resume) beside the training's
``config.yaml``, ``last.pt`` and metrics. A ResRep pipeline trains its dense base model in
``<run>/base`` unless ``base.train.out_dir`` names another folder, which obeys the same rules.
"""

import re
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import yaml

from models.checkpoint import atomic_write_bytes
from models.paths import check_destination
from models.provenance import provenance

RUNS_DIR = "runs"
RUN_FILE = "run.yaml"
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _train_section(config: dict) -> dict:
    section = config.get("train")
    return section if isinstance(section, dict) else {}  # resolve_config reports a bad one


def _check_explicit(folder: Path, where: str, resume: bool, overwrite: bool) -> None:
    """May a run go into ``folder``, named by the user? One-line error if not."""
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{where}: {folder} exists and is not a folder")
    holds_run = folder.is_dir() and any(folder.iterdir())
    if resume and not folder.is_dir():
        raise ValueError(f"--resume: {where} {folder} does not exist; there is no run to "
                         f"continue")
    if holds_run and not (resume or overwrite):
        raise ValueError(f"{where}: {folder} already holds a run; --resume continues it, "
                         f"--overwrite replaces it, or give another --name")


def _fresh_folder(runs_dir: Path, stem: str) -> Path:
    """Create and return ``runs_dir/<stem>-<UTC time>`` (``-2``, ``-3``... if taken)."""
    base = f"{stem}-{_now():%Y%m%d-%H%M%S}"
    runs_dir.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, 1000):
        folder = runs_dir / (base if attempt == 1 else f"{base}-{attempt}")
        try:
            folder.mkdir()  # atomic: two runs started in the same second get different folders
            return folder
        except FileExistsError:
            continue
    raise ValueError(f"{runs_dir}: cannot find a free run folder name for {base}")


def _claim(folder: Path, overwrite: bool, main_process: bool) -> None:
    if main_process:
        if overwrite and folder.is_dir():
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)


@dataclass(frozen=True)
class Run:
    config: dict  # the config with train.out_dir (and a ResRep base's) in the run folder
    folder: Path
    new: bool  # created by this run (not resumed or overwritten)
    named: bool  # by --name or train.out_dir (else a fresh timestamped name)

    def resume_hint(self) -> str:
        """The flags that continue this run."""
        return "--resume" if self.named else f"--name {self.folder.name} --resume"


def prepare_run(config: dict, config_path: str, command: str, *, name: str | None = None,
                runs_dir: str | None = None, resume: bool = False, overwrite: bool = False,
                main_process: bool = True, distributed: bool = False) -> Run:
    """The run folder for ``config``, created and holding ``run.yaml``, and the config that
    trains into it.

    ``main_process`` false (a torchrun rank other than 0) only computes the folder: rank 0
    checks and creates it. ``distributed`` runs need a folder every rank can name, so
    ``--name`` or ``train.out_dir``.
    """
    if resume and overwrite:
        raise ValueError("--resume and --overwrite: give one (continue the run or replace it)")
    if name is not None and not _NAME.fullmatch(name):
        raise ValueError(f"--name {name!r}: use letters, digits and . _ + - (a folder name, "
                         f"not a path; --runs-dir sets where it goes)")
    if runs_dir == "":
        raise ValueError("--runs-dir '': give a folder, e.g. runs (the default)")
    given = _train_section(config).get("out_dir")
    for flag, value in (("--name", name), ("--runs-dir", runs_dir)):
        if value is not None and given:
            raise ValueError(f"{flag} {value}: the config already sets train.out_dir ({given}); "
                             f"give one of the two")
    runs_dir = RUNS_DIR if runs_dir is None else runs_dir
    explicit = Path(given) if given else Path(runs_dir) / name if name else None
    if explicit is None and (resume or overwrite):
        flag = "--resume" if resume else "--overwrite"
        raise ValueError(f"{flag}: give --name NAME (or train.out_dir) of the run it applies to")
    if explicit is None and distributed:
        raise ValueError("torchrun: give --name NAME so that every process writes the same "
                         "run folder")
    base = config.get("base") if isinstance(config.get("base"), dict) else {}
    base_dir = None if base.get("checkpoint") else _train_section(base).get("out_dir")
    base_given = Path(base_dir) if base_dir else None  # else <folder>/base (hwsim.pipeline)

    if main_process:  # check every folder before creating any
        try:  # a file where the run folder or one of its parents should be
            check_destination(explicit or Path(runs_dir), "folder")
        except ValueError as exc:
            flag = "train.out_dir" if given else f"--name {name}" if name else "--runs-dir"
            raise ValueError(f"{flag}: {exc}") from None
        if explicit is not None:
            _check_explicit(explicit, "train.out_dir" if given else f"--name {name}", resume,
                            overwrite)
        if base_given is not None:
            _check_explicit(base_given, "base.train.out_dir", resume, overwrite)
    if explicit is None:
        folder, new = _fresh_folder(Path(runs_dir), Path(config_path).stem), True
    else:
        folder, new = explicit, not explicit.exists()
        _claim(folder, overwrite, main_process)
    if base_given is not None and base_given.resolve() != folder.resolve():
        _claim(base_given, overwrite, main_process)

    config = {**config, "train": {**_train_section(config), "out_dir": str(folder)}}
    if main_process:
        _write_run_file(folder, command, config_path, resume)
    return Run(config, folder, new, explicit is not None)


def discard_if_unused(run: Run) -> None:
    """Remove a folder this run created if it failed before writing any checkpoint, so a
    mistake leaves no empty run behind."""
    if run.new and run.folder.is_dir() and not any(run.folder.rglob("*.pt")):
        shutil.rmtree(run.folder, ignore_errors=True)


def _write_run_file(folder: Path, command: str, config_path: str, resume: bool) -> None:
    """``run.yaml``: what made the run; a resume adds an entry to ``resumed``."""
    path = folder / RUN_FILE
    stamp = {"time_utc": _now().isoformat(timespec="seconds"), **provenance()}
    record = None
    if resume and path.is_file():
        try:
            record = yaml.safe_load(path.read_text())
        except (yaml.YAMLError, OSError, UnicodeDecodeError):
            record = None  # an unreadable record is replaced, not a reason to stop the run
    if isinstance(record, dict):
        record["resumed"] = [*(record.get("resumed") or []), {"command": command, **stamp}]
    else:
        record = {"name": folder.name, "folder": str(folder), "command": command,
                  "config_file": str(config_path), "started": stamp}
    atomic_write_bytes(path, yaml.safe_dump(record, sort_keys=False).encode())
