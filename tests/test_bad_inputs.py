"""Bad input over every command: one line on stderr naming the culprit and what is allowed, exit 2.

Each case runs ``hwsim.cli.main`` in-process (fast: every bad input must fail before any
training or costing starts) and a few run through a real subprocess. ``{d}`` in an argument is
the folder of prepared files (configs, checkpoints, accelerator specs), in the expected text too.
"""

import argparse
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from hwsim.cli import build_parser, main
from models import create_model
from models.checkpoint import new_checkpoint, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]

BASE_TRAIN = {"model": {"name": "resnet20", "width": 0.25},
              "data": {"name": "digits", "train_subset": 128, "test_subset": 64},
              "train": {"epochs": 1, "batch_size": 64, "threads": 1}}
ACCEL = (ROOT / "hwsim" / "accelerators" / "systolic_32.yaml").read_text()
BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
    for i in range(8))


def _train_yaml(d: Path, **sections) -> str:
    config = {**BASE_TRAIN, "train": {**BASE_TRAIN["train"], "out_dir": str(d / "run")}}
    config.update(sections)
    return yaml.safe_dump(config)


def _checkpoint(path: Path, **changes) -> None:
    model = create_model("resnet20", width=0.25)
    checkpoint = new_checkpoint("resnet20", {"width": 0.25}, model, {}, (3, 32, 32))
    checkpoint.update(changes)
    save_checkpoint(path, checkpoint)


class Foreign:
    """A class a weights-only load refuses."""


@pytest.fixture(scope="module")
def d(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("bad")
    base = _train_yaml(d)
    texts = {
        "train.yaml": base,
        "betas_text.yaml": _train_yaml(d, optimizer={"name": "adam", "betas": ["a", "b"]}),
        "betas_one.yaml": _train_yaml(d, optimizer={"name": "adam", "betas": [0.9]}),
        "betas_big.yaml": _train_yaml(d, optimizer={"name": "adam", "betas": [1.5, 0.9]}),
        "no_decay.yaml": _train_yaml(d, optimizer={"no_decay": [1, 2]}),
        "milestones.yaml": _train_yaml(d, schedule={"name": "step", "milestones": ["a"]}),
        "milestones_neg.yaml": _train_yaml(d, schedule={"name": "step", "milestones": [-2]}),
        "model_name_int.yaml": _train_yaml(d, model={"name": 5}),
        "model_scalar.yaml": _train_yaml(d, model=5),
        "model_unknown.yaml": _train_yaml(d, model={"name": "resnet99"}),
        "model_width0.yaml": _train_yaml(d, model={"name": "resnet20", "width": 0}),
        "model_conv.yaml": _train_yaml(d, model={"name": "resnet20", "conv": "x"}),
        "model_nested.yaml": _train_yaml(d, model={"name": "resnet20", "width": {"a": 1}}),
        "model_intkey.yaml": _train_yaml(d, model={"name": "resnet20", 1: 2}),
        "mlg_on_dense.yaml": _train_yaml(d, mlg={"base_in": 2}),
        "mlg_list.yaml": _train_yaml(d, model={"name": "mlg_resnet18", "width": 0.125},
                                     mlg=[1, 2]),
        "kd_typo.yaml": _train_yaml(d, losses={"kd": {"teacher": "t.pt", "wieght": 1}}),
        "kd_no_teacher.yaml": _train_yaml(d, losses={"kd": {"T": 3.0}}),
        "kd_T_text.yaml": _train_yaml(d, losses={"kd": {"teacher": "t.pt", "T": "hot"}}),
        "ortho_scalar.yaml": _train_yaml(d, losses={"mlg_ortho": 5}),
        "ortho_nan.yaml": _train_yaml(d, losses={"mlg_ortho": {"weight": float("nan")}}),
        "init_steps.yaml": _train_yaml(d, init={"mlg_projection": {"teacher": "t.pt",
                                                                   "steps": 2.5}}),
        "losses_list.yaml": _train_yaml(d, losses=["kd"]),
        "accels_nested.yaml": _train_yaml(d, hardware={"accelerators": [[1, 2]]}),
        "accels_empty.yaml": _train_yaml(d, hardware={"accelerators": []}),
        "accels_string.yaml": _train_yaml(d, hardware={"accelerators": "systolic_32"}),
        "accels_unknown.yaml": _train_yaml(d, hardware={"accelerators": ["systolik_32"]}),
        "hardware_scalar.yaml": _train_yaml(d, hardware=5),
        "results_list.yaml": _train_yaml(d, hardware={"results": ["a"]}),
        "checkpoint_int.yaml": _train_yaml(d, checkpoint=5),
        "checkpoint_missing.yaml": _train_yaml(d, checkpoint=str(d / "missing.pt")),
        "bomb.yaml": base + "hardware:\n  results: r.csv\n" + "".join(
            f"  {line}\n" for line in BOMB.splitlines()).replace("  a:", "  x_a:"),
        "bomb_top.yaml": BOMB + base,
        "merge_key.yaml": "defaults: &d {epochs: 1}\n" + base.replace(
            "train:\n", "train:\n  <<: *d\n"),
        "deep.yaml": base + "mlg: " + "[" * 500 + "]" * 500 + "\n",
        "syntax.yaml": base + "optimizer: {lr: 0.1\n",
        "top_list.yaml": "- model\n- data\n",
        "duplicate.yaml": base + "train: {epochs: 2}\n",
        "tab.yaml": "model:\n\tname: resnet20\n",
        "python_tag.yaml": "model: !!python/object/apply:os.system ['true']\n",
        "accel_bomb.yaml": ACCEL + BOMB.replace("a:", "x_a:", 1),
        "accel_list_rows.yaml": ACCEL.replace("rows: 32", "rows: [32]"),
        "accel_nan.yaml": ACCEL.replace("clock_mhz: 700", "clock_mhz: .nan"),
        "accel_dup.yaml": ACCEL + "clock_mhz: 800\n",
        "accel_buffers_list.yaml": ACCEL.split("buffers:")[0] + "buffers: [1, 2]\n"
                                   + "dram: {bw_bytes_per_cycle: 32}\n",
        "accel_top_list.yaml": "- 1\n",
    }
    sweep = {"results": str(d / "sweep.csv"), "checkpoints": str(d / "sweep_runs"),
             "base": {"model": {"name": "resnet20", "width": 0.25}}}
    trained = {**sweep, "base": {**sweep["base"], "data": {"name": "digits"}}}
    texts.update({
        "sweep.yaml": yaml.safe_dump(sweep),
        "no_out_dir.yaml": yaml.safe_dump(BASE_TRAIN),
        "sweep_trained.yaml": yaml.safe_dump(trained),
        "sweep_bomb.yaml": yaml.safe_dump(sweep) + BOMB.replace("a:", "x_a:", 1),
        "rr_nan.yaml": _train_yaml(d, model={"name": "resrep_resnet20", "width": 0.25},
                                   resrep={"lasso_strength": float("nan")}),
        "table.csv": "method,accelerator,x,y,status\na,s,1,2,ok\n",
    })
    for name, text in texts.items():
        (d / name).write_text(text)
    (d / "binary.yaml").write_bytes(b"model: \xff\xfe\x00name\n")
    (d / "empty_accel.yaml").write_text("")
    (d / "folder.yaml").mkdir()
    (d / "a_file").write_text("x")
    (d / "garbage.pt").write_bytes(b"not a checkpoint at all")
    (d / "empty.pt").write_bytes(b"")
    (d / "zip.pt").write_bytes(b"PK\x03\x04" + b"\x00" * 64)
    torch.save({"a": Foreign()}, d / "foreign.pt")
    torch.save([1, 2, 3], d / "list.pt")
    torch.save({"format": "hwsim-checkpoint", "version": 99}, d / "version.pt")
    _checkpoint(d / "state_list.pt", state_dict=[1, 2])
    _checkpoint(d / "state_values.pt", state_dict={"conv1.weight": 3})
    _checkpoint(d / "wrong_shape.pt", input_shape=[1, 32, 32])
    _checkpoint(d / "shape_text.pt", input_shape="3x32x32")
    _checkpoint(d / "shape_zero.pt", input_shape=[3, 0, 32])
    _checkpoint(d / "kwargs_list.pt", model_kwargs=[1])
    _checkpoint(d / "name_int.pt", model_name=5)
    _checkpoint(d / "name_unknown.pt", model_name="resnet99")
    _checkpoint(d / "kwargs_bad.pt", model_kwargs={"width": -1.0})
    _checkpoint(d / "history_dict.pt", history={"a": 1})
    _checkpoint(d / "weights_mismatch.pt", model_kwargs={"width": 0.5})
    _checkpoint(d / "ok.pt")
    gray = create_model("resnet20", width=0.25, in_channels=1)  # trained at another input
    save_checkpoint(d / "gray.pt", new_checkpoint("resnet20", {"width": 0.25, "in_channels": 1},
                                                  gray, {}, (1, 16, 16)))
    mnist = d / "mnist_bad_labels"
    mnist.mkdir()
    for prefix in ("train", "t10k"):
        (mnist / f"{prefix}-images-idx3-ubyte").write_bytes(
            bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 28, 0, 0, 0, 28]) + bytes(2 * 28 * 28))
        (mnist / f"{prefix}-labels-idx1-ubyte").write_bytes(
            bytes([0, 0, 8, 1, 0, 0, 0, 2, 3, 11]))
    (d / "float_tag.yaml").write_text(base + "schedule: {gamma: !!float abc}\n")
    (d / "list_key.yaml").write_text(base + "schedule: {[1]: 2}\n")
    (d / "set_tag.yaml").write_text(base + "mlg: !!set {a, b}\n")
    (d / "results_dir").mkdir()
    (d / "results_dir.yaml").write_text(
        _train_yaml(d, hardware={"results": str(d / "results_dir")}))
    return d


