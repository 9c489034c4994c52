"""Gating layers: quantizers, PG / CG forward against direct computation, measured densities
against direct counts of the gate masks, and the training loop's sparsity against the trace's."""

import io
import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

import models
from hwsim import trace
from hwsim.cli import main
from hwsim.config import load_yaml
from hwsim.gating import measured_densities
from hwsim.pipeline import PIPELINE_SECTIONS, hardware_section, load_checkpoint_model, run_pipeline
from models.data import load_dataset, sample
from models.layers.gating import CGConv2d, PGConv2d, base_mask, gated_layers
from models.layers.quant import PACT, quantize_max, quantize_weight_max, truncate_msb
from models.plugins import lookup
from models.train import model_spec, resolve_config, train


def test_quantizers_split_msb_and_lsb_exactly_with_straight_through_gradients():
    x = (torch.rand(4, 3, 5, 5) * 3).requires_grad_()
    q, msb = quantize_max(x, 4), truncate_msb(x, 4, 2)
    scale = x.detach().abs().max() + 1e-7
    levels = q.detach() / scale * 15
    assert torch.allclose(levels, levels.round(), atol=1e-4)  # on the 4-bit grid
    msb_levels = (msb.detach() / scale * 15).round()
    assert set(msb_levels.unique().tolist()) <= {0.0, 4.0, 8.0, 12.0}  # 2 MSBs of 4 bits
    assert ((q - msb).detach() >= -1e-6).all() and ((q - msb).detach() * 15 / scale
                                                    < 4 + 1e-4).all()
    (q.sum() + msb.sum()).backward()
    assert torch.equal(x.grad, torch.full_like(x, 2.0))  # straight through both
    w = torch.randn(8, 4, 3, 3)
    assert torch.allclose(quantize_weight_max(w, 1).abs(), torch.full_like(w, (1 / 36) ** 0.5))
    assert quantize_weight_max(w, 0) is w


def test_pact_clips_and_learns_its_bound():
    pact = PACT(1.0)
    x = torch.tensor([-1.0, 0.5, 2.0, 3.0], requires_grad=True)
    y = pact(x)
    assert y.tolist() == [0.0, 0.5, 1.0, 1.0]
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 0.0, 0.0] and pact.alpha.grad.item() == 2.0


def test_pg_with_threshold_minus_inf_is_the_fully_quantized_conv():
    torch.manual_seed(0)
    conv = PGConv2d(4, 6, 3, padding=1, weight_bits=8, act_bits=4, pred_bits=2).eval()
    with torch.no_grad():
        conv.threshold.fill_(-float("inf"))
    x = torch.rand(2, 4, 7, 7)
    expected = F.conv2d(quantize_max(x, 4), quantize_weight_max(conv.weight, 8), padding=1)
    assert torch.allclose(conv(x), expected, atol=1e-5)
    assert conv.hw_stats()["lsb_density"] == 1.0
    with torch.no_grad():  # +inf: prediction only, i.e. the conv of the 2 MSBs
        conv.threshold.fill_(float("inf"))
    msb = F.conv2d(truncate_msb(x, 4, 2), quantize_weight_max(conv.weight, 8), padding=1)
    assert torch.allclose(conv(x), msb, atol=1e-5)


