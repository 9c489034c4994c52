"""Tanh-normalized DoReFa-symmetric weight quantizer (MLG's ``dorefa_sym``) and ``QuantLinear``.

Formulas from METHODS.md A.3, i.e. ``pyutils/quantize.py::weight_quantize_fn`` (alg
``"dorefa_sym"``) and ``uniform_quantize`` at pyutility commit cb2c2e9, restated:

- ``2 <= bits <= 31``: ``t = tanh(x)``, ``r = max|t|`` (no gradient), ``n = 2^bits - 1``,
  ``q = round((t / 2r + 0.5) * n) / n * 2r - r`` — a symmetric grid of ``2^bits`` levels on
  ``[-r, r]``;
- ``bits == 1``: ``E = mean|x|`` (no gradient), ``q = sign(x / E) * E``;
- backward of the rounding (or sign) is straight-through with the incoming gradient clamped
  to ``[-1, 1]`` (the seed's ``gradient_clip=True``); the rest (tanh, scaling) is autograd.

Like the seed's layers, a width of 16 bits or more means *no quantizer at all* (raw fp32
weights), not the formula's 32-bit ``tanh(x) / max|tanh(x)|`` branch.
"""

import torch
import torch.nn.functional as F
from torch import nn

FP_BITS = 16  # widths from here up leave the tensor unquantized (seed: ``w_bit >= 16``)
MAX_BITS = 32


class _RoundClippedSTE(torch.autograd.Function):
    """``round(x * n) / n`` (``n = 0``: ``sign(x)``) with a clipped straight-through gradient."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, levels: int) -> torch.Tensor:
        return torch.sign(x) if levels == 0 else torch.round(x * levels) / levels

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad.clamp(-1.0, 1.0), None


def check_bits(key: str, bits: int) -> int:
    """``bits`` if it is an int in [1, 32]; otherwise a one-line ``ValueError`` naming ``key``."""
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= MAX_BITS:
        raise ValueError(f"{key} must be an int in [1, {MAX_BITS}] "
                         f"(>= {FP_BITS}: unquantized fp32), got {bits!r}")
    return bits


def dorefa_sym(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Quantize ``x`` per tensor to ``bits`` (1..31) with the tanh-normalized symmetric grid."""
    check_bits("bits", bits)
    if bits == MAX_BITS:
        raise ValueError(f"bits must be < {MAX_BITS} for dorefa_sym, got {bits}")
    tiny = torch.finfo(x.dtype).tiny  # an all-zero tensor quantizes to zeros, not NaN
    if bits == 1:
        scale = x.detach().abs().mean().clamp_min(tiny)
        return _RoundClippedSTE.apply(x / scale, 0) * scale
    t = torch.tanh(x)
    r = t.detach().abs().max().clamp_min(tiny)
    levels = 2 ** bits - 1
    return _RoundClippedSTE.apply(t / (2 * r) + 0.5, levels) * (2 * r) - r


class WeightQuantizer(nn.Module):
    """Per-tensor ``dorefa_sym`` at ``bits``; identity from ``FP_BITS`` bits up."""

    def __init__(self, bits: int):
        super().__init__()
        self.bits = check_bits("bits", bits)

    @property
    def active(self) -> bool:
        return self.bits < FP_BITS

    @property
    def storage_bits(self) -> int:
        """Bits one stored value occupies: ``bits`` when quantized, else fp32."""
        return self.bits if self.active else MAX_BITS

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dorefa_sym(x, self.bits) if self.active else x

    def extra_repr(self) -> str:
        return f"bits={self.bits}"


class QuantLinear(nn.Linear):
    """Linear layer whose weight is quantized to ``weight_bits`` (MLG keeps its FC at 8 bits).

    The bias stays fp32 in the forward pass; for storage the seed counts every FC parameter at
    ``w_bit`` (``MLGBaseModel.get_param_size``, METHODS.md A.4), and so do we.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 weight_bits: int = 8):
        super().__init__(in_features, out_features, bias=bias)
        self.weight_quantizer = WeightQuantizer(check_bits("weight_bits", weight_bits))

    def quantized_weight(self) -> torch.Tensor:
        return self.weight_quantizer(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.quantized_weight(), self.bias)

    def hw_stats(self) -> dict:
        numel = sum(p.numel() for p in self.parameters(recurse=False))
        bits = self.weight_quantizer.storage_bits
        return {"weight_bits": bits, "weight_storage_bits": numel * bits, "stored_params": numel}
