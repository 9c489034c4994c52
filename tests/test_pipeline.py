"""Pipeline: digits end to end, results appended atomically, checkpoint reuse, bad input."""

import json
from pathlib import Path

import pandas as pd
import pytest

from hwsim.config import load_yaml
from hwsim.pipeline import (
    append_rows,
    evaluate_accuracy,
    hardware_section,
    load_checkpoint_model,
    run_pipeline,
)
from models.checkpoint import file_digest
from models.train import resolve_config


def tiny(tmp_path) -> dict:
    return {"model": {"name": "resnet20", "width": 0.25},
            "data": {"name": "digits", "train_subset": 256, "test_subset": 128},
            "train": {"epochs": 1, "batch_size": 64, "out_dir": str(tmp_path / "run"),
                      "threads": 1},
            "hardware": {"accelerators": ["systolic_32", "eyeriss_like"],
                         "results": str(tmp_path / "results.csv")}}


def test_pipeline_trains_costs_and_appends_one_row_per_accelerator(tmp_path, monkeypatch):
    import hwsim.pipeline

    cfg = tiny(tmp_path)
    rows = run_pipeline(cfg, progress=False)
    assert list(rows["accelerator"]) == ["systolic_32", "eyeriss_like"]
    checkpoint = tmp_path / "run" / "last.pt"
    assert (rows["checkpoint_sha256"] == file_digest(checkpoint)).all()
    assert (rows["energy_pj"] > 0).all() and (rows["macs"] > 0).all()
    assert 0 <= rows["test_acc"].iloc[0] <= 1
    saved = json.loads(rows["config"].iloc[0])  # resolved: defaults filled in
    assert saved["train"]["epochs"] == 1 and saved["optimizer"]["name"] == "sgd"
    assert saved["hardware"]["accelerators"] == ["systolic_32", "eyeriss_like"]

    loads, load = [], hwsim.pipeline.load_checkpoint
    monkeypatch.setattr(hwsim.pipeline, "load_checkpoint", lambda path: loads.append(path)
                        or load(path))
    again = run_pipeline({**cfg, "checkpoint": str(checkpoint)}, progress=False)
    assert loads == [str(checkpoint)]  # read once, to convert (it needs not) and to cost
    table = pd.read_csv(tmp_path / "results.csv")
    assert len(table) == 4  # appended, not overwritten
    # Same weights, same test subset: the reloaded checkpoint scores what training reported.
    assert again["test_acc"].iloc[0] == pytest.approx(rows["test_acc"].iloc[0])
    assert again["energy_pj"].tolist() == pytest.approx(rows["energy_pj"].tolist())


def test_pipeline_row_is_the_record_hwsim_run_emits(tmp_path, capsys):
    """One record, two emitters: the row equals ``hwsim run``'s JSON record, flattened, each
    with its default objective (the core's, so that the two agree without flags)."""
    from hwsim.cli import main
    from hwsim.cost import DEFAULT_OBJECTIVE
    from hwsim.record import record_row

    cfg = tiny(tmp_path)
    cfg["hardware"].update(accelerators=["mlg_gen"], batch=2, weight_bits=4, act_bits=6)
    assert "objective" not in cfg["hardware"]  # run --checkpoint reads batch and bits, not it
    assert hardware_section(cfg)["objective"] == DEFAULT_OBJECTIVE
    row = run_pipeline(cfg, progress=False).iloc[0]
    assert main(["run", "--checkpoint", str(tmp_path / "run" / "last.pt"), "--accel", "mlg_gen",
                 "--format", "json"]) == 0
    record = json.loads(capsys.readouterr().out)
    expected = record_row(record)
    assert set(expected) - {"test_acc"} <= set(row.index)
    for key, value in expected.items():
        if key != "test_acc":  # the pipeline measures it on the config's test subset
            assert row[key] == (pytest.approx(value) if isinstance(value, float) else value), key


def test_checkpoint_model_and_accuracy_for_hwsim_run(tmp_path):
    run_pipeline(tiny(tmp_path), progress=False)
    model, meta = load_checkpoint_model(tmp_path / "run" / "last.pt")
    assert meta["model"] == "resnet20" and meta["input_shape"] == (1, 16, 16)
    assert meta["model_kwargs"] == {"width": 0.25, "in_channels": 1, "num_classes": 10}
    assert 0 <= evaluate_accuracy(model, "digits") <= 1
    with pytest.raises(ValueError, match=r"data synthetic: inputs of shape \(3, 32, 32\) do not"):
        evaluate_accuracy(model, "synthetic")


def test_append_rows_keeps_existing_rows_and_unions_columns(tmp_path):
    path = tmp_path / "results.csv"
    append_rows(path, pd.DataFrame([{"a": 1, "b": 2}]))
    append_rows(path, pd.DataFrame([{"a": 3, "c": 4}]))
    table = pd.read_csv(path)
    assert table["a"].tolist() == [1, 3] and list(table.columns) == ["a", "b", "c"]
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize("hardware, message", [
    ({"accelerator": ["x"]}, "hardware.accelerator: unknown key; allowed: accelerators"),
    ({"batch": 0}, "hardware.batch: must be > 0"),
    ({"accelerators": "systolic_32"}, "hardware.accelerators: must be list"),
    ({"accelerators": []}, "hardware.accelerators: give at least one"),
])
def test_bad_hardware_section_is_a_one_line_error(hardware, message):
    with pytest.raises(ValueError, match=message):
        hardware_section({"hardware": hardware})


def test_unknown_accelerator_fails_before_training(tmp_path):
    cfg = tiny(tmp_path)
    cfg["hardware"]["accelerators"] = ["no_such_accel"]
    with pytest.raises((ValueError, FileNotFoundError, KeyError), match="no_such_accel"):
        run_pipeline(cfg, progress=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name", ["default", "mnist_resnet20", "cifar10_resnet20",
                                  "cifar10_resnet56"])
def test_shipped_configs_are_valid(name):
    cfg = load_yaml(Path(__file__).resolve().parents[1] / "experiments" / "configs"
                    / f"{name}.yaml")
    resolve_config(cfg, ("hardware", "checkpoint"))
    hardware_section(cfg)


def test_dense_base_check_reads_no_data(tmp_path, monkeypatch):
    import hwsim.pipeline

    def no_data(*_args, **_kwargs):
        raise AssertionError("the dense-base check loaded a dataset")

    monkeypatch.setattr(hwsim.pipeline, "load_dataset", no_data)
    config = {**tiny(tmp_path), "model": {"name": "resrep_resnet20", "width": 0.25},
              "init": {"resrep_base": {}}}
    base = {"model": {"name": "resnet20", "width": 0.25}, "data": config["data"],
            "train": {"epochs": 1, "out_dir": str(tmp_path / "base")}}
    with pytest.raises(ValueError, match="base.model: resnet20 is not the dense form of "
                                         "resrep_resnet20"):
        hwsim.pipeline._check_dense_base(config, base)
    hwsim.pipeline._check_dense_base(config, {**base, "model": {**base["model"],
                                                                 "shortcut": "B"}})