@pytest.mark.parametrize("kind", ["pg", "cg"])
def test_sparse_backprop_only_through_gates_that_are_on(kind):
    """The step's gradient: through the sigmoid everywhere (straight through), or only where
    the gate is on (``sparse_bp``), against the gate written out with autograd."""
    grads = {}
    for sparse in (False, True):
        torch.manual_seed(1)  # the same weights and inputs for both
        x = torch.rand(2, 3, 6, 6) if kind == "pg" else torch.randn(2, 4, 6, 6)
        if kind == "pg":
            conv = PGConv2d(3, 4, 3, padding=1, act_bits=4, pred_bits=2, threshold_init=0.1,
                            sparse_bp=sparse)
        else:
            conv = CGConv2d(4, 4, 3, padding=1, partitions=2, threshold_init=0.0,
                            sparse_bp=sparse)
        conv.eval()
        upstream = torch.randn(conv(x).shape)
        (conv(x) * upstream).sum().backward()
        got = conv.threshold.grad.clone()
        conv.threshold.grad = None
        if kind == "pg":
            w = quantize_weight_max(conv.weight, conv.weight_bits)
            msb = truncate_msb(x, 4, 2)
            cheap = F.conv2d(msb, w, padding=1)
            rest = F.conv2d(quantize_max(x, 4) - msb, w, padding=1)
            soft = torch.sigmoid(conv.alpha * (cheap - conv.threshold))
        else:
            cheap = F.conv2d(x, conv.weight * conv.mask, padding=1)
            rest = F.conv2d(x, conv.weight, padding=1) - cheap
            soft = torch.sigmoid(conv.alpha * (conv.norm(cheap) - conv.threshold))
        on = (soft > 0.5).float()
        gate = on + (soft - soft.detach()) * (on if sparse else 1)
        ((cheap + gate * rest) * upstream).sum().backward()
        assert torch.allclose(got, conv.threshold.grad, atol=1e-5)
        assert 0 < on.mean() < 1 and got.abs().sum() > 0
        grads[sparse] = got
    assert not torch.allclose(grads[False], grads[True])


def _pg_gates(conv, x):
    w = quantize_weight_max(conv.weight, conv.weight_bits)
    out = F.conv2d(truncate_msb(x, conv.act_bits, conv.pred_bits), w, padding=conv.padding)
    return out > conv.threshold


def _cg_gates(conv, x):
    partial = F.conv2d(x, conv.weight * conv.mask, conv.bias, padding=conv.padding)
    return conv.norm(partial) > conv.threshold


class _Two(torch.nn.Module):
    def __init__(self, gated):
        super().__init__()
        self.gated = gated
        self.fc = torch.nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(F.relu(self.gated(x)), 1).flatten(1))


@pytest.mark.parametrize("kind", ["pg", "cg"])
def test_measured_density_equals_direct_count_of_the_gate_masks(kind):
    torch.manual_seed(2)
    if kind == "pg":
        conv = PGConv2d(4, 6, 3, padding=1, act_bits=4, pred_bits=2, threshold_init=0.05)
    else:
        conv = CGConv2d(4, 6, 3, padding=1, partitions=2, grouped=True, threshold_init=0.3)
    net = _Two(conv).eval()
    batches = [torch.rand(3, 4, 8, 8), torch.rand(5, 4, 8, 8)]
    with torch.no_grad():
        masks = torch.cat([(_pg_gates if kind == "pg" else _cg_gates)(conv, x) for x in batches])
    graph = trace(net, (4, 8, 8), calib=batches)
    layer = graph["gated"]
    per_channel = masks.double().mean(dim=(0, 2, 3))
    assert 0 < masks.double().mean() < 1  # a real mix of gates on and off
    if kind == "pg":
        assert layer.lsb_density == pytest.approx(masks.double().mean().item(), abs=1e-12)
        assert layer.pred_bits == 2 and layer.act_bits == 4
    else:
        assert layer.gate_channel_density == pytest.approx(per_channel.tolist(), abs=1e-12)
        assert layer.mac_density == pytest.approx(0.5 + 0.5 * masks.double().mean().item())
    assert "measured on 8 calibration images" in graph.notes[-1]
    assert trace(net, (4, 8, 8)).notes[-1].startswith("dynamic statistics NOT measured")


def test_cg_base_mask_patterns():
    assert base_mask(4, 8, 4, grouped=False)[:, :, 0, 0].sum(1).tolist() == [2.0] * 4
    grouped = base_mask(4, 8, 2, grouped=True)[:, :, 0, 0]
    assert grouped[:2, :4].all() and not grouped[:2, 4:].any() and grouped[2:, 4:].all()


