"""MLG: multi-level in situ weight generation (Gu et al., ICCV 2021), as a conv layer.

Formulas follow docs/methods.md, MLG, read from the official code
(``JeremieMelo/Memory-Efficient-Multi-Level-Generation``, ``core/models/layers/mlg_conv2d.py``,
class ``MLGConv2d``) and the paper (Eq. 1-4, 7). The weight of a conv is regenerated from low-bit
factors on every forward::

    W_i = U_i · W_i^b          (intra-kernel level, i < B_c;  U_i: C_i x B_i,  W_i^b: B_i x k²)
    W   = V · {W_i}            (cross-kernel level;  V: C_o x B_c)

each factor passing its own per-tensor quantizer first (``dorefa_sym``, docs/methods.md, MLG:
quantizer).

Storage of the factors: like the released code, the layer keeps one dense latent ``weight``
(this class *is* an ``nn.Conv2d``) and the basis is a slice of it, ``weight[:B_c, :B_i]``; the
rest of that tensor is unused while generation is on (it gets no gradient). Tools that read the
conv's shape from ``nn.Conv2d`` attributes therefore keep working, and ``hw_stats()`` says what
is actually stored.

Grouped convs (MobileNetV2's depthwise convs): the paper applies generation to every depthwise
conv but the released code has no grouped case. We view the layer's whole weight bank
``[C_o, C_i/g, k, k]`` as *one* kernel of ``C_o·C_i/g`` rows, so the intra-kernel level is a
rank-``B_i`` factorization ``W = U · W^b`` (U: ``C_o·C_i/g x B_i``, W^b: ``B_i x k²``) and the
cross-kernel level never applies (one kernel). This is the paper's own reading of depthwise
separable convs as "B_i = max, B_c = 1" (§4.4) and is the only level that can save storage on a
``[C, 1, k, k]`` bank.

Differences from the released code (documented, deliberate):

- U and V are trained together with the basis every step (paper Alg. 1). The released code
  builds its optimizer before U and V exist, so its main loop never updates them
  (docs/methods.md, MLG: training); they change only during the projection.
- A conv without generation is a plain fp32 conv in the forward pass as well as in storage; the
  released code quantizes it to ``w_bit`` in the forward pass but counts it at 32 bits.
- ``ortho_loss`` with U present and ``B_i == 1`` skips the basis/U terms (the code's own
  ``B_i > 1`` condition) instead of failing on an undefined Gram matrix (docs/methods.md, MLG:
  training).
- U and V start variance-preserving (N(0, 1/B_i), N(0, 1/B_c)) so an un-projected layer
  starts at the dense conv's weight scale.
- Optional on-chip requantization of the generated weight (``gen_weight_bits = b > 0``; the
  paper and the released code keep every generated weight exact, ``b = 0``, this layer's
  default; the ``mlg_*`` models default to 8 through ``MLGConfig.gen_weight_bit``).
  Exact generation grows the width to q_v + q_c + log2 B_c bits (19 for 2-44-3-6-3, paper
  §3.2), which an 8-bit digital array can only consume in several passes; a digital
  generator instead rounds its output to the array's weight precision. With ``b`` set, W is
  requantized per tensor, symmetric and uniform: ``round(W / s · n) · s / n`` with
  ``n = 2^(b-1) - 1`` and ``s = max|W|`` (no gradient), so W takes at most ``2^b - 1`` levels;
  the gradient is straight-through (identity). It happens in the forward pass, so training and
  accuracy see the weights the hardware computes with, and ``hw_stats()`` reports
  ``weight_bits = b``. When the exact width already fits in ``b`` bits nothing is rounded
  (the generator's integers pass unchanged) and ``weight_bits`` stays the exact width. Storage
  (the factors, Table 2) does not depend on ``b``.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .quant import MAX_BITS, WeightQuantizer, check_bits

ORTHO_EPS = 1e-8  # added to the column norms before normalizing (released code)
SMALL_CONV_FRACTION = 0.9  # 1x1 rule: B_c = int(0.9 · min(C_o, C_i)) (MLGBaseModel)
GEN_WEIGHT_BITS_RANGE = (2, 16)  # widths the generated weight may be requantized to (0: exact)


def check_gen_weight_bits(key: str, bits: int) -> int:
    """``bits`` if it is 0 (exact generation) or an int in ``GEN_WEIGHT_BITS_RANGE``."""
    low, high = GEN_WEIGHT_BITS_RANGE
    if isinstance(bits, bool) or not isinstance(bits, int) or not (
            bits == 0 or low <= bits <= high):
        raise ValueError(f"{key} must be 0 (exact generation) or an int in [{low}, {high}], "
                         f"got {bits!r}")
    return bits


class _RoundSTE(torch.autograd.Function):
    """``round(x)`` with a straight-through (identity) gradient."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return torch.round(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad


