"""Post-training quantization (models/ptq.py) against PyTorch's own fake-quantize at the same
scale rule, and the sweep's ``quantize: ptq`` points."""

import math

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from hwsim.results import read_table
from hwsim.sweep import load_sweep, run_sweep
from models.layers.quant import QuantLinear, grid_scale, quantize_grid
from models.ptq import post_training_quantize


def fake(x: torch.Tensor, max_abs: float, bits: int, signed: bool) -> torch.Tensor:
    """The oracle: torch's fake-quantize, zero point 0, scale max / grid top written out."""
    top = 2 ** (bits - 1) - 1 if signed else 2 ** bits - 1
    return torch.fake_quantize_per_tensor_affine(x, max_abs / top, 0, -top if signed else 0, top)


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("signed", [True, False])
def test_grid_matches_torch_fake_quantize(bits, signed):
    x = torch.randn(500, generator=torch.Generator().manual_seed(bits)) * 3
    max_abs = 2.0  # beyond it: clamped
    q = quantize_grid(x, grid_scale(max_abs, bits, signed), bits, signed)
    assert torch.allclose(q, fake(x, max_abs, bits, signed), atol=1e-6)
    assert len(torch.unique(q)) <= (2 ** bits - 1 if signed else 2 ** bits)


def test_eight_bit_hand_values():
    # scale 1/127: 0.5 -> 63.5 -> 64 (half to even), -2 clamps to -127
    x = torch.tensor([0.5, -2.0, 0.0])
    assert quantize_grid(x, grid_scale(1.0, 8, True), 8, True).tolist() == \
        pytest.approx([64 / 127, -1.0, 0.0])


class Tiny(nn.Module):
    def __init__(self, fc: nn.Module):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, bias=False)
        self.fc = fc

    def forward(self, x):
        return self.fc(torch.flatten(F.relu(self.conv2(F.relu(self.conv1(x)))), 1))


def reference(model: Tiny, x, calib, wb: int, ab: int):
    """The quantized forward written out by hand with the oracle at hand-picked scales."""
    def weight(w):
        return fake(w, w.abs().max().item(), wb, True)

    with torch.no_grad():
        a1 = torch.cat(calib)  # conv1 input: signed; conv2 / fc inputs: after a ReLU
        h1 = F.relu(F.conv2d(a1, weight(model.conv1.weight), model.conv1.bias, padding=1))
        h2 = F.relu(F.conv2d(h1, weight(model.conv2.weight)))  # calibrated at fp32 inputs
        s1, s2, s3 = a1.abs().max().item(), h1.max().item(), h2.max().item()
        y = F.relu(F.conv2d(fake(x, s1, ab, True), weight(model.conv1.weight),
                            model.conv1.bias, padding=1))
        y = F.relu(F.conv2d(fake(y, s2, ab, False), weight(model.conv2.weight)))
        y = fake(torch.flatten(y, 1), s3, ab, False)
        fc_weight = model.fc.quantized_weight() if isinstance(model.fc, QuantLinear) \
            else weight(model.fc.weight)
        return F.linear(y, fc_weight, model.fc.bias)


@pytest.mark.parametrize("wb, ab", [(8, 8), (4, 8), (4, 4)])
def test_quantized_model_matches_hand_quantized_forward(wb, ab):
    torch.manual_seed(0)
    model = Tiny(nn.Linear(64, 3))
    calib = [torch.randn(5, 1, 6, 6), torch.randn(5, 1, 6, 6)]
    x = torch.randn(7, 1, 6, 6) * 1.5  # partly beyond the calibrated range
    quantized = post_training_quantize(model, wb, ab, calib)
    with torch.no_grad():
        out = quantized(x)
        assert torch.allclose(out, reference(model, x, calib, wb, ab), atol=1e-5)
        assert not torch.allclose(out, model(x), atol=1e-3)  # it did quantize
    assert quantized.conv1.weight.data_ptr() != model.conv1.weight.data_ptr()  # a copy


def test_layers_with_their_own_width_keep_their_weights():
    # QuantLinear sets weight_bits in hw_stats (the tracer costs it there): its weight stays,
    # its input (act_bits not set) is quantized.
    torch.manual_seed(1)
    model = Tiny(QuantLinear(64, 3, weight_bits=8))
    calib = [torch.randn(4, 1, 6, 6)]
    x = torch.randn(3, 1, 6, 6)
    quantized = post_training_quantize(model, 4, 8, calib)
    assert torch.equal(quantized.fc.weight, model.fc.weight)
    with torch.no_grad():
        assert torch.allclose(quantized(x), reference(model, x, calib, 4, 8), atol=1e-5)