def test_cg_output_takes_the_full_sum_where_the_gate_is_on():
    torch.manual_seed(3)
    conv = CGConv2d(4, 4, 3, padding=1, partitions=2).eval()
    x = torch.randn(2, 4, 6, 6)
    gate = _cg_gates(conv, x)
    full = F.conv2d(x, conv.weight, padding=1)
    partial = F.conv2d(x, conv.weight * conv.mask, padding=1)
    assert torch.allclose(conv(x), torch.where(gate, full, partial), atol=1e-6)


@pytest.mark.parametrize("name,gated", [("pg_resnet20", 9), ("cg_resnet20", 9),
                                        ("cg_resnet20_postact", 18)])
def test_gated_resnets_trace_with_their_gated_layers(name, gated):
    model = models.create_model(name, in_channels=1, width=0.25)
    graph = trace(model, (1, 16, 16), calib=[torch.rand(2, 1, 16, 16)])
    assert measured_densities(graph)["gated_layers"] == gated


def test_threshold_losses_match_the_seeds_formulas():
    """pg_gating: σ · Σ ‖θ − target‖₂ (not squared); cg_gating: w · Σ (θ − target)²."""
    pg = models.create_model("pg_resnet20", width=0.25, pg={"sg": 0.5, "gtar": 0.25})
    cg = models.create_model("cg_resnet20", width=0.25)
    thresholds = {}
    for model in (pg, cg):
        for index, layer in enumerate(gated_layers(model)):
            layer.threshold.data = torch.linspace(-1, 1, layer.threshold.numel()).view_as(
                layer.threshold) * (index + 1)
        thresholds[model] = [layer.threshold.detach().flatten().tolist()
                             for layer in gated_layers(model)]
    pg_expected = 0.5 * sum(math.sqrt(sum((t - 0.25) ** 2 for t in th)) for th in thresholds[pg])
    cg_expected = 3.0 * sum((t - 2.0) ** 2 for th in thresholds[cg] for t in th)
    pg_term = lookup("loss", "pg_gating")(pg)
    cg_term = lookup("loss", "cg_gating")(cg, weight=3, target=2)
    assert pg_term(None, None, None).item() == pytest.approx(pg_expected, rel=1e-6)
    assert cg_term(None, None, None).item() == pytest.approx(cg_expected, rel=1e-6)
    with pytest.raises(ValueError, match="cg_gating: weight must be a finite number >= 0"):
        lookup("loss", "cg_gating")(cg, weight="big")
    with pytest.raises(ValueError, match="pg_gating: sigma must be a finite number >= 0"):
        lookup("loss", "pg_gating")(pg, sigma=-1)
    with pytest.raises(ValueError, match="pg_gating: the model has no pg-gated layers"):
        lookup("loss", "pg_gating")(cg)


def test_seed_flags_are_checked():
    with pytest.raises(ValueError, match="pg: unknown key 'pbit'"):
        models.create_model("pg_resnet20", pg={"pbit": 2})
    with pytest.raises(ValueError, match="pg.pbits must be"):
        models.create_model("pg_resnet20", pg={"pbits": 3, "abits": 3})
    with pytest.raises(ValueError, match="cg.pt must be"):
        models.create_model("cg_resnet20", width=0.25, cg={"pt": 3})
    with pytest.raises(ValueError, match=r"pg.wbits must be an int in \[0, 32\]"):
        models.create_model("pg_resnet20", pg={"wbits": -1})
    for section, key, value, allowed in (
            ("pg", "alpha", 0, "> 0"), ("pg", "pact_init", -1.0, "> 0"),
            ("pg", "sg", -0.1, ">= 0"), ("cg", "alpha", -2, "> 0"),
            ("cg", "gtar", math.inf, "a finite number")):
        with pytest.raises(ValueError, match=f"{section}.{key}: must be {allowed}"):
            models.create_model(f"{section}_resnet20", width=0.25, **{section: {key: value}})