def requantize_symmetric(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """Per-tensor symmetric uniform requantization to ``bits`` (>= 2), straight-through.

    ``round(W / s · n) · s / n`` with ``n = 2^(bits-1) - 1`` and ``s = max|W|`` (no gradient):
    at most ``2^bits - 1`` levels, the integers ``-n..n`` times ``s / n``.
    """
    levels = 2 ** (bits - 1) - 1
    scale = weight.detach().abs().max().clamp_min(torch.finfo(weight.dtype).tiny)
    return _RoundSTE.apply(weight / scale * levels) * (scale / levels)


@dataclass(frozen=True)
class GenerationPlan:
    """Factor shapes of one generated conv, from the enable rules (methods.md, MLG: generation).

    The weight bank is viewed as ``kernels`` kernels of ``rows x area`` values (``C_o``, ``C_i``,
    ``k²`` for a plain conv; one kernel of ``C_o·C_i/g`` rows for a grouped conv).
    """

    kernels: int
    rows: int
    area: int
    bases: int  # bo: basis kernels (== kernels when the cross-kernel level is off)
    base_in: int  # B_i when the intra-kernel level is on, else 0
    cross: bool  # V exists

    @property
    def intra(self) -> bool:
        return self.base_in > 0

    @property
    def basis_shape(self) -> tuple[int, int, int]:
        return (self.bases, self.base_in if self.intra else self.rows, self.area)

    @property
    def coeff_in_shape(self) -> tuple[int, int, int]:
        return (self.bases, self.rows, self.base_in)

    @property
    def coeff_out_shape(self) -> tuple[int, int]:
        return (self.kernels, self.bases)


def plan_generation(in_channels: int, out_channels: int, kernel_size: tuple[int, int],
                    groups: int, base_in: int, base_out: int) -> GenerationPlan | None:
    """The factor shapes MLG uses for this conv, or ``None`` when generation would not save.

    Rules (``MLGConv2d.enable_dynamic_weight`` and ``MLGBaseModel.enable_dynamic_weight``):
    1x1 convs with ``B_c >= min(C_o, C_i)`` use ``B_c = int(0.9·min(C_o, C_i))``; V exists iff
    ``0 < B_c < min(C_o, C_i·k²)`` (else ``bo = C_o``); U exists iff ``0 < B_i < min(C_i, k²)``.
    """
    area = kernel_size[0] * kernel_size[1]
    if groups == 1:
        kernels, rows = out_channels, in_channels
        if area == 1 and base_out >= min(out_channels, in_channels):
            base_out = int(SMALL_CONV_FRACTION * min(out_channels, in_channels))
    else:
        kernels, rows = 1, out_channels * (in_channels // groups)
    cross = 0 < base_out < min(kernels, rows * area)
    intra = 0 < base_in < min(rows, area)
    if not (cross or intra):
        return None
    return GenerationPlan(kernels, rows, area, base_out if cross else kernels,
                          base_in if intra else 0, cross)


def _levels_minus_one(bits: int) -> int:
    """``n = 2^bits - 1``: a symmetric grid of ``2^bits`` levels holds the odd integers up to n."""
    return 2 ** bits - 1


def _width_bits(max_odd: int) -> int:
    """Bits of a fixed-point value taking ``max_odd + 1`` levels (odd integers in ±max_odd)."""
    return min(MAX_BITS, max(1, math.ceil(math.log2(max_odd + 1))))


class MLGConv2d(nn.Conv2d):
    """Conv whose weight is generated from basis, intra- and cross-kernel coefficients.

    ``base_in`` / ``base_out`` are the paper's B_i / B_c; ``*_bits`` the storage widths
    q_b, q_u, q_v (16 or more: unquantized fp32). ``gen_weight_bits``: width the generated
    weight is requantized to on chip (0: exact generation as the paper; see the module notes).
    ``plan`` is ``None`` when the enable rules switch generation off; the layer is then a plain
    fp32 conv.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, groups: int = 1, bias: bool = False, *, base_in: int = 2,
                 base_out: int = 44, basis_bits: int = 3, coeff_in_bits: int = 6,
                 coeff_out_bits: int = 3, gen_weight_bits: int = 0):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         groups=groups, bias=bias)
        for key, value in (("base_in", base_in), ("base_out", base_out)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{key} must be an int >= 0 (0: level off), got {value!r}")
        self.base_in, self.base_out = base_in, base_out
        self.gen_weight_bits = check_gen_weight_bits("gen_weight_bits", gen_weight_bits)
        self.plan = plan_generation(in_channels, out_channels, self.kernel_size, groups,
                                    base_in, base_out)
        self.coeff_in = self.coeff_out = None
        if self.plan is None:
            return
        plan = self.plan
        self.basis_quantizer = WeightQuantizer(check_bits("basis_bits", basis_bits))
        self.coeff_in_quantizer = WeightQuantizer(check_bits("coeff_in_bits", coeff_in_bits))
        self.coeff_out_quantizer = WeightQuantizer(check_bits("coeff_out_bits", coeff_out_bits))
        if plan.intra:
            self.coeff_in = nn.Parameter(
                torch.randn(plan.coeff_in_shape) / math.sqrt(plan.base_in))
        if plan.cross:
            self.coeff_out = nn.Parameter(
                torch.randn(plan.coeff_out_shape) / math.sqrt(plan.bases))

    # --- generation (docs/methods.md, MLG: generation) --------------------------------------------
    def basis(self) -> torch.Tensor:
        """The latent basis, ``[bo, B_i or rows, k²]``: a slice of ``weight`` (released code)."""
        plan = self.plan
        bank = self.weight.reshape(plan.kernels, plan.rows, plan.area)
        return bank[:plan.bases, :plan.basis_shape[1]]

    def generate(self, basis: torch.Tensor, coeff_in: torch.Tensor | None,
                 coeff_out: torch.Tensor | None) -> torch.Tensor:
        """``W = V · (U_i · W_i^b)``, each level skipped when its factor is ``None``."""
        plan = self.plan
        kernels = torch.bmm(coeff_in, basis) if coeff_in is not None else basis
        kernels = kernels.reshape(plan.bases, plan.rows * plan.area)
        if coeff_out is not None:
            kernels = coeff_out @ kernels
        return kernels.reshape(self.weight.shape)

    @property
    def requantizes(self) -> bool:
        """Whether the generated weight is rounded on chip (set, and narrower than exact)."""
        return (self.plan is not None and self.gen_weight_bits > 0
                and self.exact_widths()[0] > self.gen_weight_bits)

    def effective_weight(self) -> torch.Tensor:
        """The weight the conv computes with: generated (requantized when set), or dense.

        Generation runs on the quantized factors; see ``requantizes`` for the rounding.
        """
        if self.plan is None:
            return self.weight
        weight = self.generate(
            self.basis_quantizer(self.basis()),
            None if self.coeff_in is None else self.coeff_in_quantizer(self.coeff_in),
            None if self.coeff_out is None else self.coeff_out_quantizer(self.coeff_out))
        if self.requantizes:
            weight = requantize_symmetric(weight, self.gen_weight_bits)
        return weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.effective_weight(), self.bias)

    # --- regularizer (docs/methods.md, MLG: training, paper Eq. 7) --------------------------------
    def ortho_loss(self) -> torch.Tensor:
        """Multi-level orthonormality loss on the raw (unquantized) factors; 0 without generation.

        Sum of mean squared deviations from I of: the basis rows' Gram matrices (per basis
        kernel when U exists, else across kernels), the column-normalized U's and V's.
        """
        if self.plan is None:
            return self.weight.new_zeros(())
        basis, grams = self.basis(), []
        if self.coeff_in is not None and self.plan.base_in > 1:
            grams.append(basis @ basis.transpose(1, 2))
            norm = self.coeff_in.detach().norm(dim=1, keepdim=True) + ORTHO_EPS
            unit = self.coeff_in / norm
            grams.append(unit.transpose(1, 2) @ unit)
        if self.coeff_out is not None:
            if self.coeff_in is None:
                flat = basis.reshape(self.plan.bases, -1)
                grams.append(flat @ flat.t())
            unit = self.coeff_out / (self.coeff_out.detach().norm(dim=0, keepdim=True)
                                     + ORTHO_EPS)
            grams.append(unit.t() @ unit)
        loss = self.weight.new_zeros(())
        for gram in grams:
            eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
            loss = loss + F.mse_loss(gram, eye.expand_as(gram))
        return loss

    # --- SVD initialization (docs/methods.md, MLG: training, alg "svd") ---------------------------
    @torch.no_grad()
    def project_svd(self, target: torch.Tensor) -> None:
        """Set the factors from truncated SVDs of ``target`` (a weight of this conv's shape).

        V = top-B_c left singular vectors of the ``[C_o, C_i·k²]`` matrix; then each of the
        B_c kernels (singular value folded in) is split by a rank-B_i SVD into U (scaled by the
        singular values) and an orthonormal basis.
        """
        plan = self.plan
        if plan is None:
            self.weight.copy_(target)
            return
        kernels = target.reshape(plan.kernels, plan.rows * plan.area)
        if plan.cross:
            left, values, right = torch.linalg.svd(kernels, full_matrices=False)
            self.coeff_out.copy_(left[:, :plan.bases])
            kernels = values[:plan.bases, None] * right[:plan.bases]
        kernels = kernels.reshape(plan.bases, plan.rows, plan.area)
        if plan.intra:
            left, values, right = torch.linalg.svd(kernels, full_matrices=False)
            self.coeff_in.copy_(left[..., :plan.base_in] * values[:, None, :plan.base_in])
            kernels = right[:, :plan.base_in]
        self.basis().copy_(kernels)

    # --- hardware description -------------------------------------------------------------
    def _factors(self) -> list[tuple[int, WeightQuantizer]]:
        """(number of values, quantizer) of each stored factor."""
        plan = self.plan
        factors = [(math.prod(plan.basis_shape), self.basis_quantizer)]
        if plan.intra:
            factors.append((math.prod(plan.coeff_in_shape), self.coeff_in_quantizer))
        if plan.cross:
            factors.append((math.prod(plan.coeff_out_shape), self.coeff_out_quantizer))
        return factors

    def exact_widths(self) -> tuple[int, int]:
        """(bits of an exactly generated weight, widest generation multiplier operand).

        The products of odd-integer grids give ``B_c·n_v·B_i·n_u·n_b + 1`` levels (paper §3.2,
        n = 2^q - 1); fp32 (32, 32) when a factor is unquantized.
        """
        factors = self._factors()
        if not all(q.active for _, q in factors):
            return MAX_BITS, MAX_BITS
        plan = self.plan
        basis_bits = self.basis_quantizer.bits
        stage1 = _levels_minus_one(basis_bits)
        operand_bits = [basis_bits]
        if plan.intra:
            stage1 *= plan.base_in * _levels_minus_one(self.coeff_in_quantizer.bits)
            operand_bits.append(self.coeff_in_quantizer.bits)
        stage2 = stage1
        if plan.cross:
            stage2 *= plan.bases * _levels_minus_one(self.coeff_out_quantizer.bits)
            operand_bits += [_width_bits(stage1), self.coeff_out_quantizer.bits]
        return _width_bits(stage2), max(operand_bits)

    def hw_stats(self) -> dict:
        """Storage and generation cost (Layer fields); ``{}`` for a plain conv.

        ``weight_storage_bits`` = |basis|·q_b + |U|·q_u + |V|·q_v (+ fp32 bias) (paper Eq. 3-4,
        ``MLGConv2d.get_param_size``). ``gen_macs`` = bo·rows·B_i·k² (U·W^b) + C_o·bo·C_i·k²
        (V·W1): MACs to regenerate the weights once (paper §3.1 counts twice as many FLOPs).
        ``weight_bits`` is the width of the weights the array consumes: ``gen_weight_bits``
        when the generated weight is requantized, else the width that holds every generated
        weight exactly (``exact_widths``). ``gen_bits`` is the widest multiplier operand.

        What a tile of filters x input channels needs (``factor_*_bits``): V rows belong to
        output channels; U (and the basis of a cross-only 1x1) to input channels when V exists;
        the basis of a two-level layer is shared by every tile. Without V each basis kernel is
        one output channel and U is indexed by both; a grouped bank is split like dense
        weights except for its shared basis. ``gen_in_macs``: the U·W^b stage of a two-level
        layer, whose intermediates every filter tile needs.
        """
        if self.plan is None:
            return {}
        plan = self.plan
        factors = self._factors()
        bias = 0 if self.bias is None else self.bias.numel()
        stored_params = sum(count for count, _ in factors) + bias
        storage_bits = sum(count * q.storage_bits for count, q in factors) + bias * MAX_BITS
        gen_macs = (plan.bases * plan.rows * plan.base_in * plan.area if plan.intra else 0) + (
            plan.kernels * plan.bases * plan.rows * plan.area if plan.cross else 0)
        weight_bits, gen_bits = self.exact_widths()
        if self.requantizes:
            weight_bits = self.gen_weight_bits
        bits = [count * q.storage_bits for count, q in factors]  # basis, [U], [V]
        split = {"factor_out_bits": 0, "factor_in_bits": 0, "factor_shared_bits": 0}
        if self.groups > 1:
            split["factor_shared_bits"] = bits[0]
        elif plan.cross:
            split["factor_out_bits"] = bits[-1]
            split["factor_shared_bits" if plan.intra else "factor_in_bits"] = bits[0]
            if plan.intra:
                split["factor_in_bits"] = bits[1]
        else:
            split["factor_out_bits"] = bits[0]
        gen_in_macs = (plan.bases * plan.rows * plan.base_in * plan.area
                       if plan.intra and plan.cross and self.groups == 1 else 0)
        return {"weight_bits": weight_bits, "weight_storage_bits": storage_bits,
                "stored_params": stored_params, "gen_macs": gen_macs, "gen_bits": gen_bits,
                "gen_in_macs": gen_in_macs, **split}

    def extra_repr(self) -> str:
        if self.plan is None:
            return super().extra_repr() + ", generation=off"
        plan = self.plan
        return (super().extra_repr() + f", bases={plan.bases}, base_in={plan.base_in}, "
                f"cross={plan.cross}, gen_weight_bits={self.gen_weight_bits}")
