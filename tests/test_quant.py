"""The tanh-normalized DoReFa-symmetric quantizer (methods.md, MLG: quantizer), QuantLinear."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from models.layers.quant import QuantLinear, WeightQuantizer, dorefa_sym


def test_two_bit_hand_values():
    # t = tanh(x), r = tanh(1); (t/2r + 0.5)·3 = 0, 0.590, 1.696, 1.982, 3 -> rounds 0, 1, 2, 2, 3
    x = torch.tensor([-1.0, -0.5, 0.1, 0.25, 1.0])
    r = math.tanh(1.0)
    expected = torch.tensor([-r, -r / 3, r / 3, r / 3, r])
    assert torch.allclose(dorefa_sym(x, 2), expected, atol=1e-6)


def test_three_bit_hand_value():
    # x = 0.3 with r = tanh(2): (tanh(.3)/(2 tanh 2) + .5)·7 = 4.9327 -> 5 -> 5/7·2r − r
    x = torch.tensor([0.3, -2.0, 2.0])
    r = math.tanh(2.0)
    assert dorefa_sym(x, 3)[0].item() == pytest.approx(5 / 7 * 2 * r - r, abs=1e-6)


def test_one_bit_is_sign_times_mean_magnitude():
    x = torch.tensor([-2.0, 1.0, 3.0])
    assert torch.equal(dorefa_sym(x, 1), torch.tensor([-2.0, 2.0, 2.0]))


def test_gradient_is_clipped_straight_through():
    x = torch.tensor([0.5, 1.0], requires_grad=True)
    upstream = torch.tensor([10.0, 0.1])
    (dorefa_sym(x, 4) * upstream).sum().backward()
    r = math.tanh(1.0)
    expected = [max(-1.0, min(1.0, g * 2 * r)) / (2 * r) * (1 - math.tanh(v) ** 2)
                for g, v in zip(upstream.tolist(), [0.5, 1.0])]
    assert x.grad.tolist() == pytest.approx(expected, rel=1e-5)
    # clipped: the straight-through value would have been 10·(1 − t²)
    assert x.grad[0].item() == pytest.approx((1 - math.tanh(0.5) ** 2) / (2 * r), rel=1e-5)


def test_zero_tensor_quantizes_to_zero():
    assert torch.allclose(dorefa_sym(torch.zeros(4), 3), torch.zeros(4), atol=1e-30)
    assert torch.equal(dorefa_sym(torch.zeros(4), 1), torch.zeros(4))


@settings(max_examples=30, deadline=None)
@given(bits=st.integers(2, 8), seed=st.integers(0, 10_000))
def test_grid_has_at_most_2_to_the_bits_symmetric_levels(bits, seed):
    x = torch.randn(200, generator=torch.Generator().manual_seed(seed)) * 2
    q = dorefa_sym(x, bits)
    r = torch.tanh(x).abs().max()
    levels = torch.unique(q)
    assert len(levels) <= 2 ** bits
    assert q.abs().max() <= r + 1e-6
    steps = torch.round((levels + r) / (2 * r) * (2 ** bits - 1))
    assert torch.allclose(steps / (2 ** bits - 1) * 2 * r - r, levels, atol=1e-5)


def test_sixteen_bits_and_up_is_no_quantizer():
    x = torch.randn(10)
    assert torch.equal(WeightQuantizer(16)(x), x)
    assert WeightQuantizer(32).storage_bits == 32 and WeightQuantizer(4).storage_bits == 4


@pytest.mark.parametrize("bits", [0, 33, 2.5, True, "8"])
def test_bad_bits_rejected(bits):
    with pytest.raises(ValueError, match=r"bits must be an int in \[1, 32\]"):
        WeightQuantizer(bits)


def test_dorefa_rejects_32_bits():
    with pytest.raises(ValueError, match="bits must be < 32"):
        dorefa_sym(torch.ones(2), 32)


def test_quant_linear_forward_and_hw_stats():
    fc = QuantLinear(6, 3, weight_bits=8)
    x = torch.randn(2, 6)
    assert torch.allclose(fc(x), F.linear(x, dorefa_sym(fc.weight, 8), fc.bias))
    assert fc.hw_stats() == {"weight_bits": 8, "weight_storage_bits": 21 * 8,
                             "stored_params": 21}
    fp_fc = QuantLinear(6, 3, bias=False, weight_bits=32)
    assert fp_fc.hw_stats()["weight_storage_bits"] == 18 * 32
