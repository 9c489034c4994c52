"""The CLI end to end through ``main([...])``: outputs, saved files, bad input."""

import json

import pytest
import yaml

from hwsim.cli import main


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_run_json_has_stable_keys_and_exact_counts(capsys):
    code, out, _ = _run(capsys, "run", "--model", "resnet18", "--accel", "none", "--format",
                        "json")
    assert code == 0
    report = json.loads(out)
    assert {"model", "accelerator", "totals", "layers", "storage", "notes"} <= set(report)
    assert report["totals"]["macs"] == 555_422_720
    assert report["storage"]["stored_params"] == 11_173_962
    assert report["totals"]["folded_params"] == 11_169_162  # BN folded into biases
    assert isinstance(report["totals"]["output_bytes"], int)  # whole bytes are integers
    assert report["accelerator"] is None and len(report["layers"]) == report["totals"]["layers"]


def test_run_table_csv_and_out(tmp_path, capsys):
    code, out, err = _run(capsys, "run", "--model", "resnet20", "--accel", "none", "--set",
                          "model.width=0.25", "--set", "model.num_classes=5", "--batch", "2",
                          "--out", str(tmp_path))
    assert code == 0 and "workload only" in out and "layers.2.2.conv2" not in out
    assert err == f"wrote layers.csv, summary.json, run.yaml to {tmp_path}\n"  # not on stdout
    run = yaml.safe_load((tmp_path / "run.yaml").read_text())
    assert run["model"] == {"name": "resnet20", "width": 0.25, "num_classes": 5}
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["totals"]["macs"] == 2 * 2_617_504 - 2 * 160 + 2 * 16 * 5
    assert (tmp_path / "layers.csv").read_text().startswith("name,op,batch")
    code, out, _ = _run(capsys, "run", "--model", "resnet20", "--accel", "none", "--format",
                        "csv", "--input", "1x16x16", "--set", "model.in_channels=1")
    assert code == 0 and out.splitlines()[1].startswith("conv1,conv,1,1,16,16x16")


def test_seed_style_namespace_flags(capsys):
    code, _, err = _run(capsys, "run", "--model", "resnet18", "--accel", "none",
                        "--model.width=0.5")
    assert code == 0, err
    code, _, err = _run(capsys, "run", "--model", "resnet18", "--model.width")
    assert code == 2 and "expected a value" in err


