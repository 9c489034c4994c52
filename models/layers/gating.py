"""Dynamic gating layers: precision gating (``PGConv2d``) and channel gating (``CGConv2d``).

Both follow the dnn-gating reference code (Zhang et al., ICLR 2020; Hua et al., NeurIPS 2019)
restated in our words:

- **Precision gating**: every output is first predicted from the ``pred_bits`` most-significant
  bits of the ``act_bits``-bit input; only outputs whose prediction exceeds a learnable
  per-channel threshold get the update from the remaining LSBs.
- **Channel gating**: every output first gets a partial sum over a fixed base share (1/``pt``)
  of the input channels; only outputs whose normalized partial sum exceeds a learnable
  per-channel threshold get the rest of the channels.

The simulation computes both paths densely and selects; what the hardware would skip is
counted. In eval mode each layer counts, per output channel, how many outputs took the expensive
path (``reset_hw_stats()`` clears the counts); ``hw_stats()`` turns the counts into the
measured ``lsb_density`` / ``mac_density`` the tracer merges into the Layer. Training-mode
passes are not counted, so the counts describe exactly the evaluation or calibration batches.
"""

import torch
from torch import nn

from .quant import (
    check_act_bits,
    quantize_max,
    quantize_weight_max,
    quantized_storage,
    truncate_msb,
)


class _GateStep(torch.autograd.Function):
    """``1[x > 0]`` with a straight-through gradient, zeroed where the gate is off if sparse."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, sparse: bool) -> torch.Tensor:
        on = (x > 0).to(x.dtype)
        ctx.sparse = sparse
        if sparse:
            ctx.save_for_backward(on)
        return on

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        if ctx.sparse:
            (on,) = ctx.saved_tensors
            return grad * on, None
        return grad, None


def gate_step(x: torch.Tensor, sparse: bool = False) -> torch.Tensor:
    """The gates' hard decision ``1[x > 0]``; ``sparse`` back-propagates only through gates on."""
    return _GateStep.apply(x, sparse)