@pytest.fixture(scope="module")
def trained_pg(tmp_path_factory):
    """A quarter-width PG ResNet-20 trained one epoch on a digits subset, and its metrics."""
    out = tmp_path_factory.mktemp("pg")
    config = {"model": {"name": "pg_resnet20", "width": 0.25}, "pg": {"gtar": 0.2},
              "data": {"name": "digits", "train_subset": 64, "test_subset": 48},
              "losses": {"pg_gating": {}}, "metrics": {"gate_sparsity": {}},
              "train": {"epochs": 1, "batch_size": 32, "eval_batch_size": 16,
                        "out_dir": str(out), "threads": 1}}
    return train(config, progress=False), out


def test_training_loop_sparsity_equals_the_traced_density(trained_pg):
    """The loop's logged gate_sparsity and the trace's measured densities on the same batches."""
    metrics, out = trained_pg
    model, _ = load_checkpoint_model(metrics["checkpoint"])
    test_set = sample(load_dataset("digits")[1], 48)
    graph = trace(model, (1, 16, 16), calib=[x for x, _ in test_set.batches(16)])
    assert 0 < metrics["gate_sparsity"] < 1
    assert measured_densities(graph)["gate_sparsity"] == pytest.approx(
        metrics["gate_sparsity"], abs=1e-12)
    assert "gate_sparsity" in (out / "metrics.csv").read_text().splitlines()[0]