RUN = ["run", "--model", "resnet20", "--set", "model.width=0.25"]
MLG = ["run", "--model", "mlg_resnet18", "--set", "model.width=0.125"]
CASES = [
    # accelerator values: finite, positive, bounded, typed (--set accel.* and files)
    ([*RUN, "--set", "accel.dram.bw_bytes_per_cycle=.nan"], "dram.bw_bytes_per_cycle"),
    ([*RUN, "--set", "accel.dram.bw_bytes_per_cycle=.inf"], "dram.bw_bytes_per_cycle"),
    ([*RUN, "--set", "accel.clock_mhz=.nan"], "clock_mhz must be a finite number"),
    ([*RUN, "--set", "accel.clock_mhz=-.inf"], "clock_mhz"),
    ([*RUN, "--set", "accel.clock_mhz=0"], "clock_mhz must be > 0"),
    ([*RUN, "--set", "accel.array.rows=.nan"], "accel.array.rows: expected int"),
    ([*RUN, "--set", "accel.array.rows=1e12"], "accel.array.rows: expected int"),
    ([*RUN, "--set", "accel.array.cols=1000000000000"], "array.cols must be at most"),
    ([*RUN, "--set", "accel.array.mac_bits=0"], "array.mac_bits must be > 0"),
    ([*RUN, "--set", "accel.array.mac_bits=1024"], "array.mac_bits must be at most"),
    ([*RUN, "--set", "accel.array.dataflow=xy"], "array.dataflow must be one of ws, os, is"),
    ([*RUN, "--set", "accel.array.precision_mode=serial"], "array.precision_mode"),
    ([*RUN, "--set", "accel.array=5"], "accel.array: expected a mapping"),
    ([*RUN, "--set", "accel.buffers.weight.size_bytes=-5"], "size_bytes must be > 0"),
    ([*RUN, "--set", "accel.buffers.weight.pj_per_byte=.nan"], "weight.pj_per_byte"),
    ([*RUN, "--set", "accel.buffers.weight.double_buffered=3"], "expected bool"),
    ([*RUN, "--set", "accel.buffers.scratch.size_bytes=3"], "buffers.scratch: unknown key"),
    ([*RUN, "--set", "accel.dram.pj_per_bit=-1"], "dram.pj_per_bit must be > 0"),
    ([*RUN, "--set", "accel.dram.transaction_bytes=0"], "dram.transaction_bytes"),
    ([*RUN, "--set", "accel.tech=nope"], "tech must be one of"),
    ([*RUN, "--accel", "mlg_gen", "--set", "accel.weight_gen.macs_per_cycle=0"],
     "weight_gen.macs_per_cycle must be > 0"),
    ([*RUN, "--accel", "mlg_gen", "--set", "accel.weight_gen.factor_buffer_bytes=-1"],
     "weight_gen.factor_buffer_bytes must be >= 0"),
    ([*RUN, "--accel", "{d}/accel_bomb.yaml"], "aliases (*a) are not allowed"),
    ([*RUN, "--accel", "{d}/accel_list_rows.yaml"], "array.rows: expected int"),
    ([*RUN, "--accel", "{d}/accel_nan.yaml"], "accel_nan.yaml: clock_mhz must be a finite"),
    ([*RUN, "--accel", "{d}/accel_dup.yaml"], "duplicate key 'clock_mhz'"),
    ([*RUN, "--accel", "{d}/accel_buffers_list.yaml"], "buffers: expected a mapping"),
    ([*RUN, "--accel", "{d}/accel_top_list.yaml"], "top level must be a mapping"),
    ([*RUN, "--accel", "{d}/empty_accel.yaml"], "name: required key missing"),
    ([*RUN, "--accel", "{d}/binary.yaml"], "binary.yaml: not UTF-8 text"),
    ([*RUN, "--accel", "{d}/folder.yaml"], "folder.yaml: is a folder"),
    ([*RUN, "--accel", "{d}/missing.yaml"], "missing.yaml: no such file"),
    ([*RUN, "--accel", "systolik_32"], "did you mean systolic_32"),
    ([*RUN, "--set", "accel.dram.bw_bytes_per_cycle=1e-300"], "must be at least 1e-09"),
    ([*RUN, "--set", "accel.buffers.shared.size_bytes=100"],
     "accel.buffers.shared.bw_bytes_per_cycle: required key missing"),
    ([*RUN, "--set", "accel.buffers.shared.size_bytes=100", "--set",
      "accel.buffers.shared.bw_bytes_per_cycle=3"], "accel.buffers must be either"),
    ([*RUN, "--set", "accel.weight_gen.bits=8"],
     "accel.weight_gen.macs_per_cycle: required key missing (accelerator systolic_32)"),
    (["compare", "--model", "resnet20", "--accel", "mlg_gen", "systolic_32", "--set",
      "accel.weight_gen.macs_per_cycle=256"],
     "accel.weight_gen.bits: required key missing (accelerator systolic_32)"),
    ([*RUN, "--set", "model.name=resnet18"], "model.name=resnet18: disagrees with --model"),
    ([*RUN, "--set", "accel.buffers.weight.size_bytes=1"], "needs 112 B of the weight buffer"),
    # model arguments and input shapes
    (["run", "--model", "resnet20", "--set", "model.width=0"], "'width' must be > 0"),
    (["run", "--model", "resnet20", "--set", "model.width=-1"], "'width' must be > 0"),
    (["run", "--model", "resnet20", "--set", "model.width=.nan"], "'width' must be a finite"),
    (["run", "--model", "resnet20", "--set", "model.width=.inf"], "'width' must be a finite"),
    (["run", "--model", "resnet20", "--set", "model.num_classes=0"], "'num_classes' must be > 0"),
    (["run", "--model", "resnet20", "--set", "model.in_channels=-3"], "'in_channels' must be"),
    (["run", "--model", "densenet121", "--set", "model.growth=0"], "'growth' must be > 0"),
    (["run", "--model", "resnet20", "--set", "model.shortcut=C"], "shortcut must be one of A, B"),
    (["run", "--model", "resnet20", "--set", "model.width=[1]"], "value must be a scalar"),
    (["run", "--model", "resnet18", "--set", "model.width=100"], "parameters, more than the"),
    (["run", "--model", "resnet18", "--set", "model.num_classes=1000000"], "more than the"),
    (["run", "--model", "resnet18", "--set", "model.in_channels=10000000"], "'in_channels'"),
    ([*RUN, "--input", "1x32x32"], "layer conv1 (Conv2d, expects 3 input channels)"),
    ([*MLG, "--input", "2x32x32"], "layer conv1 (MLGConv2d, expects 3 input channels)"),
    (["run", "--model", "densenet121", "--set", "model.width=0.125", "--input", "3x4x4"],
     "does not fit densenet121: layer"),
    ([*RUN, "--input", "3x100000x100000"], "is too large"),
    ([*RUN, "--input", "0x32x32"], "argument --input"),
    ([*RUN, "--batch", "0"], "argument --batch"),
    ([*RUN, "--batch", "100000000000"], "trace: batch must be an integer in 1.."),
    ([*RUN, "--set", "trace.act_bits=.nan"], "trace.act_bits"),
    ([*RUN, "--set", "trace.weight_bits=0"], "trace.weight_bits"),
    ([*MLG, "--set", "mlg.base_in=-1"], "base_in must be an int >= 0"),
    ([*MLG, "--set", "mlg.basis_bit=.nan"], "basis_bit"),
    ([*MLG, "--set", "mlg.base_out=1e3"], "base_out must be an int"),
    ([*MLG, "--set", "mlg.gen_weight_bit=99"], "gen_weight_bit"),
    ([*MLG, "--set", "mlg.colour=1"], "mlg: unknown key 'colour'"),
    # checkpoints: what is wrong, never torch's advice to drop weights_only
    (["run", "--checkpoint", "{d}/garbage.pt"], "garbage.pt: not a readable checkpoint"),
    (["run", "--checkpoint", "{d}/empty.pt"], "empty.pt: not a readable checkpoint"),
    (["run", "--checkpoint", "{d}/zip.pt"], "zip.pt: not a readable checkpoint"),
    (["run", "--checkpoint", "{d}/foreign.pt"], "holds Python objects"),
    (["run", "--checkpoint", "{d}/list.pt"], "not an hwsim checkpoint"),
    (["run", "--checkpoint", "{d}/version.pt"], "version 99 is not supported"),
    (["run", "--checkpoint", "{d}/state_list.pt"], "entry state_dict must be a mapping"),
    (["run", "--checkpoint", "{d}/state_values.pt"], "entry state_dict must be a mapping"),
    (["run", "--checkpoint", "{d}/wrong_shape.pt"], "layer conv1 (Conv2d, expects 3 input"),
    (["run", "--checkpoint", "{d}/shape_text.pt"], "entry input_shape must be [C, H, W]"),
    (["run", "--checkpoint", "{d}/shape_zero.pt"], "entry input_shape must be [C, H, W]"),
    (["run", "--checkpoint", "{d}/kwargs_list.pt"], "entry model_kwargs must be a mapping"),
    (["run", "--checkpoint", "{d}/name_int.pt"], "entry model_name must be a model name"),
    (["run", "--checkpoint", "{d}/name_unknown.pt"], "cannot rebuild model 'resnet99'"),
    (["run", "--checkpoint", "{d}/kwargs_bad.pt"], "'width' must be > 0"),
    (["run", "--checkpoint", "{d}/history_dict.pt"], "entry history must be a list"),
    (["run", "--checkpoint", "{d}/weights_mismatch.pt"], "weights do not match"),
    (["run", "--checkpoint", "{d}/missing.pt"], "missing.pt: no such checkpoint"),
    (["run", "--checkpoint", "{d}"], "is a folder, expected a checkpoint"),
    (["run", "--checkpoint", "{d}/garbage.pt", "--model", "resnet18"], "not a readable"),
    (["run", "--checkpoint", "{d}/ok.pt", "--model", "resnet18"], "disagrees with the checkpoint"),
    (["run", "--checkpoint", "{d}/ok.pt", "--data", "imagenet"],
     "--data: invalid choice: 'imagenet'"),
    (["run", "--checkpoint", "{d}/ok.pt", "--data", "digits"], "data digits: inputs of shape"),
    (["run", "--checkpoint", "{d}/ok.pt", "--data", "mnist", "--data-root", "{d}"],
     "MNIST file train-images-idx3-ubyte(.gz) not found"),
    (["run", "--model", "resnet20", "--data", "digits"], "--data needs --checkpoint"),
    (["run", "--checkpoint", "{d}/ok.pt", "--data", "mnist", "--data-root",
      "{d}/mnist_bad_labels"], "labels must lie in 0..9, found 3..11"),
    # output paths
    ([*RUN, "--accel", "none", "--out", "{d}/a_file"], "a_file: exists and is not a folder"),
    ([*RUN, "--accel", "none", "--out", "{d}/a_file/sub"], "a_file: exists and is not a folder"),
    (["export", "--model", "resnet20", "--out", "{d}/a_file"], "exists and is not a folder"),
    (["export", "--model", "resnet20", "--accel", "none", "--out", "{d}/x"],
     "SCALE-Sim needs an accelerator"),
    (["export", "--model", "resnet20", "--input", "2x32x32", "--out", "{d}/x"],
     "expects 3 input channels"),
    (["export", "--model", "resnet20", "--set", "accel.clock_mhz=.nan", "--out", "{d}/x"],
     "clock_mhz must be a finite"),
    (["export", "--model", "resnet20", "--set", "model.width=0", "--out", "{d}/x"],
     "'width' must be > 0"),
    # training configs: every section, list items, nested maps, finite numbers
    (["train", "{d}/train.yaml", "--set", "optimizer.lr=.nan"], "optimizer.lr: must be a finite"),
    (["train", "{d}/train.yaml", "--set", "optimizer.lr=.inf"], "optimizer.lr: must be a finite"),
    (["train", "{d}/train.yaml", "--set", "optimizer.lr=-1e-3"], "optimizer.lr: must be > 0"),
    (["train", "{d}/train.yaml", "--set", "optimizer.weight_decay=-1"],
     "optimizer.weight_decay: must be >= 0"),
    (["train", "{d}/train.yaml", "--set", "optimizer.momentum=-0.5"], "optimizer.momentum"),
    (["train", "{d}/train.yaml", "--set", "optimizer.momentum=3.5"], "must be in [0, 1)"),
    (["train", "{d}/train.yaml", "--set", "train.out_dir="], "train.out_dir: must not be empty"),
    (["train", "{d}/train.yaml", "--set", "optimizer.eps=0"], "optimizer.eps: must be > 0"),
    (["train", "{d}/betas_text.yaml"], "optimizer.betas: items must be int or float"),
    (["train", "{d}/betas_one.yaml"], "optimizer.betas: must be a list of 2"),
    (["train", "{d}/betas_big.yaml"], "optimizer.betas: must be in [0, 1)"),
    (["train", "{d}/no_decay.yaml"], "optimizer.no_decay: items must be str"),
    (["train", "{d}/milestones.yaml"], "schedule.milestones: items must be int or float"),
    (["train", "{d}/milestones_neg.yaml"], "schedule.milestones: must be >= 0"),
    (["train", "{d}/train.yaml", "--set", "schedule.warmup_epochs=-1"],
     "schedule.warmup_epochs: must be >= 0"),
    (["train", "{d}/train.yaml", "--set", "schedule.gamma=.nan"], "schedule.gamma"),
    (["train", "{d}/train.yaml", "--set", "schedule.min_lr=-0.1"], "schedule.min_lr"),
    (["train", "{d}/train.yaml", "--set", "train.threads=0"], "train.threads: must be > 0"),
    (["train", "{d}/train.yaml", "--set", "train.threads=-2"], "train.threads: must be > 0"),
    (["train", "{d}/train.yaml", "--set", "train.threads=100000"], "train.threads: must be at"),
    (["train", "{d}/train.yaml", "--set", "train.seed=-1"], "train.seed: must be >= 0"),
    (["train", "{d}/train.yaml", "--set", "train.seed=99999999999999999999"], "train.seed"),
    (["train", "{d}/train.yaml", "--set", "train.batch_size=0"], "train.batch_size"),
    (["train", "{d}/train.yaml", "--set", "train.device=tpu"], "train.device"),
    (["train", "{d}/train.yaml", "--set", "train.out_dir={d}/a_file"], "not a folder"),
    (["train", "{d}/train.yaml", "--set", "data.train_subset=-5"],
     "data.train_subset: must be > 0"),
    (["train", "{d}/train.yaml", "--set", "data.test_subset=0"], "data.test_subset: must be > 0"),
    (["train", "{d}/train.yaml", "--set", "data.name=imagenet"], "data.name: 'imagenet' is not"),
    (["train", "{d}/train.yaml", "--set", "data.split=odd"], "data.split"),
    (["train", "{d}/train.yaml", "--set", "data=5"], "data: must be a mapping"),
    (["train", "{d}/model_name_int.yaml"], "model.name: model name must be a string"),
    (["train", "{d}/model_scalar.yaml"], "model: must be a mapping"),
    (["train", "{d}/model_unknown.yaml"], "model.name: unknown model 'resnet99'"),
    (["train", "{d}/model_width0.yaml"], "'width' must be > 0"),
    (["train", "{d}/model_conv.yaml"], "'conv' must be a callable"),
    (["train", "{d}/model_nested.yaml"], "'width' must be a finite number"),
    (["train", "{d}/model_intkey.yaml"], "unknown argument 1"),
    (["train", "{d}/mlg_on_dense.yaml"], "mlg: model resnet20 takes no mlg settings"),
    (["train", "{d}/mlg_list.yaml"], "mlg: must be a mapping"),
    (["train", "{d}/kd_typo.yaml"], "losses.kd.wieght: unknown parameter; allowed: teacher"),
    (["train", "{d}/kd_no_teacher.yaml"], "losses.kd.teacher: required parameter missing"),
    (["train", "{d}/kd_T_text.yaml"], "losses.kd.T: must be float"),
    (["train", "{d}/ortho_scalar.yaml"], "losses.mlg_ortho: must be a mapping"),
    (["train", "{d}/ortho_nan.yaml"], "losses.mlg_ortho.weight: must be a finite number"),
    (["train", "{d}/init_steps.yaml"], "init.mlg_projection.steps: must be int"),
    (["train", "{d}/losses_list.yaml"], "losses: must be a mapping"),
    (["train", "{d}/train.yaml", "--set", "optimizer.lrr=0.1"], "optimizer.lrr: unknown key"),
    (["train", "{d}/train.yaml", "--resume"], "there is no run to continue"),
    # YAML itself
    (["train", "{d}/bomb_top.yaml"], "aliases (*a) are not allowed in configs"),
    (["train", "{d}/merge_key.yaml"], "aliases (*d) are not allowed"),
    (["train", "{d}/deep.yaml"], "nested deeper than"),
    (["train", "{d}/syntax.yaml"], "syntax.yaml: invalid YAML"),
    (["train", "{d}/top_list.yaml"], "top level must be a mapping"),
    (["train", "{d}/duplicate.yaml"], "duplicate key 'train'"),
    (["train", "{d}/tab.yaml"], "tab.yaml: invalid YAML"),
    (["train", "{d}/python_tag.yaml"], "python/object/apply"),
    (["train", "{d}/binary.yaml"], "not UTF-8 text"),
    (["train", "{d}/float_tag.yaml"], "float_tag.yaml: invalid YAML: could not convert"),
    (["train", "{d}/list_key.yaml"], "list_key.yaml: invalid YAML: unhashable"),
    (["train", "{d}/set_tag.yaml"], "tag !!set is not allowed in configs"),
    (["train", "{d}/folder.yaml"], "folder.yaml: is a folder"),
    (["train", "{d}/missing.yaml"], "missing.yaml: no such file"),
    # pipeline sections
    (["pipeline", "{d}/bomb.yaml"], "aliases (*a) are not allowed"),
    (["pipeline", "{d}/accels_nested.yaml"], "hardware.accelerators: items must be str"),
    (["pipeline", "{d}/accels_empty.yaml"], "hardware.accelerators: give at least one"),
    (["pipeline", "{d}/accels_string.yaml"], "hardware.accelerators: must be list"),
    (["pipeline", "{d}/accels_unknown.yaml"], "did you mean systolic_32"),
    (["pipeline", "{d}/hardware_scalar.yaml"], "hardware: must be a mapping"),
    (["pipeline", "{d}/results_list.yaml"], "hardware.results: must be str"),
    (["pipeline", "{d}/results_dir.yaml"], "hardware.results: "),
    (["pipeline", "{d}/checkpoint_int.yaml"], "checkpoint: must be the path"),
    (["pipeline", "{d}/checkpoint_missing.yaml"], "missing.pt: no such checkpoint"),
    (["pipeline", "{d}/train.yaml", "--set", "hardware.batch=0"], "hardware.batch: must be > 0"),
    (["pipeline", "{d}/train.yaml", "--set", "hardware.weight_bits=99"],
     "hardware.weight_bits: must be at most 32"),
    (["pipeline", "{d}/train.yaml", "--set", "hardware.act_bits=.nan"], "hardware.act_bits"),
    (["pipeline", "{d}/train.yaml", "--set", "hardware.objective=fast"], "hardware.objective"),
    (["pipeline", "{d}/train.yaml", "--set", "hardware.calib_batches=-1"],
     "hardware.calib_batches: must be >= 0"),
    (["pipeline", "{d}/train.yaml", "--set", "hardware.colour=1"], "hardware.colour: unknown"),
    (["pipeline", "{d}/train.yaml", "--set", "train.threads=0"], "train.threads"),
    # run: what a checkpoint fixes, the event simulator, data folders, method settings
    (["run", "--checkpoint", "{d}/ok.pt", "--set", "model.width=0.5"],
     "a checkpoint's model is rebuilt with the settings it was trained with"),
    (["run", "--checkpoint", "{d}/ok.pt", "--set", "mlg.base_in=1"], "--set mlg.*: a checkp"),
    (["run", "--model", "resnet20", "--accel", "none", "--sim", "event"],
     "--sim event needs an accelerator"),
    ([*RUN, "--sim", "des"], "argument --sim: invalid choice: 'des'"),
    (["run", "--checkpoint", "{d}/ok.pt", "--calib", "-1"], "argument --calib: expected an"),
    ([*RUN, "--calib", "2"], "--calib needs --checkpoint FILE"),
    (["run", "--checkpoint", "{d}/ok.pt", "--data", "mnist", "--data-root", "{d}/nodata"],
     "not found ({d}/nodata does not exist); give the folder holding the IDX files "
     "(hwsim run --data-root DIR"),
    (["run", "--checkpoint", "{d}/ok.pt", "--data", "mnist", "--data-root", "{d}/a_file"],
     "({d}/a_file is a file, not a folder)"),
    (["run", "--checkpoint", "{d}/ok.pt", "--data", "cifar10", "--data-root", "{d}"],
     "CIFAR file data_batch_1 not found; give the folder holding cifar-10-batches-py/"),
    (["run", "--model", "resrep_resnet20", "--set", "resrep.flops_target=2"],
     "resrep: flops_target must be a number in (0, 1]"),
    (["run", "--model", "resrep_resnet20", "--set", "resrep.flops_target=.nan"],
     "resrep.flops_target: must be a finite number"),
    (["run", "--model", "resrep_resnet20", "--set", "resrep.lasso_strength=.inf"],
     "resrep.lasso_strength: must be a finite number"),
    (["run", "--model", "pg_resnet20", "--set", "pg.gtar=.nan"], "pg.gtar: must be a finite"),
    (["run", "--model", "pg_resnet20", "--set", "pg.gtar=inf"],
     "pg.gtar: must be a finite number, got 'inf'"),  # YAML's inf is a word, .inf the number
    (["run", "--model", "cg_resnet20", "--set", "cg.gtar=nan"],
     "cg.gtar: must be a finite number, got 'nan'"),
    ([*RUN, "--set", "model.width=nan"], "'width' must be a finite number, got 'nan'"),
    (["run", "--model", "pg_resnet20", "--set", "pg.wbits=-1"], "pg.wbits must be an int"),
    (["run", "--model", "cg_resnet20", "--set", "cg.alpha=-.inf"], "cg.alpha: must be a finite"),
    (["run", "--model", "cg_resnet20", "--set", "cg.colour=1"], "cg: unknown key 'colour'"),
    ([*RUN, "--baseline-checkpoint", "{d}/garbage.pt"], "garbage.pt: not a readable"),
    ([*RUN, "--baseline-checkpoint", "{d}/gray.pt"],
     "--baseline-checkpoint {d}/gray.pt: the baseline (trained at 1x16x16) is traced at the "
     "model's input; trace: input shape (3, 32, 32) does not fit resnet20"),
    ([*RUN, "--baseline", "resnet99"], "unknown model 'resnet99'"),
    # run folders: --runs-dir, --name, --resume
    (["train", "{d}/no_out_dir.yaml", "--runs-dir", "{d}/a_file"],
     "--runs-dir: {d}/a_file: exists and is not a folder"),
    (["train", "{d}/no_out_dir.yaml", "--runs-dir", "{d}/a_file", "--name", "x"],
     "--name x: {d}/a_file: exists and is not a folder"),
    (["train", "{d}/train.yaml", "--runs-dir", "{d}/runs"],
     "--runs-dir {d}/runs: the config already sets train.out_dir"),
    (["train", "{d}/train.yaml", "--name", "../x"], "--name '../x': use letters, digits"),
    (["train", "{d}/no_out_dir.yaml", "--runs-dir", ""], "--runs-dir '': give a folder"),
    ([*RUN, "--accel", "none", "--out", ""], "is the working folder or holds it"),
    (["train", "{d}/no_out_dir.yaml", "--resume", "--overwrite", "--name", "x"],
     "--resume and --overwrite: give one"),
    (["train", "{d}/train.yaml", "--set", "train.out_dir={d}/a_file/run"],
     "train.out_dir: {d}/a_file: exists and is not a folder"),
    (["train", "{d}/rr_nan.yaml"], "resrep.lasso_strength: must be a finite number"),
    (["pipeline", "{d}/train.yaml", "--set", "hardware.results={d}/a_file/r.csv"],
     "hardware.results: {d}/a_file: exists and is not a folder"),
    (["pipeline", "{d}/train.yaml", "--set", "hardware.results={d}/results_dir"],
     "hardware.results: {d}/results_dir: is a folder"),
    # compare
    (["compare", "--model", "resnet20", "--set", "accel.clock_mhz=.nan"], "clock_mhz must be a"),
    (["compare", "--model", "resnet99"], "unknown model 'resnet99'"),
    (["compare", "--model", "resnet20", "resnet18", "--set", "mlg.base_in=2"],
     "--set mlg.*: none of the models has mlg settings"),
    (["compare", "--model", "resnet20", "--set", "model.growth=2"],
     "--set model.growth: none of the models takes it"),
    (["compare", "--model", "resnet20", "--accel", "{d}/missing.yaml"], "missing.yaml: no such"),
    (["compare", "--model", "resnet20", "--set", "model.width=0.25", "--input", "2x32x32"],
     "expects 3 input channels"),
    (["compare", "--model", "resnet20", "--input", "3x100000x100000"], "is too large"),
    # sweep: the file's structure and every point's keys, before any work
    (["sweep", "{d}/sweep.yaml", "--set", "colour=1"], "sweep.yaml: unknown key 'colour'"),
    (["sweep", "{d}/sweep.yaml", "--set", "results={d}/results_dir"],
     "sweep.yaml: results: {d}/results_dir: is a folder"),
    (["sweep", "{d}/sweep.yaml", "--set", "results={d}/r.txt"],
     "results must end in .csv or .parquet"),
    (["sweep", "{d}/sweep.yaml", "--set", "results={d}/a_file/r.csv"],
     "sweep.yaml: results: {d}/a_file: exists and is not a folder"),
    (["sweep", "{d}/sweep.yaml", "--set", "results=5"], "sweep.yaml: results must be a path"),
    (["sweep", "{d}/sweep.yaml", "--set", "checkpoints={d}/a_file"],
     "sweep.yaml: checkpoints: {d}/a_file: exists and is not a folder"),
    (["sweep", "{d}/sweep.yaml", "--set", "base=5"], "sweep.yaml.base: expected a mapping"),
    (["sweep", "{d}/sweep.yaml", "--set", "points=5"], "points: expected a non-empty list"),
    (["sweep", "{d}/sweep.yaml", "--set", "base.quantize=ptq"],
     "quantize: ptq needs a trained point"),
    (["sweep", "{d}/sweep_trained.yaml", "--set", "base.quantize=int8"],
     "quantize must be one of none, ptq, got 'int8'"),
    (["sweep", "{d}/sweep_trained.yaml", "--set", "base.calib_batches=-1"],
     "calib_batches must be >= 0, got -1"),
    (["sweep", "{d}/sweep_trained.yaml", "--set", "base.calib_batch_size=0"],
     "calib_batch_size must be >= 1, got 0"),
    (["sweep", "{d}/sweep_trained.yaml", "--set", "base.optimizer.lr=.nan"],
     "optimizer.lr: must be a finite number"),
    (["sweep", "{d}/sweep_trained.yaml", "--set", "base.train.threads=0"],
     "train.threads: must be > 0"),
    (["sweep", "{d}/sweep_trained.yaml", "--set", "base.train.out_dir=x"],
     "train.out_dir is set by the sweep"),
    (["sweep", "{d}/sweep.yaml", "--set", "base.trace.colour=1"], "trace.colour: unknown key"),
    (["sweep", "{d}/sweep.yaml", "--set", "base.batch=one"], "batch must be int"),
    (["sweep", "{d}/sweep.yaml", "--set", "base.accel.name={d}/missing.yaml"],
     "accel.name {d}/missing.yaml: no such file"),
    (["sweep", "{d}/sweep.yaml", "--set", "base.model.name=5"], "model.name is required"),
    (["sweep", "{d}/sweep_bomb.yaml"], "aliases (*a) are not allowed"),
    (["sweep", "{d}/missing.yaml"], "missing.yaml: no such file"),
    (["sweep", "{d}/folder.yaml"], "folder.yaml: is a folder"),
    (["sweep", "{d}/sweep.yaml", "--workers", "0"], "argument --workers"),
    (["sweep", "{d}/sweep.yaml", "--scheduler", "nothing"],
     "--scheduler 'nothing': expected a Dask scheduler address HOST:PORT"),
    # plot: the table, its columns, --out, the timeline
    (["plot", "tradeoff", "--out", "{d}/p.png"], "give TABLE --x COLUMN --y COLUMN"),
    (["plot", "tradeoff", "{d}/missing.csv", "--x", "x", "--y", "y", "--out", "{d}/p.png"],
     "missing.csv: no such results table"),
    (["plot", "tradeoff", "{d}/table.csv", "--x", "x", "--y", "method", "--out", "{d}/p.png"],
     "plot tradeoff: --y method: the column must be numeric, it holds e.g. 'a'; numeric "
     "columns: x, y"),
    (["plot", "tradeoff", "{d}/table.csv", "--x", "zz", "--y", "y", "--out", "{d}/p.png"],
     "no column 'zz' in the table"),
    (["plot", "tradeoff", "{d}/table.csv", "--x", "x", "--y", "y", "--maximize", "zz", "--out",
      "{d}/p.png"], "--maximize zz: give the --x or the --y column"),
    (["plot", "tradeoff", "{d}/table.csv", "--x", "x", "--y", "y", "--where", "method=zz",
      "--out", "{d}/p.png"], "no row left; method holds a"),
    (["plot", "tradeoff", "{d}/table.csv", "--x", "x", "--y", "y", "--where", "x=abc",
      "--out", "{d}/p.png"], "x holds numbers"),
    (["plot", "tradeoff", "{d}/table.csv", "--x", "x", "--y", "y", "--out", "{d}/p.jpg"],
     "a figure must end in .png or .svg"),
    (["plot", "tradeoff", "{d}/table.csv", "--x", "x", "--y", "y", "--out", "{d}/results_dir"],
     "--out {d}/results_dir: is a folder; give a figure file"),
    (["plot", "tradeoff", "{d}/table.csv", "--x", "x", "--y", "y", "--out",
      "{d}/a_file/p.png"], "{d}/a_file: exists and is not a folder"),
    (["plot", "breakdown", "--model", "resnet20", "--set", "accel.clock_mhz=.nan", "--out",
      "{d}/p.png"], "clock_mhz must be a finite"),
    (["plot", "roofline", "--model", "resnet20", "--set", "model.width=0.25", "--input",
      "1x32x32", "--out", "{d}/p.png"], "expects 3 input channels"),
    (["plot", "timeline", "--out", "{d}/p.png"], "hwsim plot timeline: give --model NAME"),
    (["plot", "timeline", "--model", "resnet20", "--accel", "none", "--out", "{d}/p.png"],
     "hwsim plot timeline: needs an accelerator"),
    (["plot", "timeline", "--model", "resnet20", "--set", "model.width=0.25", "--zoom", "5:2",
      "--out", "{d}/p.png"], "--zoom: 5 comes after 2"),
    (["plot", "timeline", "--model", "resnet20", "--set", "model.width=0.25", "--zoom",
      "nolayer", "--out", "{d}/p.png"], "--zoom: no layer 'nolayer'"),
    # the command line itself
    ([], "the following arguments are required"),
    (["list", "gadgets"], "invalid choice"),
    (["run", "--model", "resnet20", "--bogus"], "unrecognized argument"),
    (["run", "--model", "resnet20", "--set", "noequals"], "expected key=value"),
]


