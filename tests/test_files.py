"""Files: atomic writes keep the umask and clean up, file sets land whole, provenance recorded."""

import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import yaml
from torch import nn

import models.checkpoint as checkpoint_module
from hwsim.cli import main
from models import provenance
from models.checkpoint import (
    atomic_write_bytes,
    load_checkpoint,
    new_checkpoint,
    save_checkpoint,
    write_file_set,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def umask():
    """Set the process umask for one test, restoring the previous one after it."""
    previous = os.umask(0o022)
    os.umask(previous)
    yield os.umask
    os.umask(previous)


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_new_files_get_the_umask_not_0600(tmp_path, umask, mask):
    umask(mask)
    path = tmp_path / "table.csv"
    atomic_write_bytes(path, b"a,b\n")
    assert _mode(path) == 0o666 & ~mask


def test_a_replaced_file_keeps_its_own_mode(tmp_path, umask):
    path = tmp_path / "shared.csv"
    path.write_bytes(b"old")
    path.chmod(0o664)  # made group-writable for a shared results table
    umask(0o077)
    atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new" and _mode(path) == 0o664


def test_a_failed_write_removes_its_temp_file_and_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "summary.json"
    path.write_bytes(b"old")
    with pytest.raises(TypeError):
        atomic_write_bytes(path, "text, not bytes")  # fails inside the write itself
    assert _leftovers(tmp_path) == [] and path.read_bytes() == b"old"

    def no_rename(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(OSError, match="No space"):
        atomic_write_bytes(path, b"new")
    assert _leftovers(tmp_path) == [] and path.read_bytes() == b"old"


def test_file_set_replaces_the_whole_set_with_the_umask(tmp_path, umask):
    umask(0o002)
    out = tmp_path / "out"
    paths = write_file_set(out, {"a.csv": b"1", "b.json": b"2"})
    assert paths == [out / "a.csv", out / "b.json"]
    assert _mode(out) == 0o775 and _mode(out / "a.csv") == 0o664
    # A later set without b.json leaves no b.json of the earlier run beside the new a.csv.
    write_file_set(out, {"a.csv": b"3"}, replaceable=("b.json",))
    assert sorted(p.name for p in out.iterdir()) == ["a.csv"]
    assert (out / "a.csv").read_bytes() == b"3" and _leftovers(tmp_path) == []


@pytest.mark.parametrize("failing", ["second file", "rename into place"])
def test_a_failed_file_set_changes_nothing(tmp_path, monkeypatch, failing):
    out = tmp_path / "out"
    write_file_set(out, {"a.csv": b"old a", "b.json": b"old b"})
    if failing == "second file":
        real = checkpoint_module._write_new_file

        def write(path, data, mode=0o666):
            if path.name == "b.json":
                raise OSError(28, "No space left on device")
            real(path, data, mode)

        monkeypatch.setattr(checkpoint_module, "_write_new_file", write)
    else:
        real_rename = os.rename

        def rename(source, target):
            new_set = Path(target) == out and (Path(source) / "a.csv").read_bytes() == b"new a"
            if new_set:  # the old set has moved aside; the new one cannot land
                raise OSError(18, "Invalid cross-device link")
            real_rename(source, target)

        monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OSError):
        write_file_set(out, {"a.csv": b"new a", "b.json": b"new b"})
    assert (out / "a.csv").read_bytes() == b"old a" and (out / "b.json").read_bytes() == b"old b"
    assert _leftovers(tmp_path) == []


def test_file_set_does_not_delete_files_it_did_not_write(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"holds files this command did not write \(notes.txt\)"):
        write_file_set(out, {"a.csv": b"1"})
    assert (out / "notes.txt").read_text() == "mine"
    monkeypatch.chdir(out)
    (out / "notes.txt").unlink()
    with pytest.raises(ValueError, match="is the working folder"):
        write_file_set(".", {"a.csv": b"1"})


def test_run_out_lands_as_one_set_with_the_version(tmp_path, capsys):
    out = tmp_path / "r20"
    args = ["run", "--model", "resnet20", "--set", "model.width=0.25", "--out", str(out)]
    assert main([*args, "--sim", "event"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["layers.csv", "run.yaml", "summary.json",
                                                     "timeline.csv"]
    assert main(args) == 0  # an analytic run: the event run's timeline goes with its set
    assert sorted(p.name for p in out.iterdir()) == ["layers.csv", "run.yaml", "summary.json"]
    run = yaml.safe_load((out / "run.yaml").read_text())
    assert run["hwsim_version"] == provenance.hwsim_version()
    assert run["git_commit"] == provenance.git_commit()
    assert "latency_cycles_des" not in json.loads((out / "summary.json").read_text())["totals"]
    (out / "notes.txt").write_text("mine")
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "notes.txt" in err[0] and (out / "notes.txt").exists()


def test_kill_during_a_write_leaves_no_temp_files(tmp_path, monkeypatch):
    """``kill`` (SIGTERM) while ``hwsim run --out`` writes: unwinding removes the temp folder."""
    real = checkpoint_module._write_new_file

    def write_then_killed(path, data, mode=0o666):
        real(path, data, mode)
        if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            raise AssertionError("the CLI installed no SIGTERM handler")  # do not kill pytest
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(checkpoint_module, "_write_new_file", write_then_killed)
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)  # as in a fresh process
    try:
        with pytest.raises(SystemExit) as stopped:
            main(["run", "--model", "resnet20", "--set", "model.width=0.25", "--accel", "none",
                  "--out", str(tmp_path / "out")])
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert stopped.value.code == 128 + signal.SIGTERM and list(tmp_path.iterdir()) == []


def test_version_is_the_projects_and_the_commit_is_heads():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert provenance.hwsim_version() == re.search(r'^version = "(.+)"$', pyproject, re.M)[1]
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    assert provenance.git_commit() in (head, f"{head}-dirty")


def test_no_commit_outside_a_checkout_of_its_own(tmp_path, monkeypatch):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    for root in (tmp_path / "plain", repo / "site-packages"):  # no repo; someone else's repo
        root.mkdir()
        monkeypatch.setattr(provenance, "ROOT", root)
        provenance.git_commit.cache_clear()
        assert provenance.git_commit() is None
    provenance.git_commit.cache_clear()


def test_checkpoints_carry_the_version(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, new_checkpoint("resnet20", {}, nn.Linear(2, 2), {}, (3, 8, 8)))
    loaded = load_checkpoint(path)
    assert loaded["hwsim_version"] == provenance.hwsim_version()
    assert loaded["git_commit"] == provenance.git_commit()
    save_checkpoint(path, {**loaded, "hwsim_version": 1})
    with pytest.raises(ValueError, match="entry hwsim_version must be a version string"):
        load_checkpoint(path)