@pytest.mark.parametrize("argv,needle", [
    (["run", "--model", "resnt18"], "did you mean resnet18"),
    (["run", "--model", "resnet18", "--input", "3x32"], "argument --input: expected CxHxW"),
    (["run", "--model", "resnet18", "--set", "model.depth=3"], "model.depth: unknown argument"),
    (["run", "--model", "resnet18", "--set", "model.conv=x"], "model.conv: unknown argument"),
    (["run", "--model", "resnet18", "--set", "model.num_classes=ten"], "must be int"),
    (["run", "--model", "resnet18", "--set", "foo.bar=1"], "unknown namespace"),
    (["run", "--model", "resnet18", "--set", "trace.act_bits=99"], "trace.act_bits"),
    (["run", "--model", "resnet18", "--set", "mlg.base_in=2"], "has no mlg settings"),
    (["run", "--model", "resnet18", "--batch", "-1"], "argument --batch"),
    (["run"], "give --model NAME or --checkpoint FILE"),
    (["run", "--model", "resnet18", "--format", "xml"], "argument --format"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_input_is_one_line_exit_2(capsys, argv, needle):
    code, out, err = _run(capsys, *argv)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and needle in err and "Traceback" not in err


def test_list_models(capsys):
    code, out, _ = _run(capsys, "list", "models")
    assert code == 0 and "resnet18" in out and "num_classes=10" in out


def test_run_with_accelerator_reports_hardware_and_limits(capsys):
    code, out, _ = _run(capsys, "run", "--model", "resnet20", "--set", "model.width=0.25",
                        "--accel", "systolic_32", "--set", "accel.array.rows=16",
                        "--format", "json")
    assert code == 0
    report = json.loads(out)
    totals = report["totals"]
    assert report["accelerator"]["array"]["rows"] == 16
    assert totals["tech"] == "horowitz45" and "Horowitz" in totals["tech_citation"]
    assert totals["dram_bytes"] >= totals["compulsory_dram_bytes"] > 0
    assert totals["latency_cycles"] >= totals["roofline_latency_cycles"] > 0
    parts = sum(totals[k] for k in ("mac_energy_pj", "sram_energy_pj", "dram_energy_pj",
                                    "gen_energy_pj"))
    assert totals["energy_pj"] == pytest.approx(parts)
    layer = report["layers"][0]
    assert {"compute_cycles", "dram_transactions", "loop_order", "energy_pj"} <= set(layer)
    assert sum(row["dram_bytes"] for row in report["layers"]) == pytest.approx(
        totals["dram_bytes"])


@pytest.mark.parametrize("argv,needle", [
    (["--accel", "systolik_32"], "systolik_32"),
    (["--set", "accel.array.rowz=3"], "accel.array.rowz: unknown key"),
    (["--set", "accel.array.rows=0"], "array.rows must be > 0"),
    (["--accel", "none", "--set", "accel.array.rows=8"], "no accelerator"),
])
def test_bad_accelerator_input(capsys, argv, needle):
    code, _, err = _run(capsys, "run", "--model", "resnet20", *argv)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1


def test_compressed_model_is_compared_with_its_dense_counterpart(capsys):
    code, out, _ = _run(capsys, "run", "--model", "mlg_resnet18", "--set", "model.width=0.25",
                        "--accel", "mlg_gen", "--format", "json")
    assert code == 0
    report = json.loads(out)
    base = report["baseline"]
    assert base["model"] == "resnet18"
    assert base["ratios"]["weight_dram_bytes_ratio"] < 0.2
    assert report["totals"]["gen_macs"] > 0 and base["totals"]["gen_macs"] == 0


def test_baseline_label_names_what_it_was_built_with(capsys):
    # resrep_resnet20's dense baseline keeps its projection shortcuts (B), not resnet20's A.
    code, out, _ = _run(capsys, "run", "--model", "resrep_resnet20", "--set", "model.width=0.25",
                        "--format", "json")
    base = json.loads(out)["baseline"]
    assert code == 0 and base["changed"] == {"shortcut": "B"} and base["checkpoint"] is None
    code, out, _ = _run(capsys, "run", "--model", "resnet20", "--set", "model.width=0.25",
                        "--set", "model.shortcut=B", "--format", "json")
    assert json.loads(out)["totals"]["macs"] == base["totals"]["macs"]  # reproducible
    code, out, _ = _run(capsys, "run", "--model", "resrep_resnet20", "--set", "model.width=0.25")
    assert "compared with resnet20 (shortcut=B), its dense counterpart" in out
    assert "resnet20 (dense, shortcut=B)" in out
    code, out, _ = _run(capsys, "run", "--model", "cg_resnet20", "--set", "model.width=0.25")
    assert "resnet20 (dense)" in out and "no dense baseline" not in out  # same defaults
    code, out, _ = _run(capsys, "run", "--model", "cg_resnet20_postact", "--set",
                        "model.width=0.25")
    assert code == 0 and "(dense" not in out
    assert ("note: no dense baseline: resnet20_postact is not a registered model; --baseline "
            "resnet20 picks" in " ".join(out.split()))


def test_sweep_errors_read_like_run_and_the_summary_shows_them(tmp_path, capsys):
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump({
        "results": str(tmp_path / "r.csv"),
        "base": {"input": "3x16x16", "model": {"name": "resnet20", "width": 0.25}},
        "points": [{"model.name": "resnet20"}, {"model.name": "cg_resnet20"}],
        "grid": {"cg.pt": [2, 4]}}))
    code, out, err = _run(capsys, "sweep", str(config), "--workers", "1", "--no-progress")
    assert code == 0, err
    wanted = "cg.*: model resnet20 has no cg settings; models that do: cg_resnet20"
    assert f"most common error (2 of 2 failed): {wanted}" in out
    _, _, err = _run(capsys, "run", "--model", "resnet20", "--set", "cg.pt=2")
    assert f"--set {wanted}" in err  # the same words as hwsim run


def test_export_scalesim(tmp_path, capsys):
    code, out, _ = _run(capsys, "export", "--model", "resnet20", "--set", "model.width=0.25",
                        "--out", str(tmp_path))
    assert code == 0 and "cross-check: python -m scalesim.scale" in out
    topology = (tmp_path / "resnet20.csv").read_text().splitlines()
    assert len(topology) == 1 + 19 + 1  # header, 19 convs, the classifier


def test_train_then_run_checkpoint_with_accuracy(tmp_path, capsys):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"name": "resnet20", "width": 0.25},
        "data": {"name": "digits", "train_subset": 128, "test_subset": 64},
        "train": {"epochs": 1, "batch_size": 64, "out_dir": str(tmp_path / "run"),
                  "threads": 1}}))
    code, out, err = _run(capsys, "train", str(config), "--no-progress", "--set",
                          "optimizer.lr=0.05")
    assert code == 0, err
    metrics = yaml.safe_load(out)
    checkpoint = tmp_path / "run" / "last.pt"
    assert metrics["checkpoint"] == str(checkpoint) and metrics["model_name"] == "resnet20"
    code, out, err = _run(capsys, "run", "--checkpoint", str(checkpoint), "--data", "digits",
                          "--format", "json")
    assert code == 0, err
    report = json.loads(out)
    assert report["input_shape"] == [1, 1, 16, 16]  # from the checkpoint, not the zoo default
    assert 0 <= report["totals"]["test_acc"] <= 1
    # The same trained model as its own dense baseline: both accuracies, ratios of one.
    code, out, err = _run(capsys, "run", "--checkpoint", str(checkpoint), "--data", "digits",
                          "--baseline-checkpoint", str(checkpoint), "--format", "json")
    assert code == 0, err
    compared = json.loads(out)
    assert compared["baseline"]["totals"]["test_acc"] == compared["totals"]["test_acc"]
    assert set(compared["baseline"]["ratios"].values()) == {1.0}
    code, out, _ = _run(capsys, "run", "--checkpoint", str(checkpoint), "--data", "digits",
                        "--baseline-checkpoint", str(checkpoint))
    assert f"compared with resnet20, the checkpoint {checkpoint}, on" in " ".join(out.split())
    acc = next(line for line in out.splitlines() if line.startswith("test_acc"))
    value = f"{100 * compared['totals']['test_acc']:.2f}"
    assert acc.split() == ["test_acc", value, "%", value, "%"]
    code, out, err = _run(capsys, "run", "--model", "resnet20", "--set", "model.width=0.25",
                          "--set", "model.in_channels=1", "--input", "1x16x16", "--data",
                          "digits", "--baseline-checkpoint", str(checkpoint), "--format", "json")
    assert code == 0, err  # an untrained model beside a trained dense one: one accuracy
    untrained = json.loads(out)
    assert "test_acc" not in untrained["totals"]
    assert untrained["baseline"]["totals"]["test_acc"] == compared["totals"]["test_acc"]
    code, _, err = _run(capsys, "run", "--checkpoint", str(checkpoint), "--data", "digitz")
    assert code == 2 and "--data: invalid choice: 'digitz'" in err and "digits" in err
    code, _, err = _run(capsys, "train", str(config), "--set", "optimizer.lrr=0.05")
    assert code == 2 and "lrr" in err and len(err.strip().splitlines()) == 1
    checkpoint.write_bytes(b"not a checkpoint")
    code, _, err = _run(capsys, "run", "--checkpoint", str(checkpoint))
    assert code == 2 and "last.pt" in err and len(err.strip().splitlines()) == 1


