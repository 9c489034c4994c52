"""ResRep models (ResNet-56 as the seed, ResNet-20, ResNet-50) and ResRep's training plug-ins.

The models are the zoo's ResNets built with the ResRep conv-BN factory: every prunable conv (the
first conv of a basic block; the first two of a bottleneck, docs/methods.md, ResRep: prunable
layers) is followed by BN and a compactor, every other conv by plain BN; shortcuts are 1x1
projections (option B) as in the seed. ``channels`` is the channel plan of the prunable convs and
``converted`` the deployed form (BN and compactor folded into a conv with bias), so a pruned network
is rebuilt exactly from its checkpoint's arguments. The ``resrep`` argument carries the method's
knobs (``ResRepConfig``), read by the ``resrep`` gradient hook.

Flow: train the dense model (``resnet56(shortcut="B")``) → initializer ``resrep_base`` copies
it into the compactor model → training with gradient hook ``resrep`` (penalty gradients, mask
schedule; the compactors train with momentum 0.99 and no weight decay, the model's
``optimizer_groups``, which ``optimizer.groups.compactor`` overrides) → ``convert_checkpoint``
writes the narrower network.
"""

import functools
import os
import sys
from dataclasses import dataclass

import numpy as np
from torch import nn

from .checkpoint import build_model, load_checkpoint, load_weights, new_checkpoint, save_checkpoint
from .layers.resrep import (
    CompactedBatchNorm2d,
    compactors,
    converted_state,
    flops_model,
    penalty_gradients,
    pruned_layers,
    resrep_conv_bn,
    rounded_widths,
    select_masks,
)
from .plugins import register_grad_hook, register_init
from .registry import create_model, register_model
from .resnet import BasicBlock, build_resnet
from .settings import settings_from_dict


@dataclass(frozen=True)
class ResRepConfig:
    """The seed's ResRep knobs; defaults are its ResNet-56 CIFAR-10 run.

    What each does: docs/methods.md, ResRep: update rule, mask schedule, knobs.

    ``flops_target``: remaining fraction of conv + FC MACs; ``lasso_strength``: λ of the
    group-lasso gradient; ``before_mask_iters``: steps with every channel kept (the seed: 5
    epochs, 3906 steps at batch 64 on CIFAR); ``mask_interval``: steps between mask updates;
    ``begin_granularity``: most channels masked more per update; ``num_at_least``: fewest
    channels a layer keeps. ``width_multiple`` (ours, 1 = off): keep every pruned width a
    multiple of it (or the full width), e.g. the array's columns.
    """

    flops_target: float = 0.471
    lasso_strength: float = 1e-4
    before_mask_iters: int = 3906
    mask_interval: int = 200
    begin_granularity: int = 4
    num_at_least: int = 1
    width_multiple: int = 1

    def __post_init__(self):
        target = self.flops_target
        if isinstance(target, bool) or not isinstance(target, (int, float)) \
                or not 0 < target <= 1:
            raise ValueError(f"resrep: flops_target must be a number in (0, 1], got {target!r}")
        lasso = self.lasso_strength
        if isinstance(lasso, bool) or not isinstance(lasso, (int, float)) or lasso < 0:
            raise ValueError(f"resrep: lasso_strength must be a number >= 0, got {lasso!r}")
        for key, least in (("before_mask_iters", 0), ("mask_interval", 1),
                           ("begin_granularity", 1), ("num_at_least", 1), ("width_multiple", 1)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"resrep: {key} must be an int >= {least}, got {value!r}")

    @classmethod
    def from_dict(cls, resrep: dict | None, defaults: "ResRepConfig | None" = None
                  ) -> "ResRepConfig":
        """Overrides from a config's ``resrep`` section on top of ``defaults``."""
        return settings_from_dict("resrep", resrep, defaults or cls())


