"""Gated ResNet-20s (dnn-gating's CIFAR-10 models) and their training plug-ins.

- ``pg_resnet20``: conv1 of every basic block is a ``PGConv2d``; conv2 is a ``QuantConv2d`` at
  the same weight / activation widths; the block's two ReLUs share one PACT clip; the stem conv
  and the FC stay fp (``model/pg_cifar10_resnet.py``).
- ``cg_resnet20``: conv1 of every basic block is a ``CGConv2d``, the rest plain
  (``model/cg_cifar10_resnet.py``).
- ``cg_resnet20_postact``: both convs of a block are ``CGConv2d`` and the block reads
  ``relu(bn1(conv1)) -> relu(bn2(conv2)) -> + shortcut`` with no ReLU after the add
  (``model/cg_cifar10_resnet_postact.py``, 18 gated layers).

The ``pg`` / ``cg`` arguments carry the seed scripts' flags under their destination names
(``--set pg.abits=3``), listed in ``PGConfig`` / ``CGConfig``. Plug-ins (``models/plugins.py``):
loss terms ``pg_gating`` and ``cg_gating`` (the seeds' threshold losses) and the metric
``gate_sparsity`` (the seeds' reported sparsity, logged after every evaluation).
"""

import functools
import math
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .layers import plain_conv, plain_linear
from .layers.gating import CGConv2d, PGConv2d, gated_layers
from .layers.quant import PACT, QuantConv2d
from .plugins import register_loss, register_metric
from .registry import register_model
from .resnet import BasicBlock, ResNet
from .settings import settings_from_dict

# Settings whose sign matters: a gate slope <= 0 never opens (0) or inverts the gate, a PACT
# clip <= 0 zeroes every activation, a negative loss weight pushes thresholds away from the
# target.
_POSITIVE = ("alpha", "pact_init")
_NON_NEGATIVE = ("sg",)


def _from_dict(section: str, given: dict | None, defaults):
    """``settings_from_dict`` (which refuses NaN and infinities), each given value also of its
    default's type (an int for a float) and of the sign its meaning needs (``_POSITIVE``,
    ``_NON_NEGATIVE``)."""
    settings = settings_from_dict(section, given, defaults)
    for key, value in (given or {}).items():
        default = getattr(defaults, key)
        if isinstance(default, bool) != isinstance(value, bool) or not isinstance(
                value, (type(default), int) if isinstance(default, float) else type(default)):
            kind = "a finite number" if isinstance(default, float) else type(default).__name__
            raise ValueError(f"{section}.{key}: must be {kind}, got {value!r}")
        if key in _POSITIVE and value <= 0 or key in _NON_NEGATIVE and value < 0:
            raise ValueError(f"{section}.{key}: must be {'> 0' if key in _POSITIVE else '>= 0'}"
                             f", got {value!r}")
    return settings


@dataclass(frozen=True)
class PGConfig:
    """Flags of ``pg-cifar10.py`` (defaults: its example run ``-w 8 -a 3 -pact -pg -spbp -pb 2
    -gtar 1``). ``wbits`` / ``abits``: weight / activation widths (0: fp); ``pbits``: MSBs of
    the prediction; ``gtar``: threshold target and ``sg``: its loss weight (``pg_gating``);
    ``alpha``: gate slope (hard-coded 5 in the seed); ``th_init``: threshold init (0)."""

    wbits: int = 8
    abits: int = 3
    pbits: int = 2
    pact: bool = True
    spbp: bool = True
    gtar: float = 1.0
    sg: float = 1e-3
    alpha: float = 5.0
    th_init: float = 0.0
    pact_init: float = 6.0

    @classmethod
    def from_dict(cls, given: dict | None) -> "PGConfig":
        return _from_dict("pg", given, cls())


