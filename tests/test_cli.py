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
    assert report["storage"]["params"] == 11_173_962
    assert report["accelerator"] is None and len(report["layers"]) == report["totals"]["layers"]


def test_run_table_csv_and_out(tmp_path, capsys):
    code, out, _ = _run(capsys, "run", "--model", "resnet20", "--accel", "none", "--set",
                        "model.width=0.25", "--set", "model.num_classes=5", "--batch", "2",
                        "--out", str(tmp_path))
    assert code == 0 and "totals:" in out and "layers.2.2.conv2" in out
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
    assert 0 <= report["totals"]["test_accuracy"] <= 1
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