def test_layer_rows_add_up_to_totals(capsys):
    code, out, _ = _run(capsys, "run", "--model", "mlg_resnet18", "--set", "model.width=0.25",
                        "--accel", "mlg_gen", "--set", "accel.buffers.weight.size_bytes=4096",
                        "--format", "json", "--baseline", "none")
    assert code == 0
    report = json.loads(out)
    for key in ("macs", "gen_macs", "dram_bytes", "energy_pj", "latency_cycles"):
        assert sum(row[key] for row in report["layers"]) == pytest.approx(report["totals"][key])
    assert report["layers"][0]["op"] == "conv"


def _widest(text: str) -> int:
    return max(len(line) for line in text.splitlines())


def test_a_baseline_named_by_hand_is_not_called_dense(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    code, out, err = _run(capsys, "run", "--model", "resnet20", "--set", "model.width=0.25",
                          "--input", "3x16x16", "--baseline", "mlg_resnet18")
    assert code == 0, err
    assert "compared with mlg_resnet18, the baseline," in out and "dense" not in out
    header = next(line for line in out.splitlines() if line.rstrip().endswith("ratio")).split()
    assert header == ["resnet20", "mlg_resnet18", "(baseline)", "ratio"]


@pytest.mark.parametrize("width", [100, 80, 64])
def test_headline_fits_the_terminal_and_shows_the_dense_baseline(capsys, monkeypatch, width):
    monkeypatch.setenv("COLUMNS", str(width))
    code, out, err = _run(capsys, "run", "--model", "mlg_resnet18", "--set", "model.width=0.25",
                          "--accel", "mlg_gen")
    assert code == 0, err
    assert _widest(out) <= width
    lines = out.splitlines()
    assert len(lines) < 40  # one screen
    assert any(line.startswith("compared with resnet18, its dense counterpart") for line in lines)
    header = next(line for line in lines if line.rstrip().endswith("ratio")).split()
    assert header == (["mlg_resnet18", "resnet18", "(dense)", "ratio"] if width >= 80 else
                      ["this", "dense", "ratio"])  # narrow: short heads, every column kept
    for label in ("limit: roofline", "limit: compute bound", "limit: compulsory", "utilization",
                  "stored_params", "folded_params"):
        assert any(line.startswith(label) or line.strip().startswith(label) for line in lines)
    assert "layers.0.0.conv1" not in out  # the layer table only on --layers
    # Human units from the record's exact figures.
    code, js, _ = _run(capsys, "run", "--model", "mlg_resnet18", "--set", "model.width=0.25",
                       "--accel", "mlg_gen", "--format", "json")
    record = json.loads(js)
    dram_line = next(line for line in lines if line.startswith("DRAM traffic"))
    expected = report_si(record["totals"]["dram_bytes"], "B")
    assert dram_line.split()[2:4] == expected.split()
    assert f"{record['baseline']['ratios']['dram_bytes_ratio']:#.3g}x" in dram_line


def report_si(value, unit):
    from hwsim.report import si

    return si(value, unit)


def test_si_units_against_hand_values():
    from hwsim.report import human, si

    assert si(2_707_945, "B") == "2.71 MB" and si(999_700, "B") == "1.00 MB"
    assert si(512, "B") == "512 B" and si(0.5, "B") == "0.500 B"
    assert human(2_099_733_378.39, "energy_pj") == "2.10 mJ"
    assert human(1_936_544, "cycles", clock_mhz=700) == "2.77 ms"
    assert human(566, "cycles", clock_mhz=700) == "809 ns"
    assert human(0.28, "fraction") == "28.0 %" and human(0.00802, "ratio") == "0.00802x"
    assert human(555_422_720, "count") == "555 M"


def test_overrides_are_shown_and_applied(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    code, out, _ = _run(capsys, "run", "--model", "resnet20", "--set", "model.width=0.25",
                        "--set", "accel.array.rows=16", "--set",
                        "accel.dram.bw_bytes_per_cycle=8")
    assert code == 0
    assert "changed by --set: array.rows 32 -> 16, dram.bw_bytes_per_cycle 32 -> 8" in out
    assert "16x32 ws array" in out and "DRAM 8 B/cycle" in out
    code, out, _ = _run(capsys, "run", "--model", "resnet20", "--set", "model.width=0.25")
    assert "no --set accel.* changes" in out
    code, js, _ = _run(capsys, "run", "--model", "resnet20", "--set", "model.width=0.25",
                       "--set", "accel.array.rows=16", "--format", "json")
    assert json.loads(js)["accelerator_changes"] == {"array.rows": [32, 16]}


@pytest.mark.parametrize("width", [100, 72])
def test_layer_table_on_request_fits_the_width(capsys, monkeypatch, width):
    monkeypatch.setenv("COLUMNS", str(width))
    code, out, _ = _run(capsys, "run", "--model", "resnet20", "--set", "model.width=0.25",
                        "--layers")
    assert code == 0 and _widest(out) <= width
    rows = [line for line in out.splitlines() if line.startswith("layers.2.2.conv2")]
    assert len(rows) == 1  # one line per layer, never wrapped
    assert "latency" in out.split("per layer")[1].splitlines()[1]


def test_compare_sets_models_and_accelerators_side_by_side(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    argv = ["compare", "--model", "resnet20", "resnet18", "--accel", "systolic_32", "mlg_gen",
            "--set", "model.width=0.25"]
    code, out, err = _run(capsys, *argv)
    assert code == 0, err
    assert _widest(out) <= 100
    lines = out.splitlines()
    assert lines[0].split() == ["resnet20", "resnet20", "resnet18", "resnet18"]
    assert lines[1].split() == ["systolic_32", "mlg_gen", "systolic_32", "mlg_gen"]
    assert any(line.startswith("latency") for line in lines)
    code, js, _ = _run(capsys, *argv, "--format", "json")
    records = json.loads(js)
    assert [(r["model"], r["accelerator"]["name"]) for r in records] == [
        ("resnet20", "systolic_32"), ("resnet20", "mlg_gen"), ("resnet18", "systolic_32"),
        ("resnet18", "mlg_gen")]
    code, one, _ = _run(capsys, "run", "--model", "resnet18", "--set", "model.width=0.25",
                        "--accel", "mlg_gen", "--format", "json")
    assert records[3]["totals"] == json.loads(one)["totals"]  # the same record as run's
    code, csv, _ = _run(capsys, *argv, "--format", "csv")
    assert len(csv.strip().splitlines()) == 1 + 4 and "dram_bytes" in csv.splitlines()[0]
    code, out, err = _run(capsys, "compare", "--model", "resnet20", "--accel", "systolic_32",
                          "--set", "mlg.base_in=2")
    assert code == 2 and "none of the models has mlg settings" in err
    code, js, err = _run(capsys, "compare", "--model", "resnet20", "mlg_resnet18", "--set",
                         "model.width=0.25", "--set", "mlg.base_in=2", "--format", "json")
    assert code == 0, err  # each model takes the --set keys it has
    assert [r["model"] for r in json.loads(js)] == ["resnet20", "mlg_resnet18"]
    code, out, err = _run(capsys, *argv, "--set", "accel.array.rows=16")
    assert code == 0, err  # the header names presets: what --set changed is said above it
    assert out.splitlines()[:2] == ["systolic_32 changed by --set: array.rows 32 -> 16",
                                    "mlg_gen changed by --set: array.rows 32 -> 16"]
    monkeypatch.setenv("COLUMNS", "50")  # too narrow for four columns: further blocks
    code, out, _ = _run(capsys, *argv)
    assert code == 0 and _widest(out) <= 50
    assert out.count("latency") >= 2


def test_no_heavy_imports_for_help_list_and_argument_errors():
    import subprocess
    import sys

    script = """
import sys
import hwsim
assert 'torch' not in sys.modules, 'import hwsim'
from hwsim.cli import main
for argv in (['--help'], ['run', '--help'], ['compare', '--help'], ['list'],
             ['run', '--model', 'resnt18'], ['run', '--model', 'resnet18', '--batch', '0'],
             ['run', '--model', 'resnet18', '--set', 'model.depth=3'],
             ['run', '--model', 'resnet18', '--set', 'model.width=abc'],
             ['run', '--model', 'resnet18', '--set', 'model.num_classes=0'],
             ['run', '--model', 'resnet18', '--accel', 'systolik_32'], ['--version']):
    try:
        main(argv)
    except SystemExit:
        pass
    heavy = {'torch', 'pandas'} & set(sys.modules)
    assert not heavy, (argv, heavy)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def _subparsers():
    import argparse

    from hwsim.cli import build_parser

    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return parser, action.choices


def test_every_command_and_option_has_help_with_an_example_and_no_markup(capsys):
    parser, commands = _subparsers()
    for name, sub in commands.items():
        assert "examples:" in sub.description, name
        for action in sub._actions:
            if action.dest != "help":
                assert action.help and "e.g." in action.help, (name, action.dest)
        assert "``" not in sub.format_help(), name
    assert "``" not in parser.format_help()
    code, out, _ = _run(capsys, "list")
    assert code == 0 and "``" not in out and "resrep_resnet56" in out and "mlg.*" in out


def test_version(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out == f"hwsim {version('hwsim')}\n"


def test_lazy_package_keeps_the_trace_function():
    import hwsim.pipeline  # noqa: F401  (imports the hwsim.trace submodule)
    from hwsim import evaluate_record, trace

    assert callable(trace) and trace.__module__ == "hwsim.trace"
    assert evaluate_record.__module__ == "hwsim.record"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        import hwsim

        hwsim.nope  # noqa: B018


def test_readme_names_every_model_dataset_and_total(capsys):
    """The README's Models and Datasets lists and its JSON totals against the live ones."""
    from pathlib import Path

    from hwsim import catalog

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    models = readme.split("## Models", 1)[1].split("\n## ", 1)[0]
    assert [m for m in catalog.MODELS if f"`{m}`" not in models] == []
    assert [d for d in catalog.DATASETS if f"`{d}`" not in readme.split("- Datasets")[1]] == []
    code, out, _ = _run(capsys, "run", "--model", "mlg_resnet18", "--set", "model.width=0.25",
                        "--accel", "mlg_gen", "--format", "json")
    record = json.loads(out)
    summed = [c for c, v in record["layers"][0].items() if isinstance(v, (int, float))
              and c.endswith(("_bytes", "_cycles", "_pj", "macs", "_transactions"))]
    missing = [c for c in summed if c not in record["totals"]]
    assert missing == ["gen_cycles", "sram_cycles"]  # the README names the exceptions
    assert "summed except `gen_cycles` and `sram_cycles`" in " ".join(readme.split())
