"""hwsim sweep: expansion, content hashes, resume, error rows, pool, Dask, training points."""

import json
import math

import pandas as pd
import pytest
import torch
import yaml

import models
from hwsim.accel import load_accelerator
from hwsim.cli import main
from hwsim.cost import evaluate, hardware_totals
from hwsim.results import read_table
from hwsim.sweep import combinations, error_row, load_sweep, run_sweep
from hwsim.trace import trace
from models.checkpoint import load_checkpoint
from models.provenance import hwsim_version

MODEL = {"model.name": "resnet20", "model.width": 0.25}
INPUT = "3x16x16"


def write(tmp_path, config: dict, name: str = "sweep.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return path


def sim_config(tmp_path, **extra) -> dict:
    return {"results": str(tmp_path / "results.csv"),
            "base": {"input": INPUT, "model": {"name": "resnet20", "width": 0.25}},
            "points": [{"method": "a"}, {"method": "b", "trace.weight_bits": 4}],
            "grid": {"accel.array.rows": [8, 16],
                     "accel.buffers.weight.size_bytes": [64, 65536]},
            **extra}


def test_combinations_points_zip_grid_in_order():
    raw = {"points": [{"m": 1}, {"m": 2}], "zip": {"a": [1, 2, 3], "b": [4, 5, 6]},
           "grid": {"g": [7, 8]}}
    combos = combinations(raw)
    assert len(combos) == 2 * 3 * 2
    assert combos[0] == {"m": 1, "a": 1, "b": 4, "g": 7}
    assert combos[1] == {"m": 1, "a": 1, "b": 4, "g": 8}
    assert combos[-1] == {"m": 2, "a": 3, "b": 6, "g": 8}
    assert combinations({}) == [{}]


@pytest.mark.parametrize("raw, message", [
    ({"zip": {"a": [1, 2], "b": [1]}}, "equal lengths"),
    ({"grid": {"a": []}}, "non-empty list"),
    ({"grid": {"a": 3}}, "non-empty list"),
    ({"points": "x"}, "points"),
])
def test_combinations_errors(raw, message):
    with pytest.raises(ValueError, match=message):
        combinations(raw)


@pytest.mark.parametrize("change, message", [
    ({"typo": 1}, "unknown key 'typo'"),
    ({"results": "out.txt"}, "results must end in .csv or .parquet"),
    ({"grid": {"bogus.key": [1]}}, "unknown key 'bogus'"),
    ({"grid": {"batch": ["two"]}}, "batch must be int"),
    ({"grid": {"trace.bits": [4]}}, "trace.bits: unknown key"),
    ({"grid": {"accel.name": ["no_such_accel"]}}, "unknown accelerator"),
    ({"grid": {"train.out_dir": ["x"]}}, "train.out_dir is set by the sweep"),
    ({"grid": {"accel.array.rows": [8, 8]}}, "resolve to the same config"),
    ({"grid": {"accel..rows": [8]}}, "is not a dotted key"),
])
def test_config_errors_name_the_key(tmp_path, change, message):
    config = {**sim_config(tmp_path), **change}
    with pytest.raises(ValueError, match=message):
        load_sweep(write(tmp_path, config))


def test_hash_is_content_of_resolved_config(tmp_path):
    spec = load_sweep(write(tmp_path, sim_config(tmp_path))).points
    again = load_sweep(write(tmp_path, sim_config(tmp_path), "other.yaml")).points
    assert [p.config_hash for p in spec] == [p.config_hash for p in again]
    assert len({p.config_hash for p in spec}) == len(spec) == 8
    # The same point spelled in base or in the grid, defaults given or not: one hash.
    explicit = {"results": str(tmp_path / "r.csv"),
                "points": [{"model.name": "resnet20", "model.width": 0.25, "input": INPUT,
                            "method": "a", "batch": 1, "accel.name": "systolic_32",
                            "accel.array.rows": 8, "accel.buffers.weight.size_bytes": 64}]}
    assert load_sweep(write(tmp_path, explicit, "e.yaml")).points[0].config_hash == \
        spec[0].config_hash
    # An accelerator file enters by content: editing it changes the hash.
    accel = tmp_path / "mine.yaml"
    raw = yaml.safe_load(open("hwsim/accelerators/systolic_32.yaml"))
    accel.write_text(yaml.safe_dump(raw))
    own = {**explicit, "points": [{**explicit["points"][0], "accel.name": str(accel)}]}
    before = load_sweep(write(tmp_path, own, "o.yaml")).points[0].config_hash
    raw["clock_mhz"] = 500
    accel.write_text(yaml.safe_dump(raw))
    assert load_sweep(write(tmp_path, own, "o.yaml")).points[0].config_hash != before


def _oracle(point) -> dict:
    """The point's totals computed directly, without the sweep machinery."""
    c = point.config
    torch.manual_seed(0)
    model = models.create_model("resnet20", width=0.25)
    graph = trace(model, (3, 16, 16), batch=1, name="resnet20", **c["trace"])
    accel = load_accelerator("systolic_32", c["accel"]["overrides"])
    return hardware_totals(evaluate(graph, accel, c["objective"]), graph, accel)


@pytest.mark.parametrize("workers", [1, 2])
def test_sweep_rows_match_direct_evaluation_and_resume(tmp_path, workers):
    sweep = load_sweep(write(tmp_path, sim_config(tmp_path)))
    report = run_sweep(sweep, workers=workers, progress=False)
    assert (report.total, report.skipped, report.ran) == (8, 0, 8)
    table = read_table(sweep.results)
    assert len(table) == 8 and set(table["config_hash"]) == {p.config_hash for p in sweep.points}
    # The 64 B weight buffer holds no tile that fills the array: error rows, not a crash.
    errors = table[table["status"] == "error"]
    assert report.failed == len(errors) == 4
    assert (errors["accel.buffers.weight.size_bytes"] == 64).all()
    assert errors["error"].str.contains("weight buffer").all()
    assert errors["dram_bytes"].isna().all()
    ok = table[table["status"] == "ok"].set_index("config_hash")
    for point in sweep.points:
        if point.swept["accel.buffers.weight.size_bytes"] == 64:
            continue
        expected = _oracle(point)
        row = ok.loc[point.config_hash]
        for key in ("dram_bytes", "energy_pj", "latency_cycles", "latency_ms"):
            assert row[key] == pytest.approx(expected[key], rel=1e-12)
        assert row["method"] == point.config["method"]
        assert json.loads(row["config"]) == point.config
    # Low-precision weights move fewer bytes: the trace.weight_bits knob reached the graph.
    a = ok[(ok["method"] == "a") & (ok["accel.array.rows"] == 16)]["weight_dram_bytes"].item()
    b = ok[(ok["method"] == "b") & (ok["accel.array.rows"] == 16)]["weight_dram_bytes"].item()
    assert b < a

    again = run_sweep(load_sweep(write(tmp_path, sim_config(tmp_path))), workers=workers,
                      progress=False)
    assert (again.skipped, again.ran) == (8, 0)
    assert len(read_table(sweep.results)) == 8


def test_resume_runs_only_missing_points(tmp_path):
    sweep = load_sweep(write(tmp_path, sim_config(tmp_path)))
    run_sweep(sweep, workers=1, progress=False)
    table = read_table(sweep.results)
    kept = table.iloc[:5]
    kept.to_csv(sweep.results, index=False)
    report = run_sweep(sweep, workers=1, progress=False)
    assert (report.skipped, report.ran) == (5, 3)
    resumed = read_table(sweep.results)
    assert sorted(resumed["config_hash"]) == sorted(table["config_hash"])
    # A wider grid runs only the new points.
    wider = sim_config(tmp_path)
    wider["grid"]["accel.array.rows"] = [8, 16, 32]
    report = run_sweep(load_sweep(write(tmp_path, wider)), workers=1, progress=False)
    assert (report.total, report.skipped, report.ran) == (12, 8, 4)


def test_interrupted_sweep_keeps_finished_rows_and_resumes(tmp_path, monkeypatch, capsys):
    import hwsim.sweep as sweep_module

    real = sweep_module.run_simulation_chunk
    calls = []

    def interrupted(graphs, points):
        calls.append(len(points))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(graphs, points)

    monkeypatch.setattr(sweep_module, "run_simulation_chunk", interrupted)
    path = write(tmp_path, sim_config(tmp_path))
    assert main(["sweep", str(path), "--workers", "1", "--no-progress"]) == 130
    assert "same command resumes" in capsys.readouterr().err
    sweep = load_sweep(path)
    kept = len(read_table(sweep.results))
    assert kept == calls[0] >= 1
    monkeypatch.setattr(sweep_module, "run_simulation_chunk", real)
    report = run_sweep(sweep, workers=1, progress=False)
    assert (report.skipped, report.ran) == (kept, 8 - kept)


def test_model_that_cannot_be_built_is_error_rows(tmp_path):
    config = sim_config(tmp_path, grid={"model.width": [0.25, "wide"]})
    sweep = load_sweep(write(tmp_path, config))
    report = run_sweep(sweep, workers=1, progress=False)
    table = read_table(sweep.results)
    assert report.ran == 4 and report.failed == 2
    assert (table[table["model.width"] == "wide"]["status"] == "error").all()
    assert table[table["status"] == "error"]["error"].str.contains("width").all()


def test_error_row_message_is_one_unquoted_line(tmp_path):
    point = load_sweep(write(tmp_path, sim_config(tmp_path))).points[0]
    row = error_row(point, KeyError("unknown model 'x': available: resnet18"))
    assert row["status"] == "error"
    assert row["error"] == "KeyError: unknown model 'x': available: resnet18"
    assert error_row(point, ValueError("bad\n value"))["error"] == "bad value"


def test_parquet_table(tmp_path):
    pytest.importorskip("pyarrow")
    sweep = load_sweep(write(tmp_path, sim_config(tmp_path, results=str(tmp_path / "r.parquet"))))
    run_sweep(sweep, workers=1, progress=False)
    assert len(pd.read_parquet(sweep.results)) == 8
    assert run_sweep(sweep, workers=1, progress=False).ran == 0
    # A swept key with values of two types still makes a table.
    mixed = sim_config(tmp_path, results=str(tmp_path / "m.parquet"),
                       grid={"model.width": [0.25, "wide"]})
    run_sweep(load_sweep(write(tmp_path, mixed)), workers=1, progress=False)
    assert sorted(pd.read_parquet(tmp_path / "m.parquet")["model.width"].unique()) == \
        ["0.25", "wide"]


def train_config(tmp_path) -> dict:
    return {"results": str(tmp_path / "trained.csv"), "checkpoints": str(tmp_path / "ckpt"),
            "base": {"model": {"name": "resnet20", "width": 0.25},
                     "data": {"name": "digits", "train_subset": 128, "test_subset": 64},
                     "train": {"epochs": 1, "batch_size": 32, "threads": 1},
                     "calib_batches": 1, "calib_batch_size": 16},
            "grid": {"accel.array.rows": [8, 16]}}


def test_training_points_share_and_reuse_one_checkpoint(tmp_path):
    sweep = load_sweep(write(tmp_path, train_config(tmp_path)))
    assert len({p.train_hash for p in sweep.points}) == 1
    run_sweep(sweep, workers=1, progress=False)
    table = read_table(sweep.results)
    assert (table["status"] == "ok").all(), table["error"].tolist()
    assert table["test_acc"].nunique() == 1 and 0 <= table["test_acc"].iloc[0] <= 1
    ckpt = tmp_path / "ckpt" / sweep.points[0].train_hash / "last.pt"
    assert table["checkpoint"].unique().tolist() == [str(ckpt)]
    # Rows and the checkpoint say which code made them.
    assert table["hwsim_version"].unique().tolist() == [hwsim_version()]
    assert load_checkpoint(ckpt)["hwsim_version"] == hwsim_version()
    stamp = ckpt.stat().st_mtime_ns
    # A new hardware point reuses the trained checkpoint instead of training again.
    wider = train_config(tmp_path)
    wider["grid"]["accel.array.rows"] = [8, 16, 32]
    report = run_sweep(load_sweep(write(tmp_path, wider)), workers=1, progress=False)
    assert report.ran == 1
    assert ckpt.stat().st_mtime_ns == stamp
    assert read_table(sweep.results)["test_acc"].nunique() == 1
    # A different training config is a different checkpoint.
    longer = train_config(tmp_path)
    longer["base"]["train"]["epochs"] = 2
    assert load_sweep(write(tmp_path, longer)).points[0].train_hash != sweep.points[0].train_hash


@pytest.fixture(scope="module")
def dask_cluster():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                       dashboard_address=None, resources={"GPU": 1})
    yield cluster
    cluster.close()


