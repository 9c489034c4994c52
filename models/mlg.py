"""MLG models (ResNet-18, DenseNet-121, MobileNetV2) and MLG's training plug-ins.

The models are the zoo's architectures built with an ``MLGConv2d`` factory for every conv and an
8-bit ``QuantLinear`` classifier (the paper keeps the FC uncompressed, docs/methods.md, MLG:
which layers). The ``mlg`` argument carries the seed's knobs (``--mlg.base_in`` ... in the
released code).

Plug-ins (``models/plugins.py``): initializer ``mlg_projection`` (L2 projection of a teacher's
weights onto the factors) and loss term ``mlg_ortho`` (docs/methods.md, MLG: training).
Knowledge distillation is the generic ``kd`` loss of the training loop.
"""

import functools
import math
from dataclasses import dataclass

import torch
from torch import nn

from .checkpoint import build_model, load_checkpoint
from .densenet import densenet121
from .layers.mlg import MLGConv2d, check_gen_weight_bits
from .layers.quant import QuantLinear, check_bits
from .mobilenet import mobilenetv2
from .plugins import register_init, register_loss
from .registry import register_model
from .resnet import resnet18
from .settings import settings_from_dict

PROJECTION_ALGS = ("train", "svd")


@dataclass(frozen=True)
class MLGConfig:
    """The seed's MLG knobs; defaults are the paper's ResNet-18 setting Ours-2-44-3-6-3.

    ``base_in`` / ``base_out``: B_i / B_c (0 switches a level off); ``basis_bit``,
    ``coeff_in_bit``, ``coeff_out_bit``: q_b, q_u, q_v; ``weight_bit``: the classifier's
    width (the seed's ``model.weight_bit``, 8 in its train.yml). Widths >= 16 mean fp32.
    ``gen_weight_bit``: our hardware knob, not the seed's: the width the generated weights are
    requantized to on chip, in the forward pass too (``MLGConv2d``); 8 by default, the weight
    precision of hwsim's 8-bit arrays; 0 keeps them exact as the paper (19 bits for 2-44-3-6-3,
    several passes per MAC on an 8-bit bit-parallel array).
    """

    base_in: int = 2
    base_out: int = 44
    basis_bit: int = 3
    coeff_in_bit: int = 6
    coeff_out_bit: int = 3
    weight_bit: int = 8
    gen_weight_bit: int = 8

    def __post_init__(self):
        for key in ("base_in", "base_out"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"mlg: {key} must be an int >= 0 (0: level off), got {value!r}")
        for key in ("basis_bit", "coeff_in_bit", "coeff_out_bit", "weight_bit"):
            check_bits(f"mlg: {key}", getattr(self, key))
        check_gen_weight_bits("mlg: gen_weight_bit", self.gen_weight_bit)

    @classmethod
    def from_dict(cls, mlg: dict | None, defaults: "MLGConfig | None" = None) -> "MLGConfig":
        """Overrides from a config's ``mlg`` section on top of ``defaults``."""
        return settings_from_dict("mlg", mlg, defaults or cls())

    @property
    def name(self) -> str:
        """The paper's label, e.g. ``2-44-3-6-3``."""
        return "-".join(str(v) for v in (self.base_in, self.base_out, self.basis_bit,
                                         self.coeff_in_bit, self.coeff_out_bit))

    def conv_factory(self):
        return functools.partial(MLGConv2d, base_in=self.base_in, base_out=self.base_out,
                                 basis_bits=self.basis_bit, coeff_in_bits=self.coeff_in_bit,
                                 coeff_out_bits=self.coeff_out_bit,
                                 gen_weight_bits=self.gen_weight_bit)

    def linear_factory(self):
        return functools.partial(QuantLinear, weight_bits=self.weight_bit)


# Per-architecture defaults: the paper's settings (Table 2 for DenseNet-121, Table 3 for
# MobileNetV2 on CIFAR-10).
RESNET18_DEFAULTS = MLGConfig()
DENSENET121_DEFAULTS = MLGConfig(base_in=1, base_out=25, basis_bit=4, coeff_in_bit=6,
                                 coeff_out_bit=6)
MOBILENETV2_DEFAULTS = MLGConfig(base_in=5, base_out=40, basis_bit=4, coeff_in_bit=4,
                                 coeff_out_bit=4)


@register_model
def mlg_resnet18(num_classes: int = 10, in_channels: int = 3, width: float = 1.0,
                 mlg: dict | None = None) -> nn.Module:
    """CIFAR ResNet-18, every conv generated (default 2-44-3-6-3) at 8 bits, 8-bit FC."""
    cfg = MLGConfig.from_dict(mlg, RESNET18_DEFAULTS)
    return resnet18(num_classes=num_classes, in_channels=in_channels, width=width,
                    conv=cfg.conv_factory(), linear=cfg.linear_factory())


@register_model
def mlg_densenet121(num_classes: int = 10, in_channels: int = 3, width: float = 1.0,
                    mlg: dict | None = None) -> nn.Module:
    """CIFAR DenseNet-121 with generated convs (default 1-25-4-6-6) and an 8-bit FC."""
    cfg = MLGConfig.from_dict(mlg, DENSENET121_DEFAULTS)
    return densenet121(num_classes=num_classes, in_channels=in_channels, width=width,
                       conv=cfg.conv_factory(), linear=cfg.linear_factory())


@register_model
def mlg_mobilenetv2(num_classes: int = 10, in_channels: int = 3, width: float = 1.0,
                    mlg: dict | None = None) -> nn.Module:
    """CIFAR MobileNetV2, generation on every depthwise and pointwise conv (default 5-40-4-4-4).

    Depthwise convs use the intra-kernel level over the whole bank (see ``MLGConv2d``).
    """
    cfg = MLGConfig.from_dict(mlg, MOBILENETV2_DEFAULTS)
    return mobilenetv2(num_classes=num_classes, in_channels=in_channels, width=width,
                       conv=cfg.conv_factory(), linear=cfg.linear_factory())