RESNET56_DEFAULTS = ResRepConfig()
# ImageNet (docs/methods.md, ResRep: knobs): 5 epochs of 1,281,167 images at batch 256; 0.455.
RESNET50_DEFAULTS = ResRepConfig(flops_target=0.455, before_mask_iters=5 * 1281167 // 256)


def _build(arch: str, defaults: ResRepConfig, num_classes: int, in_channels: int, width: float,
           shortcut: str, channels: list | None, converted: bool, resrep: dict | None
           ) -> nn.Module:
    cfg = ResRepConfig.from_dict(resrep, defaults)
    model = build_resnet(arch, num_classes, in_channels, width, shortcut,
                         conv_bn=functools.partial(resrep_conv_bn, converted=converted),
                         channels=channels)
    model.resrep_config = cfg
    if not converted:  # the seed's compactor settings (docs/methods.md, ResRep: update rule)
        model.optimizer_groups = {"compactor": {"momentum": 0.99, "weight_decay": 0.0}}
    return model


@register_model
def resrep_resnet56(num_classes: int = 10, in_channels: int = 3, width: float = 1.0,
                    shortcut: str = "B", channels: list | None = None, converted: bool = False,
                    resrep: dict | None = None) -> nn.Module:
    """CIFAR ResNet-56 with a compactor after the first conv of every block (the seed's 27)."""
    return _build("resnet56", RESNET56_DEFAULTS, num_classes, in_channels, width, shortcut,
                  channels, converted, resrep)


@register_model
def resrep_resnet20(num_classes: int = 10, in_channels: int = 3, width: float = 1.0,
                    shortcut: str = "B", channels: list | None = None, converted: bool = False,
                    resrep: dict | None = None) -> nn.Module:
    """CIFAR ResNet-20 with a compactor after the first conv of every block (9 layers)."""
    return _build("resnet20", RESNET56_DEFAULTS, num_classes, in_channels, width, shortcut,
                  channels, converted, resrep)


@register_model(input_hw=(224, 224))
def resrep_resnet50(num_classes: int = 1000, in_channels: int = 3, width: float = 1.0,
                    shortcut: str = "B", channels: list | None = None, converted: bool = False,
                    resrep: dict | None = None) -> nn.Module:
    """ImageNet ResNet-50 with compactors after the first two convs of every bottleneck (32)."""
    return _build("resnet50", RESNET50_DEFAULTS, num_classes, in_channels, width, shortcut,
                  channels, converted, resrep)


# --- training plug-ins -------------------------------------------------------------------------
def _config(model: nn.Module, plugin: str) -> ResRepConfig:
    cfg = getattr(model, "resrep_config", None)
    if cfg is None or not compactors(model):
        raise ValueError(f"{plugin}: the model has no compactors (use an unconverted resrep_* "
                         f"model)")
    return cfg


def update_masks(model: nn.Module, layers, flops, cfg: ResRepConfig) -> None:
    """Recompute every compactor's mask from its row norms (``select_masks``)."""
    modules = dict(model.named_modules())
    found = [modules[layer.norm].compactor for layer in layers]
    keeps = select_masks([c.row_norms().cpu().numpy() for c in found],
                         [c.mask.cpu().numpy() > 0 for c in found], flops, cfg.flops_target,
                         cfg.begin_granularity, cfg.num_at_least, cfg.width_multiple)
    for compactor, keep in zip(found, keeps):
        compactor.mask.copy_(compactor.mask.new_tensor(keep.astype(np.float32)))


def _warn_unreachable(flops, cfg: ResRepConfig) -> None:
    """One line on stderr (rank 0) when even the narrowest network ``cfg`` allows misses the
    target: pruning then stops there, at a FLOPs ratio above ``flops_target``."""
    full = flops.full_widths
    narrowest = rounded_widths(np.minimum(full, cfg.num_at_least), full, cfg.width_multiple)
    ratio = flops.macs(narrowest) / flops.macs(full)
    if ratio > cfg.flops_target and int(os.environ.get("RANK", "0")) == 0:
        print(f"resrep: warning: flops_target {cfg.flops_target:g} is out of reach with "
              f"width_multiple {cfg.width_multiple} and num_at_least {cfg.num_at_least}; "
              f"pruning stops at the narrowest network, {ratio:.3f} of the FLOPs",
              file=sys.stderr)


@register_grad_hook("resrep")
def resrep(model: nn.Module, **params):
    """Gradient hook: penalty gradients every step, masks every ``mask_interval`` steps after
    the first ``before_mask_iters``; knobs from the model's ``resrep`` argument
    (``ResRepConfig``).

    The FLOPs model needs the input size; it is read from the first training batch.
    """
    if params:
        raise ValueError(f"grad_hooks.resrep: takes no settings (got {', '.join(params)}); "
                         f"they belong in the resrep section, e.g. resrep: {{flops_target: 0.5}}")
    cfg = _config(model, "resrep")
    layers = pruned_layers(model)
    found = compactors(model)
    seen: dict[str, object] = {}

    def record_input(module: nn.Module, args: tuple) -> None:
        seen.setdefault("input_shape", tuple(args[0].shape[1:]))

    model.register_forward_pre_hook(record_input)

    def hook(step: int) -> None:
        penalty_gradients(found, cfg.lasso_strength)
        if "flops" not in seen:
            seen["flops"] = flops_model(model, seen["input_shape"], layers)
            _warn_unreachable(seen["flops"], cfg)
        # The seed updates before step s when s > before_mask_iters and s - before_mask_iters
        # is a multiple of mask_interval; after step s - 1 here, which is the same point.
        done = step + 1 - cfg.before_mask_iters
        if done > 0 and done % cfg.mask_interval == 0:
            update_masks(model, layers, seen["flops"], cfg)

    return hook


@register_init("resrep_base")
def resrep_base(model: nn.Module, checkpoint: str | None = None) -> None:
    """Initializer: start from the trained dense model in ``checkpoint`` (same architecture,
    e.g. ``resnet56`` with ``shortcut: B``); compactors start at the identity, so the network
    computes exactly what the dense one did."""
    _config(model, "resrep_base")
    if not checkpoint:
        raise ValueError("resrep_base: give checkpoint: PATH of the dense model (hwsim pipeline "
                         "fills it in from its base stage)")
    source = build_model(load_checkpoint(checkpoint), checkpoint).state_dict()
    own = model.state_dict()
    bad = dense_mismatch(own, source)
    if bad:
        raise ValueError(f"resrep_base: {checkpoint} is not the dense form of this model "
                         f"(first mismatch: {bad}); {DENSE_FORM}")
    model.load_state_dict({**own, **{k: v.to(own[k].device) for k, v in source.items()}})


DENSE_FORM = ("train the same architecture, width and data with shortcut B, e.g. resnet56 "
              "for resrep_resnet56")


def dense_mismatch(own: dict, dense_state: dict) -> str | None:
    """The first state-dict key in which ``dense_state`` is not the dense form of the
    compactor model whose state dict is ``own`` (a key only one has, compactors aside, or
    another shape), or None."""
    extra = [k for k in own if k not in dense_state and ".compactor." not in k]
    foreign = [k for k in dense_state if k not in own]
    reshaped = [k for k in dense_state if k in own and own[k].shape != dense_state[k].shape]
    return next(iter(extra + foreign + reshaped), None)


# --- conversion --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Conversion:
    """What ``convert_model`` did: the new arguments and the largest dropped compactor row."""

    model_kwargs: dict
    channels: tuple[int, ...]
    dropped_row_norm: float


def convert_model(name: str, kwargs: dict, model: nn.Module) -> tuple[nn.Module, Conversion]:
    """The deployed, narrower network of an unconverted ``resrep_*`` model (ResRep: conversion)."""
    layers = pruned_layers(model)
    if not layers:
        raise ValueError(f"resrep: model {name} has no compactors to convert "
                         f"(already converted?)")
    plan, state, dropped = converted_state(model, layers)
    new_kwargs = {**kwargs, "channels": plan, "converted": True}
    converted = create_model(name, **new_kwargs).to(next(model.parameters()).device)
    load_weights(converted, state, name, f"converted {name}")
    return converted.eval(), Conversion(new_kwargs, tuple(plan), dropped)


def convert_checkpoint(source: str, target: str,
                       loaded: tuple[dict, nn.Module] | None = None) -> Conversion:
    """Convert the checkpoint ``source`` and save the pruned network (with its channel plan in
    the model arguments) as ``target``. ``loaded``: the caller's ``load_checkpoint(source)``
    and the model built from it, so the file is not read twice."""
    if loaded is None:
        checkpoint = load_checkpoint(source)
        loaded = checkpoint, build_model(checkpoint, source).eval()
    checkpoint, model = loaded
    if not has_compactors(model):
        raise ValueError(f"{source}: model {checkpoint['model_name']} has no compactors to "
                         f"convert (already converted?)")
    converted, conversion = convert_model(checkpoint["model_name"],
                                          checkpoint["model_kwargs"], model)
    save_checkpoint(target, new_checkpoint(
        checkpoint["model_name"], conversion.model_kwargs, converted, checkpoint["config"],
        checkpoint["input_shape"], history=checkpoint.get("history", []),
        data=checkpoint.get("data"), converted_from=str(source),
        dropped_row_norm=conversion.dropped_row_norm))
    return conversion


# --- FLOPs as the seed counts them -------------------------------------------------------------
def has_compactors(model: nn.Module) -> bool:
    return any(isinstance(m, CompactedBatchNorm2d) for m in model.modules())


def unpruned_kwargs(kwargs: dict) -> dict:
    """Arguments of the same architecture at its full widths (no plan, not converted)."""
    return {k: v for k, v in kwargs.items() if k not in ("channels", "converted")}


def seed_flops(model: nn.Module, input_shape: tuple[int, int, int]) -> int:
    """Conv + FC MACs per image as the seed's counter gives them (methods.md, ResRep: FLOPs), at the
    widths conversion keeps: its CIFAR-ResNet counter passes the stride-2 1x1 projection of a basic
    block a kernel size of 2, counting it 4x (ResNet-56: 126.53 M against 125.75 M)."""
    quirk = {f"{name}.shortcut.0": 4 for name, block in model.named_modules()
             if isinstance(block, BasicBlock) and isinstance(block.shortcut, nn.Sequential)
             and len(block.shortcut) and block.shortcut[0].stride == (2, 2)}
    layers = pruned_layers(model)
    modules = dict(model.named_modules())
    kept = [modules[layer.norm].hw_kept_channels() for layer in layers]
    return flops_model(model, input_shape, layers, scale=quirk).macs(kept)