def test_dask_matches_local_pool(tmp_path, dask_cluster):
    local = load_sweep(write(tmp_path, sim_config(tmp_path)))
    run_sweep(local, workers=1, progress=False)
    config = sim_config(tmp_path, results=str(tmp_path / "dask.csv"))
    remote = load_sweep(write(tmp_path, config, "d.yaml"))
    report = run_sweep(remote, executor="dask", scheduler=dask_cluster.scheduler_address,
                       progress=False)
    assert (report.ran, report.failed) == (8, 4)
    a = read_table(local.results).set_index("config_hash").sort_index()
    b = read_table(remote.results).set_index("config_hash").sort_index()
    assert list(a.index) == list(b.index)
    for key in ("status", "dram_bytes", "energy_pj", "latency_cycles"):
        pd.testing.assert_series_equal(a[key], b[key])


def test_cli_sweep_on_dask_scheduler(tmp_path, dask_cluster, capsys, monkeypatch):
    path = write(tmp_path, sim_config(tmp_path))
    assert main(["sweep", str(path), "--scheduler", dask_cluster.scheduler_address,
                 "--no-progress"]) == 0
    assert "8 run (4 failed" in capsys.readouterr().out
    monkeypatch.setattr("hwsim.executors.CONNECT_TIMEOUT", "0.5s")
    fresh = write(tmp_path, sim_config(tmp_path, results=str(tmp_path / "x.csv")), "x.yaml")
    assert main(["sweep", str(fresh), "--scheduler", "tcp://127.0.0.1:9", "--no-progress"]) == 2
    assert "cannot connect to a Dask scheduler" in capsys.readouterr().err