def test_sixteen_bits_is_fp32_and_bad_widths_are_one_line():
    model, x = Tiny(nn.Linear(64, 3)), torch.randn(2, 1, 6, 6)
    with torch.no_grad():
        assert torch.equal(post_training_quantize(model, 16, 32, [])(x), model(x))
    for bits in (1, 2.5, True):
        with pytest.raises(ValueError, match="weight_bits must be an int >= 2"):
            post_training_quantize(model, bits, 8, [x])
    with pytest.raises(ValueError, match="needs calibration batches"):
        post_training_quantize(model, 8, 8, [])


def sweep_config(tmp_path, **point) -> dict:
    return {"results": str(tmp_path / "q.csv"), "checkpoints": str(tmp_path / "ckpt"),
            "base": {"model": {"name": "resnet20", "width": 0.25},
                     "data": {"name": "digits", "train_subset": 128, "test_subset": 64},
                     "train": {"epochs": 1, "batch_size": 32, "threads": 1},
                     "calib_batches": 1, "calib_batch_size": 16},
            "points": [{"method": "fp32"}, {"method": "q", **point}]}


def test_sweep_ptq_point_scores_the_quantized_model(tmp_path):
    from hwsim.pipeline import load_checkpoint_model
    from models.data import load_dataset, sample
    from models.train import evaluate

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(sweep_config(tmp_path, quantize="ptq",
                                                **{"trace.weight_bits": 4})))
    sweep = load_sweep(path)
    assert len({p.train_hash for p in sweep.points}) == 1  # one training run for both
    run_sweep(sweep, workers=1, progress=False)
    table = read_table(sweep.results).set_index("method")
    assert (table["status"] == "ok").all(), table["error"].tolist()
    row = table.loc["q"]
    assert (row["ptq_weight_bits"], row["ptq_act_bits"]) == (4, 8)  # act: the trace default
    assert row["test_acc_fp32"] == table.loc["fp32", "test_acc"]
    # Independently: the checkpoint quantized here with the sweep's calibration batches.
    model, _ = load_checkpoint_model(row["checkpoint"])
    train_set, test_set = load_dataset("digits")
    calib = [images for images, _ in train_set.batches(16)][:1]
    quantized = post_training_quantize(model, 4, 8, calib)
    expected = evaluate(quantized, sample(test_set, 64), 256, torch.device("cpu"))[1]
    assert math.isclose(row["test_acc"], expected)


@pytest.mark.parametrize("point, message", [
    ({"quantize": "qat"}, "quantize must be one of none, ptq"),
    ({"quantize": "ptq", "trace.act_bits": 1}, "act_bits must be an int >= 2"),
])
def test_sweep_quantize_errors(tmp_path, point, message):
    path = tmp_path / "s.yaml"
    config = sweep_config(tmp_path, **point)
    path.write_text(yaml.safe_dump(config))
    if "trace.act_bits" not in point:
        with pytest.raises(ValueError, match=message):
            load_sweep(path)
        return
    run_sweep(load_sweep(path), workers=1, progress=False)
    errors = read_table(tmp_path / "q.csv").query("status == 'error'")["error"].tolist()
    assert len(errors) == 1 and message.split(" must")[0] in errors[0]


def test_quantize_needs_a_trained_point(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"results": str(tmp_path / "r.csv"),
                                    "base": {"model": {"name": "resnet20"}, "quantize": "ptq"}}))
    with pytest.raises(ValueError, match="quantize: ptq needs a trained point"):
        load_sweep(path)


def test_batch_norm_stays_fp32_after_the_quantized_conv():
    """The BN is the accumulator's per-channel requantization: not folded into the weights."""
    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, bias=False), nn.BatchNorm2d(4)).eval()
    with torch.no_grad():  # per-channel scales far apart, so folding first would differ
        model[1].weight.copy_(torch.tensor([0.05, 1.0, 4.0, 20.0]))
        model[1].running_var.copy_(torch.tensor([0.5, 1.0, 2.0, 3.0]))
    calib, x = [torch.randn(4, 1, 6, 6)], torch.randn(3, 1, 6, 6)
    quantized = post_training_quantize(model, 4, 8, calib)
    w = model[0].weight
    with torch.no_grad():
        conv = F.conv2d(fake(x, calib[0].abs().max().item(), 8, True),
                        fake(w, w.abs().max().item(), 4, True))
        assert torch.allclose(quantized(x), model[1](conv), atol=1e-5)
        assert torch.equal(quantized[1].weight, model[1].weight)