# --- training plug-ins -------------------------------------------------------------------------
def mlg_layers(model: nn.Module) -> list[MLGConv2d]:
    return [m for m in model.modules() if isinstance(m, MLGConv2d) and m.plan is not None]


def ortho_loss(model: nn.Module) -> torch.Tensor:
    """Σ over generated convs of their multi-level orthonormality loss (methods.md, MLG)."""
    return sum((layer.ortho_loss() for layer in mlg_layers(model)),
               start=next(model.parameters()).new_zeros(()))


@register_loss("mlg_ortho")
def mlg_ortho(model: nn.Module, weight: float = 0.05):
    """Loss term ``weight · L_ort`` (the seed's ``criterion.ortho_loss_weight``, 0.05)."""
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not (
            math.isfinite(weight) and weight >= 0):
        raise ValueError(f"mlg_ortho: weight must be a number >= 0, got {weight!r}")
    if not mlg_layers(model):
        raise ValueError("mlg_ortho: the model has no generated MLGConv2d layer "
                         "(use an mlg_* model)")

    def term(inputs: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return weight * ortho_loss(model)

    return term


def effective_weight(module: nn.Module) -> torch.Tensor:
    """The weight a conv / linear computes with (generated or quantized when compressed)."""
    return module.effective_weight() if hasattr(module, "effective_weight") else module.weight


def _weight_pairs(student: nn.Module, teacher: nn.Module) -> list[tuple[str, nn.Module, nn.Module]]:
    """(name, student module, teacher module) for every conv / linear; shapes must agree."""
    teacher_modules = dict(teacher.named_modules())
    pairs = []
    for name, module in student.named_modules():
        if not isinstance(module, (nn.Conv2d, nn.Linear)):
            continue
        other = teacher_modules.get(name)
        if other is None or getattr(other, "weight", None) is None \
                or other.weight.shape != module.weight.shape:
            raise ValueError(f"mlg_projection: teacher has no layer {name!r} with weight shape "
                             f"{tuple(module.weight.shape)}; the teacher must be the same "
                             f"architecture (e.g. resnet18 for mlg_resnet18)")
        pairs.append((name, module, other))
    return pairs


def reconstruction_error(student: nn.Module, teacher: nn.Module) -> float:
    """Σ over conv / linear layers of mean((W_student − W_teacher)²) with effective weights."""
    with torch.no_grad():
        return float(sum(torch.mean((effective_weight(s) - effective_weight(t)) ** 2)
                         for _, s, t in _weight_pairs(student, teacher)))


def project_from_teacher(student: nn.Module, teacher: nn.Module, steps: int = 3000,
                         lr: float = 2e-2, alg: str = "train") -> float:
    """L2-norm projection of ``teacher`` onto ``student`` (paper Alg. 1 step 1, Eq. 5).

    Every teacher tensor whose name and shape match is copied first: BN γ, β and running
    statistics, biases (as the released ``approximate_target_model``), and also the dense
    weights — our addition, which starts non-generated convs and the FC exactly and the basis
    slice of the latent weight at the teacher's values. ``alg="train"`` then minimizes
    Σ_layers mean((W_gen − W_teacher)²) over all student parameters with RAdam(lr) for
    ``steps`` full-model steps (no data; 3000 and 2e-2 in the paper); ``alg="svd"`` sets the
    factors from truncated SVDs instead (paper Table 1 "SVD init"). Teacher weights are its
    effective ones (generated / quantized if it is compressed). Returns the final
    reconstruction error.
    """
    if alg not in PROJECTION_ALGS:
        raise ValueError(f"mlg_projection: alg must be one of {', '.join(PROJECTION_ALGS)}, "
                         f"got {alg!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"mlg_projection: steps must be an int >= 0, got {steps!r}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (
            math.isfinite(lr) and lr > 0):
        raise ValueError(f"mlg_projection: lr must be a number > 0, got {lr!r}")
    pairs = _weight_pairs(student, teacher)
    own = student.state_dict()
    with torch.no_grad():
        for key, value in teacher.state_dict().items():
            if key in own and own[key].shape == value.shape:
                own[key].copy_(value)
        targets = [effective_weight(t).detach().clone() for _, _, t in pairs]
    if alg == "svd":
        for (_, module, _), target in zip(pairs, targets):
            if isinstance(module, MLGConv2d):
                module.project_svd(target)
        return reconstruction_error(student, teacher)
    optimizer = torch.optim.RAdam(student.parameters(), lr=lr)
    with torch.enable_grad():
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            loss = sum(torch.mean((effective_weight(s) - target) ** 2)
                       for (_, s, _), target in zip(pairs, targets))
            loss.backward()
            optimizer.step()
    return reconstruction_error(student, teacher)


@register_init("mlg_projection")
def mlg_projection(model: nn.Module, teacher: str, steps: int = 3000, lr: float = 2e-2,
                   alg: str = "train") -> None:
    """Initializer: project checkpoint ``teacher`` onto ``model`` (``project_from_teacher``).

    The teacher checkpoint rebuilds its own model (e.g. ``resnet18``, same width and classes).
    """
    if not mlg_layers(model):
        raise ValueError("mlg_projection: the model has no generated MLGConv2d layer "
                         "(use an mlg_* model)")
    source = build_model(load_checkpoint(teacher), teacher)
    project_from_teacher(model, source.to(next(model.parameters()).device), steps, lr, alg)
