"""ResRep (Ding et al., ICCV 2021): compactors, penalty gradients, the mask schedule, conversion.

A prunable conv is followed by ``CompactedBatchNorm2d``: its BatchNorm, then a ``Compactor``
(an identity-initialized 1x1 conv D->D without bias) whose ``mask`` buffer marks the channels
kept. Training adds a group-lasso gradient to every compactor row and keeps only that on the
masked rows (``penalty_gradients``), so masked rows decay towards zero while the rest of the
network learns to do without them; ``select_masks`` picks the masked set globally by row norm
until a FLOPs target is met. ``converted_state`` folds BN and the compactor into the conv,
drops the masked filters and the matching input channels of the layers that read them.

The tracer costs an unconverted network as the converted one: ``hw_kept_channels()`` tells it
how many channels survive, the preceding conv counts only those and so do its consumers.
"""

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

# Element-wise ops a pruned channel passes on its way from the compactor to the convs reading it.
PASS_FUNCTIONS = (F.relu, torch.relu, F.relu6, F.leaky_relu, F.hardtanh)
PASS_METHODS = ("relu", "relu_")
PASS_MODULES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.Hardtanh, nn.Identity, nn.Dropout)


class Compactor(nn.Module):
    """1x1 conv D->D without bias, initialized to the identity; ``mask[j]`` = 1 keeps channel j.

    The mask does not act in the forward pass (as in the seed): it only decides which rows
    receive the objective gradient, and which channels conversion drops.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.eye(channels).view(channels, channels, 1, 1))
        self.register_buffer("mask", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight)

    def row_norms(self) -> torch.Tensor:
        """L2 norm of every row Q[j, :] (the channel's saliency)."""
        return self.weight.detach().flatten(1).norm(dim=1)

    def kept(self) -> torch.Tensor:
        """Indices of the channels conversion keeps: the unmasked ones, or the largest-norm row
        when every row is masked (a layer never disappears)."""
        keep = torch.nonzero(self.mask > 0).flatten()
        return keep if len(keep) else self.row_norms().argmax().view(1)


class CompactedBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm followed by a compactor: the normalization of a prunable conv.

    A BatchNorm subclass so the BN parameters keep the dense model's names (``bn1.weight``) and
    a dense checkpoint loads into it; the compactor adds ``bn1.compactor.weight`` / ``.mask``.
    """

    def __init__(self, num_features: int):
        super().__init__(num_features)
        self.compactor = Compactor(num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.compactor(super().forward(x))

    def hw_kept_channels(self) -> int:
        """Output channels that survive conversion; the tracer costs only these."""
        return len(self.compactor.kept())


def resrep_conv_bn(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                   padding: int = 0, prunable: bool = False, *, converted: bool = False
                   ) -> tuple[nn.Module, nn.Module]:
    """Conv-BN factory (``models.layers.ConvBNFactory``) for ResRep.

    Prunable layers get a ``CompactedBatchNorm2d``, or after conversion a conv with bias and no
    normalization (BN and compactor folded into it); the others are plain conv + BN.
    """
    if prunable and converted:
        return (nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                          padding=padding, bias=True), nn.Identity())
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                     bias=False)
    return conv, (CompactedBatchNorm2d if prunable else nn.BatchNorm2d)(out_channels)


# --- structure: which conv each compactor prunes and which layers read its channels ---------
@dataclass(frozen=True)
class PrunedLayer:
    """A prunable conv (module name), its ``CompactedBatchNorm2d`` and the layers reading it."""

    conv: str
    norm: str
    consumers: tuple[str, ...]


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, CompactedBatchNorm2d) or super().is_leaf_module(m, qualname)


def _passes(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return isinstance(modules[node.target], PASS_MODULES)
    return ((node.op == "call_function" and node.target in PASS_FUNCTIONS)
            or (node.op == "call_method" and node.target in PASS_METHODS))


def _weighted(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    return node.op == "call_module" and isinstance(modules[node.target], (nn.Conv2d, nn.Linear))


def _consumers(norm: fx.Node, modules: dict[str, nn.Module]) -> tuple[str, ...]:
    found, frontier = [], [norm]
    while frontier:
        node = frontier.pop()
        for user in node.users:
            if _weighted(user, modules) and getattr(modules[user.target], "groups", 1) == 1:
                found.append(user.target)
            elif _passes(user, modules):
                frontier.append(user)
            else:
                raise ValueError(f"resrep: the channels of {norm.target} reach {user.name} "
                                 f"({user.op} {user.target}); only element-wise activations may "
                                 f"sit between a pruned layer and the convs that read it")
    if not found:
        raise ValueError(f"resrep: no conv or linear reads the channels of {norm.target}")
    return tuple(dict.fromkeys(found))


def _graph(model: nn.Module) -> tuple[fx.GraphModule, dict[str, nn.Module]]:
    return fx.GraphModule(model, _Tracer().trace(model)), dict(model.named_modules())


def pruned_layers(model: nn.Module) -> tuple[PrunedLayer, ...]:
    """Every compactor of ``model`` in the order of its channel plan (construction order)."""
    graph, modules = _graph(model)
    layers = {}
    for node in graph.graph.nodes:
        if node.op != "call_module" or not isinstance(modules[node.target], CompactedBatchNorm2d):
            continue
        src = node.args[0]
        conv = modules.get(src.target) if isinstance(src, fx.Node) else None
        if (not isinstance(conv, nn.Conv2d) or src.op != "call_module" or conv.groups != 1
                or conv.bias is not None or len(src.users) != 1):
            raise ValueError(f"resrep: {node.target} must follow a bias-free conv (groups 1) "
                             f"that it alone reads")
        layers[node.target] = PrunedLayer(src.target, node.target, _consumers(node, modules))
    return tuple(layers[name] for name in modules if name in layers)


def compactors(model: nn.Module) -> list[Compactor]:
    return [m for m in model.modules() if isinstance(m, Compactor)]


# --- FLOPs as a function of the pruned widths -------------------------------------------------
@dataclass(frozen=True)
class FlopsModel:
    """Conv + linear MACs per image (no x2, BN/ReLU/add/pool free: docs/methods.md, ResRep: FLOPs)
    as a function of the pruned layers' widths: a constant plus ``coefficient · in · out`` per layer
    that reads or writes a pruned width, where ``in`` / ``out`` are that width (index >= 0) or
    fixed.
    """

    fixed_macs: int
    coefficient: np.ndarray  # kh·kw·oh·ow (1 for a linear)
    in_layer: np.ndarray  # index of the pruned layer whose channels it reads, -1: none
    in_fixed: np.ndarray
    out_layer: np.ndarray  # index of the pruned layer it is, -1: none
    out_fixed: np.ndarray
    full_widths: np.ndarray

    def macs(self, widths) -> int:
        widths = np.asarray(widths, dtype=np.int64)
        ins = np.where(self.in_layer >= 0, widths[self.in_layer], self.in_fixed)
        outs = np.where(self.out_layer >= 0, widths[self.out_layer], self.out_fixed)
        return self.fixed_macs + int((self.coefficient * ins * outs).sum())


def flops_model(model: nn.Module, input_shape: tuple[int, int, int],
                layers: tuple[PrunedLayer, ...], scale: dict[str, int] | None = None
                ) -> FlopsModel:
    """The ``FlopsModel`` of ``model`` on (C, H, W) inputs; shapes from one batch-1 run.

    ``scale`` multiplies the MACs of the named layers (to mimic another counter's quirks).
    """
    scale = scale or {}
    graph, modules = _graph(model)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            device = next(model.parameters()).device
            ShapeProp(graph).propagate(torch.zeros(1, *input_shape, device=device))
    finally:
        model.train(was_training)
    norm_index = {layer.norm: i for i, layer in enumerate(layers)}
    conv_index = {layer.conv: i for i, layer in enumerate(layers)}
    fixed, terms = 0, []
    for node in graph.graph.nodes:
        if not _weighted(node, modules):
            continue
        module = modules[node.target]
        if isinstance(module, nn.Linear):
            spatial, channels_in, channels_out, groups = 1, module.in_features, \
                module.out_features, 1
        else:
            oh, ow = node.meta["tensor_meta"].shape[2:]
            spatial = module.kernel_size[0] * module.kernel_size[1] * oh * ow
            channels_in, channels_out, groups = module.in_channels, module.out_channels, \
                module.groups
        spatial *= scale.get(node.target, 1)
        src = node.args[0]
        while _passes(src, modules):
            src = src.args[0]
        reads = norm_index.get(src.target, -1) if src.op == "call_module" else -1
        writes = conv_index.get(node.target, -1)
        if reads < 0 and writes < 0:
            fixed += spatial * channels_in // groups * channels_out
        else:
            terms.append((spatial, reads, channels_in, writes, channels_out))
    columns = np.array(terms, dtype=np.int64).reshape(-1, 5).T
    full = np.array([modules[layer.conv].out_channels for layer in layers], dtype=np.int64)
    return FlopsModel(fixed, *columns, full)


# --- training: penalty gradients and the mask schedule ---------------------------------------
@torch.no_grad()
def penalty_gradients(compactor_list: list[Compactor], lasso_strength: float) -> None:
    """After ``backward()``: grad Q[j] = mask[j]·dL/dQ[j] + λ·Q[j]/||Q[j]|| (ResRep: update rule).

    The rule is in docs/methods.md, ResRep: update rule.

    Masked rows see only the group-lasso term, so their norm shrinks every step.
    """
    for compactor in compactor_list:
        weight = compactor.weight
        rows = weight.flatten(1)
        lasso = lasso_strength * rows / rows.norm(dim=1, keepdim=True).clamp_min(1e-12)
        grad = weight.grad.flatten(1) if weight.grad is not None else torch.zeros_like(rows)
        weight.grad = (grad * compactor.mask[:, None] + lasso).view_as(weight)


def rounded_widths(counts: np.ndarray, full: np.ndarray, multiple: int) -> np.ndarray:
    """Widths rounded up to a multiple of ``multiple``, at most the full widths."""
    return np.minimum(full, -(-counts // multiple) * multiple)


def select_masks(norms: list[np.ndarray], masks: list[np.ndarray], flops: FlopsModel,
                 target: float, granularity: int = 4, num_at_least: int = 1,
                 width_multiple: int = 1) -> list[np.ndarray]:
    """New keep-masks (bool per channel) from the compactor row ``norms`` (ResRep's schedule).

    The schedule is in docs/methods.md, ResRep: mask schedule.

    Channels are ranked globally by norm, smallest first, and removed from their layer (never
    below ``num_at_least``) until the conv + linear MACs fall to ``target`` x the full
    network's. While the current masks (``masks``) miss the target, the walk down the ranking
    stops ``granularity`` positions past the number they mask (a channel skipped for
    ``num_at_least`` takes a position, as in the seed), so pruning advances gradually; once
    it is met, the masked set is the smallest-norm channels just enough for the target
    (earlier choices can be undone). ``width_multiple`` > 1 keeps every width a multiple of
    it (or the full width), e.g. the array's columns: a layer sheds channels a whole multiple
    at a time (so one update may add up to a multiple), its smallest-norm ones.
    """
    full = np.array([len(n) for n in norms], dtype=np.int64)
    budget = target * flops.macs(full)
    current = np.array([int(np.count_nonzero(m)) for m in masks], dtype=np.int64)
    masked_now = int((full - current).sum())
    limit = masked_now + granularity if flops.macs(current) > budget else math.inf
    layer_of = np.concatenate([np.full(len(n), i) for i, n in enumerate(norms)])
    channel_of = np.concatenate([np.arange(len(n)) for n in norms])
    order = np.argsort(np.concatenate(norms), kind="stable")
    attempt, chosen = full.copy(), [[] for _ in norms]
    widths = full
    skipped = 0
    for index in order:
        if flops.macs(widths) <= budget:
            break
        layer = layer_of[index]
        if attempt[layer] <= num_at_least:
            skipped += 1
            continue
        attempt[layer] -= 1
        chosen[layer].append(channel_of[index])
        widths = rounded_widths(attempt, full, width_multiple)
        # The seed's walk position; rounded, only channels the widths actually shed count.
        if (full - widths).sum() + skipped >= limit:
            break
    keeps = []
    for layer, n in enumerate(norms):
        keep = np.ones(len(n), dtype=bool)
        keep[chosen[layer][:full[layer] - widths[layer]]] = False
        keeps.append(keep)
    return keeps


# --- conversion ------------------------------------------------------------------------------
@torch.no_grad()
def converted_state(model: nn.Module, layers: tuple[PrunedLayer, ...]
                    ) -> tuple[list[int], dict[str, torch.Tensor], float]:
    """State dict of the converted network, its channel plan and the largest dropped row norm.

    Per pruned layer (docs/methods.md, ResRep: conversion): fold BN into the conv (K'[o] =
    K[o]·γ/√(var+eps), b' = β − mean·γ/√(var+eps)), keep the compactor's unmasked rows Q', fold it
    in (K'' = Q'·K', b'' = Q'·b') and drop the matching input channels of every consumer. Exact when
    the dropped rows are zero; the returned norm says how far from that they are. Computed in
    float64.
    """
    modules = dict(model.named_modules())
    state = {k: v.clone() for k, v in model.state_dict().items()}
    plan, dropped_norm = [], 0.0
    for layer in layers:
        norm = modules[layer.norm]
        compactor = norm.compactor
        keep = compactor.kept()
        dropped = torch.ones(len(compactor.mask), dtype=torch.bool, device=keep.device)
        dropped[keep] = False
        if dropped.any():
            dropped_norm = max(dropped_norm, float(compactor.row_norms()[dropped].max()))
        weight = state[f"{layer.conv}.weight"]
        scale = norm.weight.double() / torch.sqrt(norm.running_var.double() + norm.eps)
        folded = weight.double() * scale.view(-1, 1, 1, 1)
        bias = norm.bias.double() - norm.running_mean.double() * scale
        rows = compactor.weight.double().flatten(1)[keep]
        state[f"{layer.conv}.weight"] = torch.einsum("jo,ochw->jchw", rows, folded).to(
            weight.dtype)
        state[f"{layer.conv}.bias"] = (rows @ bias).to(weight.dtype)
        for key in [k for k in state if k.startswith(f"{layer.norm}.")]:
            del state[key]
        for consumer in layer.consumers:
            state[f"{consumer}.weight"] = state[f"{consumer}.weight"][:, keep].contiguous()
        plan.append(len(keep))
    return plan, state, dropped_norm