class _GateCounter(nn.Module):
    """Per-output-channel counts of outputs that took the expensive path (eval mode only).

    The counts are non-persistent buffers: they follow ``.to()`` but stay out of checkpoints.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.register_buffer("on", torch.zeros(channels, dtype=torch.float64), persistent=False)
        self.register_buffer("per_channel", torch.zeros((), dtype=torch.float64),
                             persistent=False)

    def reset(self) -> None:
        self.on.zero_()
        self.per_channel.zero_()

    def add(self, gate: torch.Tensor) -> None:
        self.on += gate.detach().sum(dim=(0, 2, 3), dtype=torch.float64)
        self.per_channel += gate.shape[0] * gate.shape[2] * gate.shape[3]

    @property
    def measured(self) -> bool:
        return bool(self.per_channel > 0)

    def counts(self) -> tuple[float, float]:
        """(outputs with the gate on, outputs) since the last reset."""
        return float(self.on.sum()), float(self.per_channel) * self.on.numel()

    def channel_density(self) -> tuple[float, ...]:
        """Fraction of outputs with the gate on, per output channel (1.0 before any count)."""
        if not self.measured:
            return (1.0,) * self.on.numel()
        return tuple(float(v) for v in self.on / self.per_channel)


class _GateCounting:
    """What the gated convs share: ``gates`` (a ``_GateCounter``) counts the gates of
    eval-mode passes only."""

    gates: _GateCounter

    def _count(self, gate: torch.Tensor) -> None:
        if not self.training:
            self.gates.add(gate)

    def reset_hw_stats(self) -> None:
        self.gates.reset()

    def gate_counts(self) -> tuple[float, float]:
        """(outputs gated on, outputs) counted since the last reset; gated on: took the LSB
        update (PG) or the full path (CG)."""
        return self.gates.counts()


class PGConv2d(_GateCounting, nn.Conv2d):
    """Precision-gated conv (dnn-gating ``PGConv2d``), no bias.

    ``out = conv(x_msb, Wq) + d ⊙ conv(x_lsb, Wq)`` where ``x_msb`` keeps the ``pred_bits``
    top bits of ``Q_act_bits(x)``, ``x_lsb`` is the rest, ``Wq = Q_weight_bits(W)`` and
    ``d = 1[sigmoid(alpha · (O_msb − threshold)) > 0.5]`` per output element with a learnable
    per-channel threshold (init ``threshold_init``). The step back-propagates straight through
    (through the sigmoid to the threshold and the prediction); ``sparse_bp`` zeroes it where the
    gate is off, the seed's ``-spbp``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, groups: int = 1, bias: bool = False, weight_bits: int = 8,
                 act_bits: int = 3, pred_bits: int = 2, alpha: float = 5.0,
                 threshold_init: float = 0.0, sparse_bp: bool = False):
        if bias:
            raise ValueError("PGConv2d: bias must be False (the gate compares the raw "
                             "prediction with the threshold)")
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         groups=groups, bias=False)
        self.weight_bits = check_act_bits("pg.wbits", weight_bits)
        if isinstance(act_bits, bool) or not isinstance(act_bits, int) or not 2 <= act_bits <= 15:
            raise ValueError(f"pg.abits must be an int in [2, 15] (precision gating needs "
                             f"quantized activations), got {act_bits!r}")
        if isinstance(pred_bits, bool) or not isinstance(pred_bits, int) \
                or not 1 <= pred_bits < act_bits:
            raise ValueError(f"pg.pbits must be an int in [1, abits - 1 = {act_bits - 1}], "
                             f"got {pred_bits!r}")
        self.act_bits, self.pred_bits = act_bits, pred_bits
        self.alpha, self.sparse_bp = float(alpha), bool(sparse_bp)
        self.threshold = nn.Parameter(torch.full((1, out_channels, 1, 1), float(threshold_init)))
        self.gates = _GateCounter(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_full = quantize_max(x, self.act_bits)
        x_msb = truncate_msb(x, self.act_bits, self.pred_bits)
        w = quantize_weight_max(self.weight, self.weight_bits)
        out_msb = self._conv_forward(x_msb, w, None)
        out_lsb = self._conv_forward(x_full - x_msb, w, None)
        gate = gate_step(torch.sigmoid(self.alpha * (out_msb - self.threshold)) - 0.5,
                         self.sparse_bp)
        self._count(gate)
        return out_msb + gate * out_lsb

    def hw_stats(self) -> dict:
        """Precisions, storage and the measured LSB density (1.0, no skipping, uncalibrated)."""
        on, total = self.gate_counts()
        return {**quantized_storage(self.weight, self.weight_bits, self.threshold.numel()),
                "act_bits": self.act_bits,
                "pred_bits": self.pred_bits, "lsb_density": on / total if total else 1.0}

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, weight_bits={self.weight_bits}, "
                f"act_bits={self.act_bits}, pred_bits={self.pred_bits}, alpha={self.alpha}, "
                f"sparse_bp={self.sparse_bp}")


def base_mask(out_channels: int, in_channels: int, partitions: int, grouped: bool
              ) -> torch.Tensor:
    """The fixed base-path mask [C_o, C_i, 1, 1]: the first C_i/p inputs for every output, or
    block-diagonal chunks (output chunk t reads input chunk t) when ``grouped``."""
    mask = torch.zeros(out_channels, in_channels, 1, 1)
    in_chunk = in_channels // partitions
    if not grouped:
        mask[:, :in_chunk] = 1
        return mask
    out_chunk = out_channels // partitions
    for t in range(partitions):
        mask[t * out_chunk:(t + 1) * out_chunk, t * in_chunk:(t + 1) * in_chunk] = 1
    return mask