@dataclass(frozen=True)
class CGConfig:
    """Flags of ``cg-cifar10.py`` (defaults: its example run ``-cg -spbp -group -pt 4 -gtar 1``).
    ``pt``: partitions (base share 1/pt); ``gi``: threshold init; ``gtar``: threshold target
    (``cg_gating``, weight ``sg`` = the seed's hard-coded 1e-4); ``alpha``: gate slope;
    ``group``: block-diagonal base pattern; ``shuffle``: channel shuffle; ``spbp``: sparse
    back-prop."""

    pt: int = 4
    gi: float = 0.0
    gtar: float = 1.0
    sg: float = 1e-4
    alpha: float = 2.0
    group: bool = True
    shuffle: bool = False
    spbp: bool = True

    @classmethod
    def from_dict(cls, given: dict | None, defaults: "CGConfig | None" = None) -> "CGConfig":
        return _from_dict("cg", given, defaults or cls())


class PGBlock(BasicBlock):
    """Basic block whose two activations are one shared module (PACT clip for PG)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act(out + self.shortcut(x))


class PostActBlock(BasicBlock):
    """dnn-gating's post-activation block: ReLU after each BN, none after the residual add."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        return out + self.shortcut(x)


def _resnet20(block: type, num_classes: int, in_channels: int, width: float) -> ResNet:
    return ResNet(block, [3, 3, 3], [16, 32, 64], num_classes, in_channels, width, "A",
                  plain_conv, plain_linear)


def _replace_conv(conv: nn.Conv2d, factory) -> nn.Module:
    return factory(conv.in_channels, conv.out_channels, conv.kernel_size[0],
                   stride=conv.stride[0], padding=conv.padding[0])


def _blocks(model: nn.Module) -> list[BasicBlock]:
    return [m for m in model.modules() if isinstance(m, BasicBlock)]


@register_model
def pg_resnet20(num_classes: int = 10, in_channels: int = 3, width: float = 1.0,
                pg: dict | None = None) -> nn.Module:
    """ResNet-20 with precision-gated conv1 per block (default w8/a3, 2-bit prediction)."""
    cfg = PGConfig.from_dict(pg)
    model = _resnet20(PGBlock, num_classes, in_channels, width)
    gated = functools.partial(PGConv2d, weight_bits=cfg.wbits, act_bits=cfg.abits,
                              pred_bits=cfg.pbits, alpha=cfg.alpha, threshold_init=cfg.th_init,
                              sparse_bp=cfg.spbp)
    quantized = functools.partial(QuantConv2d, weight_bits=cfg.wbits, act_bits=cfg.abits)
    for block in _blocks(model):
        block.conv1 = _replace_conv(block.conv1, gated)
        block.conv2 = _replace_conv(block.conv2, quantized)
        if cfg.pact:
            block.act = PACT(cfg.pact_init)
    model.gating = cfg
    return model


def _cg_model(block: type, gate_both: bool, cfg: CGConfig, num_classes: int, in_channels: int,
              width: float) -> nn.Module:
    model = _resnet20(block, num_classes, in_channels, width)
    gated = functools.partial(CGConv2d, partitions=cfg.pt, alpha=cfg.alpha,
                              threshold_init=cfg.gi, grouped=cfg.group, shuffle=cfg.shuffle,
                              sparse_bp=cfg.spbp)
    for block_module in _blocks(model):
        block_module.conv1 = _replace_conv(block_module.conv1, gated)
        if gate_both:
            block_module.conv2 = _replace_conv(block_module.conv2, gated)
    model.gating = cfg
    return model


@register_model
def cg_resnet20(num_classes: int = 10, in_channels: int = 3, width: float = 1.0,
                cg: dict | None = None) -> nn.Module:
    """ResNet-20 with channel-gated conv1 per block (default pt=4, grouped base path)."""
    return _cg_model(BasicBlock, False, CGConfig.from_dict(cg), num_classes, in_channels,
                     width)


POSTACT_DEFAULTS = CGConfig(pt=2, gtar=0.6)  # the seed's post-activation run


