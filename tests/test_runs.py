"""Run folders: every train/pipeline run gets its own, named ones are never silently reused."""

from datetime import datetime, timezone

import pandas as pd
import pytest
import yaml

from hwsim import runs
from hwsim.cli import main
from hwsim.pipeline import base_config
from models.checkpoint import file_digest, load_checkpoint
from models.provenance import git_commit, hwsim_version

TINY = {"model": {"name": "resnet20", "width": 0.25},
        "data": {"name": "digits", "train_subset": 128, "test_subset": 64},
        "train": {"epochs": 1, "batch_size": 64, "threads": 1}}


@pytest.fixture
def config(tmp_path, monkeypatch):
    """A tiny config in an empty working folder (the default runs/ lands there)."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({**TINY, "hardware": {
        "accelerators": ["systolic_32"], "results": str(tmp_path / "results.csv")}}))
    return path


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main([*argv, "--no-progress"])
    out, err = capsys.readouterr()
    return code, out, err


def test_rerunning_a_pipeline_keeps_both_runs(config, tmp_path, capsys, monkeypatch):
    # Both runs start in the same second: the second folder gets -2, not the first's.
    monkeypatch.setattr(runs, "_now", lambda: datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc))
    for _ in range(2):
        code, _, err = _run(capsys, "pipeline", str(config))
        assert code == 0, err
    folders = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert folders == ["tiny-20260102-030405", "tiny-20260102-030405-2"]
    table = pd.read_csv(tmp_path / "results.csv")
    assert table["checkpoint"].tolist() == [f"runs/{name}/last.pt" for name in folders]
    for row in table.itertuples():  # each row still points at the weights it measured
        assert file_digest(row.checkpoint) == row.checkpoint_sha256
    assert table["hwsim_version"].unique().tolist() == [hwsim_version()]
    record = yaml.safe_load((tmp_path / "runs" / folders[0] / "run.yaml").read_text())
    assert record["command"] == "pipeline" and record["config_file"] == str(config)
    assert record["started"]["hwsim_version"] == hwsim_version()
    assert record["started"]["git_commit"] == git_commit()


def test_named_run_is_refused_resumed_or_overwritten(config, tmp_path, capsys):
    folder = tmp_path / "runs" / "a"
    assert _run(capsys, "train", str(config), "--name", "a")[0] == 0
    checkpoint = load_checkpoint(folder / "last.pt")
    assert checkpoint["hwsim_version"] == hwsim_version()
    assert checkpoint["git_commit"] == git_commit()
    first_line = (folder / "config.yaml").read_text().splitlines()[0]
    assert first_line.startswith(f"# written by hwsim {hwsim_version()}")
    digest = file_digest(folder / "last.pt")

    code, out, err = _run(capsys, "train", str(config), "--name", "a")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "runs/a already holds a run; --resume continues it, --overwrite replaces it" in err
    assert file_digest(folder / "last.pt") == digest

    code, out, err = _run(capsys, "train", str(config), "--name", "a", "--resume", "--set",
                          "train.epochs=2")
    assert code == 0, err
    assert yaml.safe_load(out)["epoch"] == 2 and load_checkpoint(folder / "last.pt")["epoch"] == 2
    record = yaml.safe_load((folder / "run.yaml").read_text())
    assert [r["command"] for r in record["resumed"]] == ["train"]

    (folder / "stale.txt").write_text("from the old run")
    code, out, err = _run(capsys, "train", str(config), "--name", "a", "--overwrite")
    assert code == 0, err
    assert yaml.safe_load(out)["epoch"] == 1 and not (folder / "stale.txt").exists()
    assert "resumed" not in yaml.safe_load((folder / "run.yaml").read_text())
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["a"]


@pytest.mark.parametrize("argv, message", [
    (["--resume"], "--resume: give --name NAME (or train.out_dir)"),
    (["--overwrite"], "--overwrite: give --name NAME"),
    (["--name", "b", "--resume"], "--resume: --name b runs/b does not exist"),
    (["--name", "a", "--resume", "--overwrite"], "--resume and --overwrite: give one"),
    (["--name", "../elsewhere"], "--name '../elsewhere': use letters, digits"),
    (["--name", "a", "--set", "train.out_dir=x"], "the config already sets train.out_dir"),
    (["--runs-dir", "", "--set", "train.out_dir=x"], "--runs-dir '': give a folder"),
])
def test_run_folder_misuse_is_one_line(config, tmp_path, capsys, argv, message):
    code, out, err = _run(capsys, "train", str(config), *argv)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert message in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_bad_config_key_names_the_config_file(config, tmp_path, capsys):
    raw = config.read_text() + "bogus_section: 1\n"
    config.write_text(raw)
    for command in ("train", "pipeline"):
        code, _, err = _run(capsys, command, str(config))
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert f"{config}: " in err and "bogus_section" in err
    assert not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == []


def test_a_run_that_fails_before_its_first_checkpoint_leaves_no_folder(config, tmp_path,
                                                                     capsys):
    # The model check happens in the training loop, after the folder was made.
    code, _, err = _run(capsys, "train", str(config), "--set", "model.in_channels=3")
    assert code == 2 and "model.in_channels: 3 does not match data digits" in err
    assert list((tmp_path / "runs").iterdir()) == []


def test_explicit_out_dir_is_a_named_run(config, tmp_path, capsys):
    out = tmp_path / "mine"
    assert _run(capsys, "train", str(config), "--set", f"train.out_dir={out}")[0] == 0
    code, _, err = _run(capsys, "train", str(config), "--set", f"train.out_dir={out}")
    assert code == 2 and f"train.out_dir: {out} already holds a run" in err
    assert not (tmp_path / "runs").exists()


def test_a_resrep_base_trains_inside_its_run_folder(tmp_path):
    base = {"model": {"name": "resnet20"}, "train": {"epochs": 1}}
    config = {**TINY, "train": {**TINY["train"], "out_dir": str(tmp_path / "run")}, "base": base}
    assert base_config(config)["train"] == {"epochs": 1, "out_dir": str(tmp_path / "run" / "base")}
    own = {**base, "train": {"out_dir": str(tmp_path / "elsewhere")}}
    assert base_config({**config, "base": own})["train"]["out_dir"] == str(tmp_path / "elsewhere")