def channel_shuffle(x: torch.Tensor, partitions: int) -> torch.Tensor:
    n, c, h, w = x.shape
    return x.view(n, partitions, c // partitions, h, w).transpose(1, 2).reshape(n, c, h, w)


class CGConv2d(_GateCounting, nn.Conv2d):
    """Channel-gated conv (dnn-gating ``CGConv2d``).

    ``Yp = conv(x, W ⊙ M)`` over the base share (mask ``M``: 1/``partitions`` of the input
    channels per output), ``d = 1[sigmoid(alpha · (BN(Yp) − threshold)) > 0.5]`` with a
    non-affine BatchNorm and a learnable per-channel threshold (init ``threshold_init``),
    ``out = d ⊙ conv(x, W) + (1 − d) ⊙ Yp``. ``grouped`` uses the block-diagonal base pattern,
    ``shuffle`` shuffles the input channels first, ``sparse_bp`` zeroes the step's gradient
    where the gate is off.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, groups: int = 1, bias: bool = False, partitions: int = 4,
                 alpha: float = 2.0, threshold_init: float = 0.0, grouped: bool = False,
                 shuffle: bool = False, sparse_bp: bool = False):
        if groups != 1:
            raise ValueError(f"CGConv2d: groups must be 1, got {groups}")
        if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1 \
                or in_channels % partitions or (grouped and out_channels % partitions):
            raise ValueError(f"cg.pt must be an int >= 1 dividing in_channels={in_channels}"
                             f"{f' and out_channels={out_channels}' if grouped else ''}, "
                             f"got {partitions!r}")
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         bias=bias)
        self.partitions, self.alpha = partitions, float(alpha)
        self.grouped, self.shuffle, self.sparse_bp = bool(grouped), bool(shuffle), bool(sparse_bp)
        self.register_buffer("mask", base_mask(out_channels, in_channels, partitions, grouped))
        self.norm = nn.BatchNorm2d(out_channels, affine=False)
        self.threshold = nn.Parameter(torch.full((1, out_channels, 1, 1), float(threshold_init)))
        self.gates = _GateCounter(out_channels)

    @property
    def base_fraction(self) -> float:
        """Share of each output's reduction the base path always computes (1/partitions)."""
        return 1.0 / self.partitions

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.shuffle:
            x = channel_shuffle(x, self.partitions)
        partial = self._conv_forward(x, self.weight * self.mask, self.bias)
        gate = gate_step(torch.sigmoid(self.alpha * (self.norm(partial) - self.threshold)) - 0.5,
                         self.sparse_bp)
        self._count(gate)
        full = self._conv_forward(x, self.weight, self.bias)
        return gate * full + (1 - gate) * partial

    def hw_stats(self) -> dict:
        """Measured executed-MAC fraction ``1/p + (1 − 1/p) · on`` and its per-channel parts."""
        on, total = self.gate_counts()
        base = self.base_fraction
        return {"mac_density": base + (1 - base) * (on / total if total else 1.0),
                "gate_base_fraction": base,
                "gate_channel_density": self.gates.channel_density()}

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, partitions={self.partitions}, alpha={self.alpha}, "
                f"grouped={self.grouped}, shuffle={self.shuffle}, sparse_bp={self.sparse_bp}")


GATED_LAYERS = (PGConv2d, CGConv2d)


def gated_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, GATED_LAYERS)]


def gate_sparsity(model: nn.Module) -> float | None:
    """dnn-gating's reported sparsity ``1 − Σ on / Σ outputs`` over the gated layers, from the
    counts since the last reset (None when nothing was counted)."""
    counts = [layer.gate_counts() for layer in gated_layers(model)]
    total = sum(t for _, t in counts)
    return 1 - sum(on for on, _ in counts) / total if total else None


__all__ = ["CGConv2d", "GATED_LAYERS", "PGConv2d", "base_mask", "channel_shuffle",
           "gate_sparsity", "gate_step", "gated_layers"]
