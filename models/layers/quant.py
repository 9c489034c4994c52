"""Tanh-normalized DoReFa-symmetric weight quantizer (MLG's ``dorefa_sym``) and ``QuantLinear``.

Formulas from docs/methods.md, MLG: quantizer, i.e. ``pyutils/quantize.py::weight_quantize_fn`` (alg
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

import math

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
    ``w_bit`` (``MLGBaseModel.get_param_size``, docs/methods.md, MLG: storage), and so do we.
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


# --- activation quantization (precision gating's quantizers, reusable) -------------------------
# Sign-magnitude, per-tensor dynamic-max quantizers of the dnn-gating code (``utils/pg_utils.py``):
# ``s = max|x| + 1e-7`` (no gradient), ``n = round(clamp(|x|/s, 0, 1) · (2^b - 1))``,
# ``q = n / (2^b - 1) · s · sign(x)``. Every rounding, flooring and clamping step passes the
# gradient unchanged (straight-through), so ``dq/dx = 1``.
_MAX_EPS = 1e-7


def _ste(x: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """``value`` in the forward pass, the gradient of ``x`` in the backward pass."""
    return x + (value - x).detach()


def _levels(x: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(integer magnitudes n, scale s, 2^bits - 1) of the sign-magnitude grid, no gradient."""
    x = x.detach()
    scale = x.abs().max() + _MAX_EPS
    top = 2 ** bits - 1
    return torch.round(torch.clamp(x.abs() / scale, 0, 1) * top), scale, top


def quantize_max(x: torch.Tensor, bits: int) -> torch.Tensor:
    """``Q_bits(x)``: sign-magnitude quantization on the per-tensor max, straight-through."""
    check_bits("bits", bits)
    n, scale, top = _levels(x, bits)
    return _ste(x, n / top * scale * torch.sign(x.detach()))


def truncate_msb(x: torch.Tensor, bits: int, msb_bits: int) -> torch.Tensor:
    """``Trunc_{bits,msb_bits}(x)``: ``Q_bits(x)`` keeping only its ``msb_bits`` top bits.

    ``Q_bits(x) - truncate_msb(x)`` is the exact LSB remainder; straight-through gradient.
    """
    check_bits("bits", bits)
    if isinstance(msb_bits, bool) or not isinstance(msb_bits, int) or not 0 <= msb_bits <= bits:
        raise ValueError(f"msb_bits must be an int in [0, bits={bits}], got {msb_bits!r}")
    n, scale, top = _levels(x, bits)
    step = 2 ** (bits - msb_bits)
    return _ste(x, torch.floor(n / step) * step / top * scale * torch.sign(x.detach()))