def _argv(argv: list[str], d: Path) -> list[str]:
    return [arg.replace("{d}", str(d)) for arg in argv]


def _check_one_line(err: str, needle: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("hwsim: error: ") and needle in lines[0], lines[0]
    assert "Traceback" not in err and "weights_only" not in err


@pytest.mark.parametrize("argv,needle", CASES, ids=[f"{i:03d}" for i in range(len(CASES))])
def test_bad_input_is_one_line_exit_2(d, capsys, monkeypatch, argv, needle):
    monkeypatch.delenv("HWSIM_DEBUG", raising=False)
    code = main(_argv(argv, d))
    out, err = capsys.readouterr()
    assert code == 2 and out == "", (code, out, err)
    _check_one_line(err, needle.replace("{d}", str(d)))


def test_out_folder_the_os_refuses_is_one_line(d, capsys, monkeypatch):
    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(os, "mkdir", refuse)  # as in a read-only folder, portably
    monkeypatch.delenv("HWSIM_DEBUG", raising=False)
    assert main([*RUN, "--accel", "none", "--out", str(d / "refused")]) == 2
    _check_one_line(capsys.readouterr().err, f"{d / 'refused'}: cannot write there")


def test_every_command_has_cases():
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert {argv[0] for argv, _ in CASES if argv} == set(sub.choices)


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") is not None, reason="pyarrow installed")
def test_parquet_without_pyarrow_is_refused_before_work(d, capsys):
    assert main(["sweep", str(d / "sweep.yaml"), "--set", f"results={d}/t.parquet"]) == 2
    _check_one_line(capsys.readouterr().err, "t.parquet: a .parquet table needs pyarrow")


@pytest.mark.parametrize("argv,needle", [
    (["--set", "colour=1"], "mlg_tradeoff.yaml: unknown key 'colour'"),
    (["--set", "base.optimizer.lr=.nan"], "optimizer.lr: must be a finite number"),
    (["--set", "noequals"], "expected key=value"),
    (["--workers", "0"], "argument --workers: expected a positive integer"),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_study_scripts_print_one_line(capsys, monkeypatch, argv, needle):
    """The experiments/study_*.py scripts share ``studies.command``: a bad ``--set`` is the
    same one line and exit code 2 as for ``hwsim sweep``."""
    monkeypatch.syspath_prepend(str(ROOT / "experiments"))
    monkeypatch.delenv("HWSIM_DEBUG", raising=False)
    import study_mlg_tradeoff

    monkeypatch.setattr(sys, "argv", ["study_mlg_tradeoff.py", *argv])
    with pytest.raises(SystemExit) as stop:
        study_mlg_tradeoff.command(study_mlg_tradeoff.main)
    out, err = capsys.readouterr()
    assert stop.value.code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("study_mlg_tradeoff.py: error: "), err
    assert needle in lines[0]


def test_unreadable_config_names_the_file(d, capsys, monkeypatch):
    # The suite may run as root, where a mode-000 file stays readable: fail the read instead.
    def refuse(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", refuse)
    assert main(["train", str(d / "train.yaml")]) == 2
    _check_one_line(capsys.readouterr().err, "train.yaml: cannot read (Permission denied)")


def test_unreadable_checkpoint_names_the_file(d, capsys, monkeypatch):
    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(torch, "load", refuse)
    assert main(["run", "--checkpoint", str(d / "ok.pt")]) == 2
    _check_one_line(capsys.readouterr().err, "ok.pt: not a readable checkpoint: cannot read it "
                                             "(Permission denied)")


def test_debug_only_when_set_to_1(d, capsys, monkeypatch):
    argv = ["run", "--checkpoint", str(d / "garbage.pt")]
    monkeypatch.setenv("HWSIM_DEBUG", "0")
    assert main(argv) == 2
    _check_one_line(capsys.readouterr().err, "not a readable checkpoint")
    monkeypatch.setenv("HWSIM_DEBUG", "1")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        main(argv)


def test_bad_torchrun_environment_names_the_variable(d, capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "two")
    assert main(["train", str(d / "train.yaml")]) == 2
    _check_one_line(capsys.readouterr().err, "environment variable WORLD_SIZE")


def test_yaml_reads_exponents_as_numbers(d, tmp_path):
    from hwsim.config import load_yaml, parse_set

    path = tmp_path / "lr.yaml"
    path.write_text("optimizer: {lr: 1e-3, eps: 1.0e-8, weight_decay: 5E-4}\nwhen: 2024-01-01\n")
    assert load_yaml(path) == {"optimizer": {"lr": 0.001, "eps": 1e-8, "weight_decay": 5e-4},
                               "when": "2024-01-01"}
    assert parse_set("optimizer.lr=1e-3") == ("optimizer.lr", 0.001)


@pytest.mark.parametrize("argv,needle", [
    (["run", "--checkpoint", "{d}/foreign.pt"], "holds Python objects"),
    (["pipeline", "{d}/bomb.yaml"], "aliases (*a) are not allowed"),
    (["run", "--model", "resnet20", "--input", "1x32x32"], "expects 3 input channels"),
])
def test_real_process_prints_one_line(d, argv, needle):
    env = {**os.environ, "HWSIM_DEBUG": "0"}
    done = subprocess.run([sys.executable, "-m", "hwsim.cli", *_argv(argv, d)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    _check_one_line(done.stderr, needle)