@register_model
def cg_resnet20_postact(num_classes: int = 10, in_channels: int = 3, width: float = 1.0,
                        cg: dict | None = None) -> nn.Module:
    """Post-activation ResNet-20, both convs of every block channel-gated (default pt=2)."""
    return _cg_model(PostActBlock, True, CGConfig.from_dict(cg, POSTACT_DEFAULTS), num_classes,
                     in_channels, width)


# --- training plug-ins -------------------------------------------------------------------------
def _config(model: nn.Module, kind: type, plugin: str):
    cfg = getattr(model, "gating", None)
    if not isinstance(cfg, kind):
        raise ValueError(f"{plugin}: the model has no {kind.__name__[:2].lower()}-gated layers "
                         f"(use a {kind.__name__[:2].lower()}_* model)")
    return cfg


def _number(plugin: str, key: str, value, default: float, low: float = -math.inf) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value < low:
        raise ValueError(f"{plugin}: {key} must be a finite number"
                         f"{f' >= {low:g}' if low > -math.inf else ''}, got {value!r}")
    return float(value)


def _threshold_term(model: nn.Module, kind: type, layer: type, distance, *, plugin: str,
                    weight_name: str, weight: float | None, target: float | None):
    """Loss term ``weight · Σ_layers distance(threshold − target)`` over the model's ``layer``
    convs; ``weight`` (argument ``weight_name``) and ``target`` default to the model's settings
    (``sg``, ``gtar``)."""
    cfg = _config(model, kind, plugin)
    scale = _number(plugin, weight_name, weight, cfg.sg, low=0.0)
    target = _number(plugin, "target", target, cfg.gtar)
    layers = [m for m in gated_layers(model) if isinstance(m, layer)]

    def term(inputs: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return scale * sum(distance(m.threshold - target) for m in layers)

    return term


@register_loss("pg_gating")
def pg_gating(model: nn.Module, sigma: float | None = None, target: float | None = None):
    """``sigma · Σ_layers ‖threshold − target‖₂`` (the L2 norm, not squared, as the seed).

    Defaults from the model's ``pg`` settings (``sg``, ``gtar``).
    """
    return _threshold_term(model, PGConfig, PGConv2d, torch.linalg.vector_norm,
                           plugin="pg_gating", weight_name="sigma", weight=sigma, target=target)


@register_loss("cg_gating")
def cg_gating(model: nn.Module, weight: float | None = None, target: float | None = None):
    """``weight · Σ_layers Σ_channels (threshold − target)²`` (the seed hard-codes 1e-4).

    Defaults from the model's ``cg`` settings (``sg``, ``gtar``).
    """
    return _threshold_term(model, CGConfig, CGConv2d, lambda gap: (gap ** 2).sum(),
                           plugin="cg_gating", weight_name="weight", weight=weight, target=target)


@register_metric("gate_sparsity")
def gate_sparsity_metric(model: nn.Module):
    """``gate_sparsity``: share of gated outputs that skipped the expensive path in the
    evaluation just run (the seeds' ``100 − Σ num_full / Σ num_out · 100``, as a fraction).

    Reads the eval-mode counts and clears them; under torchrun the ranks' counts are summed.
    The counts are cleared here too: eval-mode passes before training (the loop's one-image
    check that the model runs on the data) are not an evaluation.
    """
    layers = gated_layers(model)
    if not layers:
        raise ValueError("gate_sparsity: the model has no gated layers (use a pg_* / cg_* model)")

    def reset() -> None:
        for layer in layers:
            layer.reset_hw_stats()

    def metric() -> dict:
        counts = torch.tensor([c for layer in layers for c in layer.gate_counts()],
                              dtype=torch.float64, device=layers[0].threshold.device)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(counts)
        on, total = counts[0::2].sum().item(), counts[1::2].sum().item()
        reset()
        return {"gate_sparsity": 1 - on / total if total else None}

    reset()

    return metric