def quantize_weight_max(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Weights for the activation-quantized convs: ``Q_bits`` (2+ bits), binary (1), fp (0).

    One bit is ``sign(w)`` times McDonnell's fixed scale ``sqrt(1 / (k² · C_in))``, as the
    dnn-gating code; 0 bits (or >= ``FP_BITS``) leaves the weight in fp32.
    """
    if bits == 0 or bits >= FP_BITS:
        return w
    if bits == 1:
        fan_in = w[0].numel()
        return _ste(w, torch.sign(w.detach()) * math.sqrt(1.0 / fan_in))
    return quantize_max(w, bits)


def check_act_bits(key: str, bits: int) -> int:
    """``bits`` if it is 0 (fp32) or in [1, 32]; otherwise a one-line ``ValueError``."""
    if isinstance(bits, bool) or not isinstance(bits, int) or not 0 <= bits <= MAX_BITS:
        raise ValueError(f"{key} must be an int in [0, {MAX_BITS}] (0 or >= {FP_BITS}: "
                         f"unquantized fp32), got {bits!r}")
    return bits


def hardware_bits(bits: int) -> int:
    """Width the hardware sees: the quantized width, or 32 for fp (0 or >= ``FP_BITS``)."""
    return MAX_BITS if bits == 0 or bits >= FP_BITS else bits


def quantized_storage(weight: torch.Tensor, bits: int, fp32_params: int = 0) -> dict:
    """hw_stats() storage keys of a weight held at ``bits`` (0: fp32) plus ``fp32_params``
    per-channel constants kept at 32 bits (e.g. gate thresholds)."""
    width = hardware_bits(bits)
    return {"weight_bits": width,
            "weight_storage_bits": weight.numel() * width + fp32_params * MAX_BITS,
            "stored_params": weight.numel() + fp32_params}


class ActQuantizer(nn.Module):
    """Activation quantizer ``Q_bits`` (dynamic per-tensor max); identity for 0 or fp widths."""

    def __init__(self, bits: int):
        super().__init__()
        self.bits = check_act_bits("act_bits", bits)

    @property
    def active(self) -> bool:
        return 0 < self.bits < FP_BITS

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return quantize_max(x, self.bits) if self.active else x

    def extra_repr(self) -> str:
        return f"bits={self.bits}"


class PACT(nn.Module):
    """PACT clipping (Choi et al. 2018): ``y = clamp(x, 0, alpha)`` with a learnable ``alpha``.

    ``dy/dx = 1`` on ``[0, alpha]`` and 0 elsewhere; ``dy/dalpha`` sums the gradient where
    ``x > alpha`` (autograd of ``min(relu(x), alpha)`` gives exactly that). Clipping only: the
    quantization scale of the next conv is its input's dynamic max, as in dnn-gating.
    """

    def __init__(self, alpha: float = 6.0):
        super().__init__()
        self.alpha = nn.Parameter(torch.tensor(float(alpha)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.minimum(F.relu(x), self.alpha)


class QuantConv2d(nn.Conv2d):
    """Conv whose input is quantized to ``act_bits`` and weight to ``weight_bits`` (``Q_b``).

    dnn-gating's ``QuantizedConv2d``: 0 bits means fp32 for either operand.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, groups: int = 1, bias: bool = False, weight_bits: int = 8,
                 act_bits: int = 8):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         groups=groups, bias=bias)
        self.weight_bits = check_act_bits("weight_bits", weight_bits)
        self.act_quantizer = ActQuantizer(act_bits)

    def quantized_weight(self) -> torch.Tensor:
        return quantize_weight_max(self.weight, self.weight_bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(self.act_quantizer(x), self.quantized_weight(), self.bias)

    def hw_stats(self) -> dict:
        return {**quantized_storage(self.weight, self.weight_bits),
                "act_bits": hardware_bits(self.act_quantizer.bits)}


# --- integer-grid quantization (post-training quantization, models/ptq.py) ----------------------
def grid_max(bits: int, signed: bool) -> int:
    """Largest integer of the ``bits``-wide grid: ``2^(b-1) - 1`` signed (symmetric, so -128 of
    int8 is unused), ``2^b - 1`` unsigned."""
    if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits < FP_BITS:
        raise ValueError(f"bits must be an int in [2, {FP_BITS - 1}] for an integer grid "
                         f"(>= {FP_BITS}: unquantized fp32), got {bits!r}")
    return 2 ** (bits - 1) - 1 if signed else 2 ** bits - 1


def grid_scale(max_abs: float, bits: int, signed: bool) -> float:
    """Step of the grid that spans ``[-max_abs, max_abs]`` (signed) or ``[0, max_abs]``."""
    return max(float(max_abs), torch.finfo(torch.float32).tiny) / grid_max(bits, signed)


def quantize_grid(x: torch.Tensor, scale: float, bits: int, signed: bool) -> torch.Tensor:
    """``x`` rounded to the nearest multiple of ``scale`` on the ``bits``-wide integer grid
    (zero point 0), values beyond the grid clamped to its ends."""
    top = grid_max(bits, signed)
    return torch.clamp(torch.round(x / scale), -top if signed else 0, top) * scale