def test_run_checkpoint_calibrates_and_reports_ideal_vs_realized(trained_pg, capsys,
                                                                monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # the per-layer table's columns fit (terminal_width)
    checkpoint = trained_pg[0]["checkpoint"]
    assert main(["run", "--checkpoint", checkpoint, "--accel", "bitserial_32", "--calib", "1",
                 "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    gating = report["gating"]
    assert gating["gating_mode"] == "skip" and gating["gated_layers"] == 9
    assert 1 <= gating["realized_speedup"] <= gating["ideal_speedup"]
    assert "measured on 64 calibration images" in " ".join(report["notes"])
    assert main(["run", "--checkpoint", checkpoint, "--accel", "systolic_32", "--calib",
                 "0"]) == 0
    text = capsys.readouterr().out
    assert "NOT measured" in text and "gate (bit-parallel: energy only" in text
    assert main(["run", "--checkpoint", checkpoint, "--calib", "-1"]) == 2
    capsys.readouterr()
    assert main(["run", "--model", "pg_resnet20", "--calib", "2"]) == 2  # nothing to calibrate
    assert "--calib needs --checkpoint" in capsys.readouterr().err
    assert main(["run", "--checkpoint", checkpoint, "--set", "pg.abits=4"]) == 2
    assert "--set pg.*: a checkpoint's model is rebuilt" in capsys.readouterr().err
    # The layer table shows each layer's ideal MAC reduction beside its realized speed-up.
    assert main(["run", "--checkpoint", checkpoint, "--accel", "bitserial_32", "--calib", "1",
                 "--layers"]) == 0
    out = capsys.readouterr().out
    table = out.split("per layer")[1].splitlines()
    assert table[1].split()[3:7] == ["gating", "MAC", "red.", "ideal"]
    row = next(line for line in table if line.startswith("layers.0.0.conv1")).split()
    assert row[4] == "skip" and row[5] == "1.00x" and float(row[6][:-1]) > 1
    assert main(["run", "--checkpoint", checkpoint, "--accel", "bitserial_32", "--calib", "1",
                 "--format", "csv"]) == 0
    layers = pd.read_csv(io.StringIO(capsys.readouterr().out)).set_index("name")
    gated = layers.loc["layers.0.0.conv1"]  # the resulting average bits, per layer
    assert gated["pred_bits"] == 2 and 0 < gated["lsb_density"] < 1
    assert gated["avg_act_bits"] == pytest.approx(2 + gated["lsb_density"] * (3 - 2))
    assert layers.loc["layers.0.0.conv2", "avg_act_bits"] == 3  # quantized, not gated


def test_run_checkpoint_calibrates_as_its_pipeline_did(tmp_path, capsys):
    """Without --calib, hwsim run uses the checkpoint pipeline's calibration, so it prints the
    results row's densities; the pipeline prints the gating block of every row."""
    cfg = load_yaml(Path(__file__).resolve().parents[1] / "experiments" / "configs"
                    / "pg_resnet20_digits.yaml")
    cfg.update({"model": {"name": "pg_resnet20", "width": 0.25}})
    cfg["data"].update({"train_subset": 64, "test_subset": 32})
    cfg["train"].update({"epochs": 1, "batch_size": 32})
    cfg["hardware"].update({"accelerators": ["bitserial_32"], "calib_batches": 3,
                            "calib_batch_size": 8, "results": str(tmp_path / "results.csv")})
    (tmp_path / "pg.yaml").write_text(json.dumps(cfg))
    assert main(["pipeline", str(tmp_path / "pg.yaml"), "--runs-dir", str(tmp_path),
                 "--name", "pg", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "pg_resnet20 on bitserial_32:\ngating: 9 gated layers, mode skip" in printed
    row = pd.read_csv(tmp_path / "results.csv").iloc[0]
    assert main(["run", "--checkpoint", str(tmp_path / "pg" / "last.pt"), "--accel",
                 "bitserial_32", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert "measured on 24 calibration images (3 batches)" in " ".join(report["notes"])
    assert report["gating"]["lsb_density"] == pytest.approx(row["lsb_density"], abs=1e-12)
    assert report["gating"]["realized_speedup"] == pytest.approx(row["realized_speedup"])
    assert f"{row['realized_speedup']:.3f}x compute" in printed


@pytest.mark.parametrize("name", ["pg_resnet20_digits", "cg_resnet20_digits",
                                  "pg_resnet20_cifar10", "cg_resnet20_cifar10",
                                  "cg_resnet20_postact_cifar10"])
def test_gating_configs_are_valid(name):
    cfg = load_yaml(Path(__file__).resolve().parents[1] / "experiments" / "configs"
                    / f"{name}.yaml")
    resolved = resolve_config(cfg, PIPELINE_SECTIONS)
    hardware_section(cfg)
    shape = (1, 16, 16) if cfg["data"]["name"] == "digits" else (3, 32, 32)
    model_name, kwargs = model_spec(resolved, shape, 10)
    model = models.create_model(model_name, **{**kwargs, "width": 0.5})
    for loss in resolved["losses"]:
        assert lookup("loss", loss)(model)(None, None, None).item() >= 0


def test_gated_pipeline_rows_carry_densities_and_speedups(tmp_path):
    cfg = load_yaml(Path(__file__).resolve().parents[1] / "experiments" / "configs"
                    / "cg_resnet20_digits.yaml")
    cfg.update({"model": {"name": "cg_resnet20", "width": 0.25}})
    cfg["data"].update({"train_subset": 64, "test_subset": 32})
    cfg["train"].update({"epochs": 1, "batch_size": 32, "out_dir": str(tmp_path / "run")})
    cfg["hardware"].update({"calib_batches": 1, "results": str(tmp_path / "results.csv")})
    rows = run_pipeline(cfg, progress=False)
    assert list(rows["accelerator"]) == ["bitserial_32", "systolic_32"]
    for _, row in rows.iterrows():
        assert row["gating_mode"] == "channel" and 0 < row["mac_density"] < 1
        assert 1 <= row["realized_speedup"] <= row["ideal_speedup"]
        assert row["energy_saving"] > 1 and 0 < row["gate_sparsity"] < 1