def test_dask_training_point_needs_the_resource(tmp_path, dask_cluster):
    sweep = load_sweep(write(tmp_path, train_config(tmp_path)))
    with pytest.raises(ValueError, match="no Dask worker offers the TPU resource"):
        run_sweep(sweep, executor="dask", scheduler=dask_cluster.scheduler_address,
                  train_resource="TPU", progress=False)
    report = run_sweep(sweep, executor="dask", scheduler=dask_cluster.scheduler_address,
                       train_resource="GPU", progress=False)
    assert (report.ran, report.failed) == (2, 0)
    assert not math.isnan(read_table(sweep.results)["test_acc"].iloc[0])


def test_cli_sweep_dry_run_run_and_errors(tmp_path, capsys):
    path = write(tmp_path, sim_config(tmp_path))
    assert main(["sweep", str(path), "--dry-run"]) == 0
    assert "8 points, 0 already in" in capsys.readouterr().out
    assert main(["sweep", str(path), "--workers", "1", "--no-progress",
                 "--set", f"results={tmp_path / 'cli.csv'}"]) == 0
    assert "8 run (4 failed" in capsys.readouterr().out
    assert len(read_table(tmp_path / "cli.csv")) == 8
    bad = write(tmp_path, {**sim_config(tmp_path), "typo": 1}, "bad.yaml")
    assert main(["sweep", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hwsim: error: bad.yaml: unknown key 'typo'") and "Traceback" not in err


def test_retry_errors_replaces_error_rows(tmp_path):
    sweep = load_sweep(write(tmp_path, sim_config(tmp_path)))
    run_sweep(sweep, workers=1, progress=False)
    # Only the 4 error rows run again (and fail again); one row per point stays.
    again = run_sweep(sweep, workers=1, progress=False, retry_errors=True)
    assert (again.skipped, again.ran, again.failed) == (4, 4, 4)
    table = read_table(sweep.results)
    assert len(table) == 8 and table["config_hash"].is_unique


def test_concurrent_appends_keep_one_row_per_point(tmp_path):
    from hwsim.results import append_table

    path = tmp_path / "t.csv"
    append_table(path, [{"config_hash": "a", "status": "ok", "x": 1},
                        {"config_hash": "b", "status": "error", "x": 2}])
    append_table(path, [{"config_hash": "a", "status": "ok", "x": 3},
                        {"config_hash": "b", "status": "ok", "x": 4}])
    table = read_table(path).set_index("config_hash")
    assert table["x"].to_dict() == {"a": 1, "b": 4}


def test_hashes_that_look_like_numbers_stay_text(tmp_path):
    from hwsim.results import append_table, done_hashes

    path = tmp_path / "t.csv"
    append_table(path, [{"config_hash": "0012345678901234", "status": "ok"},
                        {"config_hash": "12e4567890123456", "status": "ok"}])
    append_table(path, [{"config_hash": "abcdef0123456789", "status": "error"}])
    assert done_hashes(path) == {"0012345678901234", "12e4567890123456", "abcdef0123456789"}
    with pytest.raises(ValueError, match="cannot read this results table columns config_hash"):
        done_hashes(write(tmp_path, {"a": 1}, "not_a_table.csv"))


def test_appends_in_pieces_write_what_one_write_would(tmp_path):
    from hwsim.results import append_table

    rows = [{"config_hash": f"h{i}", "status": "ok", "x": i, "y": i / 3} for i in range(6)]
    once, pieces = tmp_path / "once.csv", tmp_path / "pieces.csv"
    append_table(once, rows)
    for i in range(0, 6, 2):  # the later appends encode only their new rows
        append_table(pieces, rows[i:i + 2])
    assert pieces.read_bytes() == once.read_bytes()
    # A new column, then a row replacing an error row: the whole table is written again.
    append_table(pieces, [{"config_hash": "e", "status": "error", "x": 9, "note": "n"}])
    append_table(pieces, [{"config_hash": "e", "status": "ok", "x": 10, "y": 0.5}])
    table = read_table(pieces)
    assert table["config_hash"].tolist() == [f"h{i}" for i in range(6)] + ["e"]
    assert table.set_index("config_hash").loc["e", "x"] == 10
    # A table another job replaced meanwhile is read back, not overwritten from memory.
    other = read_table(pieces)
    other.loc[len(other)] = {"config_hash": "z", "status": "ok", "x": 0}
    other.to_csv(tmp_path / "other.csv", index=False)
    (tmp_path / "other.csv").replace(pieces)
    append_table(pieces, [{"config_hash": "w", "status": "ok", "x": 1}])
    assert read_table(pieces)["config_hash"].tolist()[-2:] == ["z", "w"]


def test_resrep_point_is_costed_and_scored_after_conversion(tmp_path):
    from hwsim.pipeline import load_checkpoint_model
    from models.data import load_dataset, sample
    from models.resrep import seed_flops
    from models.train import evaluate as accuracy

    config = train_config(tmp_path)
    config["base"]["model"] = {"name": "resrep_resnet20", "width": 0.5}
    config["base"].update({
        "resrep": {"flops_target": 0.5, "before_mask_iters": 2, "mask_interval": 1,
                   "begin_granularity": 8, "lasso_strength": 3e-3},
        "grad_hooks": {"resrep": {}}})
    config["base"]["train"]["epochs"] = 2
    config["grid"] = {"accel.array.rows": [16]}
    sweep = load_sweep(write(tmp_path, config))
    run_sweep(sweep, workers=1, progress=False)
    row = read_table(sweep.results).iloc[0]
    assert row["status"] == "ok", row["error"]
    assert row["checkpoint"].endswith("pruned.pt")
    model, meta = load_checkpoint_model(row["checkpoint"])
    channels = meta["model_kwargs"]["channels"]
    assert json.loads(row["channels"]) == channels and sum(channels) < 9 * 16
    # Independent of the sweep: the converted network's MACs over the full network's.
    full = models.create_model("resrep_resnet20", width=0.5, in_channels=1)
    shape = (1, 16, 16)
    assert math.isclose(row["flops_ratio"], trace(model, shape).macs / trace(full, shape).macs)
    assert row["seed_flops"] == seed_flops(model, shape) < seed_flops(full, shape)
    _, test_set = load_dataset("digits")
    scored = sample(test_set, 64)  # the config's test_subset
    assert math.isclose(row["test_acc"], accuracy(model, scored, 256, torch.device("cpu"))[1])


def test_gated_points_carry_ideal_and_realized_speedup(tmp_path):
    from hwsim.gating import gating_summary

    config = sim_config(tmp_path, grid={"accel.name": ["bitserial_32"]})
    config["base"]["model"] = {"name": "pg_resnet20", "width": 0.25}
    config["points"] = [{"method": "PG"}]
    sweep = load_sweep(write(tmp_path, config))
    run_sweep(sweep, workers=1, progress=False)
    row = read_table(sweep.results).iloc[0]
    graph = trace(models.create_model("pg_resnet20", width=0.25), (3, 16, 16))
    accel = load_accelerator("bitserial_32")
    summary = gating_summary(graph, accel, evaluate(graph, accel))
    for key in ("ideal_speedup", "realized_speedup", "realized_latency_speedup",
                "gated_layers_realized_speedup"):
        assert math.isclose(row[key], summary[key]), key
