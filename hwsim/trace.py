"""nn.Module → LayerGraph: one Layer per compute op, shapes read from a run of the model.

The model is traced with torch.fx (modules that define ``hw_stats()`` are kept as leaves) and
run once on a batch-1 input to read every tensor shape. Convs, linears, pooling modules and
functions, residual adds and concats become layers; everything else (activations, flatten,
slicing, padding) is data routing. A BatchNorm right after a conv is folded into it (the conv
gains a bias); a BatchNorm that follows anything else (pre-activation DenseNet) is an
element-wise scale folded into the consumer and costs nothing here.

Compressed modules describe themselves through ``hw_stats()`` (keys are Layer fields); dynamic
statistics (gating densities) are read after the calibration batches ran through the model.

Channel pruning before conversion (ResRep): a module after a conv that defines
``hw_kept_channels()`` (ResRep's BatchNorm + compactor) folds into the conv at deployment,
keeping only that many of its channels. The conv is costed with those output channels and
every layer reading them (through element-wise routing such as ReLU) with that many input
channels, so an unconverted network costs what its converted form does.
"""

import dataclasses
import math
import operator

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F
from torch.fx.passes.shape_prop import _extract_tensor_metadata

from .layer import Layer, LayerGraph

LAYER_FIELDS = {f.name for f in dataclasses.fields(Layer)}
# hw_stats keys that describe the module itself, not the traced shape.
STAT_FIELDS = LAYER_FIELDS - {"name", "op", "batch", "in_channels", "out_channels", "in_hw",
                              "out_hw", "kernel_size", "stride", "padding", "groups", "inputs"}
POOL_MODULES = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
POOL_FUNCTIONS = (F.max_pool2d, F.avg_pool2d, F.adaptive_avg_pool2d, F.adaptive_max_pool2d)
ADD_FUNCTIONS = (operator.add, operator.iadd, torch.add)
CONCAT_FUNCTIONS = (torch.cat, torch.concat)
FOLD_NOTE = "BatchNorm folded into the preceding conv (adds a bias); other BatchNorms are free"
UNCALIBRATED_NOTE = ("dynamic statistics NOT measured (no calibration data): gated layers "
                     "report their dense defaults (densities 1.0); pass calibration batches")
STORAGE_RULE = ("stored bits: hw_stats() of compressed modules (MLG factors, quantized FC), "
                "32 bits per parameter elsewhere; BN running statistics not counted; ratios "
                "against the same architecture at 32 bits")


MAX_BATCH = 2 ** 20
MAX_BITS = 32
MAX_INPUT_VALUES = 2 ** 25  # C·H·W; shapes are read from a real batch-1 run of the model


class _LeafTracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return (hasattr(m, "hw_stats") or hasattr(m, "hw_kept_channels")
                or super().is_leaf_module(m, qualname))


class _NodeFailed(Exception):
    """A node of the traced graph raised while shapes were propagated."""

    def __init__(self, node: fx.Node, input_shapes: list[tuple[int, ...]], error: Exception):
        super().__init__(str(error))
        self.node, self.input_shapes, self.error = node, input_shapes, error


class _ShapeProp(fx.Interpreter):
    """Runs the graph and records each tensor's metadata (as torch's ShapeProp, which prints
    a traceback on failure); a failing node raises ``_NodeFailed`` naming it and its inputs."""

    def run_node(self, n: fx.Node):
        try:
            result = super().run_node(n)
        except Exception as exc:  # torch raises RuntimeError, ValueError, IndexError, ...
            args, kwargs = self.fetch_args_kwargs_from_env(n)
            shapes = [tuple(a.shape) for a in (*args, *kwargs.values())
                      if isinstance(a, torch.Tensor)]
            raise _NodeFailed(n, shapes, exc) from exc
        if isinstance(result, torch.Tensor):
            n.meta["tensor_meta"] = _extract_tensor_metadata(result)
        return result


def _expects(module: nn.Module | None) -> str:
    """What ``module`` needs of its input, in words."""
    if module is None:
        return ""
    if hasattr(module, "in_features"):
        return f", expects {module.in_features} input features"
    if hasattr(module, "in_channels"):
        return f", expects {module.in_channels} input channels"
    return ""


def _shape_error(name: str, input_shape: tuple[int, ...], graph_module: fx.GraphModule,
                 failed: _NodeFailed) -> ValueError:
    node, error = failed.node, failed.error
    module = graph_module.get_submodule(node.target) if node.op == "call_module" else None
    where = node.target if module is not None else (_scope(node) or node.name)
    kind = type(module).__name__ if module is not None else getattr(
        node.target, "__name__", str(node.target))
    given = ", ".join(str(shape) for shape in failed.input_shapes) or "none"
    reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
    if isinstance(error, MemoryError) or "memory" in reason.lower():
        return ValueError(f"trace: input shape {input_shape} is too large for {name}: layer "
                          f"{where} ({kind}) ran out of memory; give a smaller --input")
    return ValueError(f"trace: input shape {input_shape} does not fit {name}: layer {where} "
                      f"({kind}{_expects(module)}) got input {given} ({reason})")


def _check_int(key: str, value, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"trace: {key} must be an integer in {low}..{high}, got {value!r}")


def _pair(value) -> tuple[int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (int(value), int(value))


def _shape(node) -> tuple[int, ...] | None:
    meta = node.meta.get("tensor_meta") if isinstance(node, fx.Node) else None
    return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None


def _hw(shape: tuple[int, ...]) -> tuple[int, int]:
    return (shape[2], shape[3]) if len(shape) == 4 else (1, 1)


def _scope(node: fx.Node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    return list(stack)[-1] if stack else ""


def _module_layer(name: str, module: nn.Module, in_shape, out_shape, batch: int, bits: dict):
    """Layer for a conv / linear / pooling module, or None for data routing."""
    if isinstance(module, nn.Linear) or (hasattr(module, "in_features")
                                         and hasattr(module, "out_features")):
        return Layer(name, "linear", batch, module.in_features, module.out_features, (1, 1), (1, 1),
                     bias=getattr(module, "bias", None) is not None, **bits)
    if isinstance(module, nn.Conv2d) or (hasattr(module, "in_channels")
                                         and hasattr(module, "kernel_size")):
        return Layer(name, "conv", batch, module.in_channels, module.out_channels, _hw(in_shape),
                     _hw(out_shape), _pair(module.kernel_size), _pair(module.stride),
                     _pair(module.padding), module.groups,
                     bias=getattr(module, "bias", None) is not None, **bits)
    if isinstance(module, POOL_MODULES):
        return _pool_layer(name, in_shape, out_shape, batch, bits,
                           getattr(module, "kernel_size", None), getattr(module, "stride", None),
                           getattr(module, "padding", 0))
    if hasattr(module, "hw_stats"):
        raise ValueError(f"trace: module {name} ({type(module).__name__}) defines hw_stats() but "
                         f"is neither conv-like (in_channels, kernel_size) nor linear-like")
    return None


def _pool_layer(name, in_shape, out_shape, batch, bits, kernel_size, stride, padding):
    in_hw, out_hw = _hw(in_shape), _hw(out_shape)
    if kernel_size is None:  # adaptive pooling: the window that maps in_hw onto out_hw
        kernel_size = tuple(-(-i // o) for i, o in zip(in_hw, out_hw))
        stride = tuple(i // o for i, o in zip(in_hw, out_hw))
    kernel_size = _pair(kernel_size)
    return Layer(name, "pool", batch, in_shape[1], out_shape[1], in_hw, out_hw, kernel_size,
                 _pair(stride or kernel_size), _pair(padding), groups=in_shape[1], **bits)


def _function_layer(name: str, node: fx.Node, out_shape, tensor_inputs, batch: int, bits: dict):
    if node.target in ADD_FUNCTIONS or (node.op == "call_method" and node.target in ("add",
                                                                                     "add_")):
        if len(tensor_inputs) < 2:
            return None  # adding a constant is element-wise routing
        c = out_shape[1]
        return Layer(name, "add", batch, c, c, _hw(out_shape), _hw(out_shape), groups=c, **bits)
    if node.target in CONCAT_FUNCTIONS:
        return Layer(name, "concat", batch, out_shape[1], out_shape[1], _hw(out_shape),
                     _hw(out_shape), **bits)
    if node.target in POOL_FUNCTIONS:
        in_shape = _shape(tensor_inputs[0])
        args = list(node.args[1:]) + [None, None, None]
        kernel = node.kwargs.get("kernel_size", args[0])
        if node.target in (F.adaptive_avg_pool2d, F.adaptive_max_pool2d):
            kernel = None
        stride = node.kwargs.get("stride", args[1])
        padding = node.kwargs.get("padding", args[2] or 0)
        return _pool_layer(name, in_shape, out_shape, batch, bits, kernel, stride, padding)
    return None


def _prune_producer(node, module, src, layers, module_of, pruned) -> None:
    """Narrow the conv before a pruning normalization to its ``hw_kept_channels()``; append
    (kept, traced) channels to ``pruned``."""
    index = module_of.get(src) if src is not None else None
    layer = layers[index][0] if index is not None else None
    if layer is None or layer.op != "conv" or layer.groups != 1 or len(src.users) != 1:
        raise ValueError(f"trace: {node.target} prunes channels but does not follow a conv "
                         f"(groups 1) that it alone reads")
    count = int(module.hw_kept_channels())
    if not 1 <= count <= layer.out_channels:
        raise ValueError(f"trace: {node.target}.hw_kept_channels() must lie in 1.."
                         f"{layer.out_channels}, got {count}")
    pruned.append((count, layer.out_channels))
    layers[index][0] = dataclasses.replace(layer, out_channels=count)


def _pruning_note(pruned: list[tuple[int, int]]) -> str:
    kept, traced = (sum(column) for column in zip(*pruned))
    where = f"{traced} channels of the {len(pruned)} prunable convs"
    if kept == traced:  # e.g. resrep_* before training: flops_target acts in training
        return (f"channel pruning: all {where} kept (no channel masked yet: masks are set in "
                f"training), so this costs the unpruned network")
    return (f"channel pruning: {kept} of {where} kept; masked channels costed as removed, "
            f"as in the converted network")


def _pruned_inputs(node, layer, tensor_inputs, kept):
    """``layer`` reading the pruned channel count of its input; routing nodes pass it on."""
    counts = [kept[a] for a in tensor_inputs if a in kept]
    if not counts:
        return layer
    if layer is None:
        shape = _shape(node)
        if len(tensor_inputs) == 1 and shape is not None \
                and shape[1:2] == _shape(tensor_inputs[0])[1:2]:
            kept[node] = counts[0]
            return None
    elif layer.op in ("conv", "linear") and layer.groups == 1 and len(tensor_inputs) == 1:
        return dataclasses.replace(layer, in_channels=counts[0])
    raise ValueError(f"trace: pruned channels reach {node.name} ({node.target}), which neither "
                     f"passes them through element-wise nor is a conv / linear (groups 1) "
                     f"reading them")


def _merge_stats(layer: Layer, module: nn.Module, folded_bn: bool) -> Layer:
    stats = dict(module.hw_stats())
    unknown = set(stats) - STAT_FIELDS
    if unknown:
        raise ValueError(f"trace: {layer.name}.hw_stats() returned unknown key(s) "
                         f"{', '.join(sorted(unknown))}; allowed: {', '.join(sorted(STAT_FIELDS))}")
    if folded_bn and "weight_storage_bits" in stats and not layer.bias:
        # The folded BN bias travels with the compressed weights, at the weight precision.
        bits = stats.get("weight_bits", layer.weight_bits)
        stats["weight_storage_bits"] += layer.out_channels * bits
    return dataclasses.replace(layer, bias=layer.bias or folded_bn, **stats)


def _storage(model: nn.Module, layers_by_module: dict[str, Layer]) -> dict:
    """Model storage by the seeds' rule (docs/methods.md, MLG: storage) against all-fp32."""
    params = dense_params = stored_bits = 0
    for name, module in model.named_modules():
        own = sum(p.numel() for p in module.parameters(recurse=False))
        if own == 0:
            continue
        stats = module.hw_stats() if hasattr(module, "hw_stats") else {}
        if "stored_params" in stats and "weight_storage_bits" in stats:
            layer = layers_by_module[name]
            bias = getattr(module, "bias", None)
            dense_params += layer.weight_count + (bias.numel() if bias is not None else 0)
            params += stats["stored_params"]
            stored_bits += stats["weight_storage_bits"]
        else:
            dense_params += own
            params += own
            stored_bits += 32 * own
    fp32_bits = 32 * dense_params
    return {"stored_params": params, "dense_params": dense_params, "stored_bits": stored_bits,
            "stored_bytes": stored_bits / 8, "fp32_bytes": fp32_bits / 8,
            "param_ratio": params / dense_params if dense_params else 1.0,
            "memory_ratio": stored_bits / fp32_bits if fp32_bits else 1.0,
            "rule": STORAGE_RULE}


def _calibrate(model: nn.Module, calib, name: str) -> tuple[int, int] | None:
    """Reset the dynamic statistics, then run ``calib`` through the model (eval, no grad).

    Returns (batches, images) seen, None when no module keeps dynamic statistics. Without
    ``calib`` the statistics stay empty (the shape pass's zeros are not data), so such modules
    report their uncalibrated defaults.
    """
    stateful = [m for m in model.modules() if hasattr(m, "reset_hw_stats")]
    for module in stateful:
        module.reset_hw_stats()
    if not stateful and calib is None:
        return None
    batches = images = 0
    for inputs in calib or ():
        inputs = inputs[0] if isinstance(inputs, (tuple, list)) else inputs
        try:
            model(inputs)
        except RuntimeError as exc:
            raise ValueError(f"trace: a calibration batch of shape {tuple(inputs.shape)} does "
                             f"not fit {name} ({str(exc).splitlines()[0]})") from None
        batches, images = batches + 1, images + inputs.shape[0]
    return batches, images


def _calibration_note(calibrated: tuple[int, int]) -> str:
    batches, images = calibrated
    if not images:
        return UNCALIBRATED_NOTE
    return (f"dynamic statistics (gate densities) measured on {images} calibration images "
            f"({batches} batches)")


def trace(model: nn.Module, input_shape: tuple[int, ...], calib=None, batch: int | None = None,
          weight_bits: int = 8, act_bits: int = 8, name: str | None = None) -> LayerGraph:
    """Trace ``model`` on inputs of ``input_shape`` ((C, H, W) or (N, C, H, W)) into a LayerGraph.

    ``batch`` (default: N of a 4-d shape, else 1) is the batch the hardware runs. ``weight_bits``
    and ``act_bits`` are the precisions of layers whose ``hw_stats()`` do not set their own.
    ``calib`` is an iterable of input batches (or (inputs, labels) pairs) run through the model
    (eval mode, no grad) before ``hw_stats()`` is read, so dynamic statistics come from real
    data; modules that keep such statistics define ``reset_hw_stats()``, called first (also
    without ``calib``: then they report uncalibrated defaults, and a note says so).
    """
    given_shape = tuple(input_shape)
    if len(given_shape) == 4:
        batch = batch or given_shape[0]
        given_shape = given_shape[1:]
    if len(given_shape) != 3 or not all(
            isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in given_shape):
        raise ValueError(f"trace: input_shape must be (C, H, W) or (N, C, H, W) with positive "
                         f"integer sizes, got {tuple(input_shape)}")
    input_shape = given_shape
    if math.prod(input_shape) > MAX_INPUT_VALUES:
        raise ValueError(f"trace: input shape {input_shape} is too large: C·H·W must be at most "
                         f"{MAX_INPUT_VALUES}, got {math.prod(input_shape)}")
    batch = batch or 1
    _check_int("batch", batch, 1, MAX_BATCH)
    _check_int("weight_bits", weight_bits, 1, MAX_BITS)
    _check_int("act_bits", act_bits, 1, MAX_BITS)
    name = name or getattr(model, "name", type(model).__name__)
    bits = {"weight_bits": weight_bits, "act_bits": act_bits, "out_bits": act_bits}
    was_training = model.training
    model.eval()
    try:
        try:
            graph_module = fx.GraphModule(model, _LeafTracer().trace(model))
        except Exception as exc:  # fx raises many types on untraceable Python control flow
            raise ValueError(f"trace: torch.fx cannot trace {name}: "
                             f"{str(exc).splitlines()[0]}") from None
        with torch.no_grad():
            # Batch 1 is enough to read shapes; the hardware batch is a Layer field.
            try:
                _ShapeProp(graph_module).run(torch.zeros(1, *input_shape))
            except _NodeFailed as failed:
                raise _shape_error(name, input_shape, graph_module, failed) from None
            calibrated = _calibrate(model, calib, name)
        layers, producers, module_of, folded = [], {}, {}, set()
        kept: dict[fx.Node, int] = {}  # nodes carrying fewer channels than traced (pruning)
        pruned: list[tuple[int, int]] = []  # (kept, traced) channels per pruned conv
        names_seen: dict[str, int] = {}
        for node in graph_module.graph.nodes:
            tensor_inputs = [a for a in node.all_input_nodes if _shape(a) is not None]
            sources = tuple(dict.fromkeys(s for a in tensor_inputs for s in producers.get(a, ())))
            if node.op == "placeholder":
                producers[node] = ("input",)
                continue
            out_shape = _shape(node)
            layer = None
            if node.op == "call_module":
                module = graph_module.get_submodule(node.target)
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    src = tensor_inputs[0] if tensor_inputs else None
                    # Fold only when the BN is the conv's sole consumer: a conv output that
                    # also feeds a concat (pre-activation DenseNet) must stay un-normalized.
                    if (src is not None and src in module_of and len(src.users) == 1
                            and module_of[src] not in folded):
                        folded.add(module_of[src])
                if hasattr(module, "hw_kept_channels"):
                    src = tensor_inputs[0] if tensor_inputs else None
                    _prune_producer(node, module, src, layers, module_of, pruned)
                    kept[node] = layers[module_of[src]][0].out_channels
                layer = _module_layer(node.target, module, _shape(tensor_inputs[0]), out_shape,
                                      batch, bits) if tensor_inputs else None
            elif node.op in ("call_function", "call_method") and out_shape is not None:
                scope = _scope(node)
                target = node.target if isinstance(node.target, str) else node.target.__name__
                base = f"{scope}.{target}"
                layer = _function_layer(base.lstrip("."), node, out_shape, tensor_inputs, batch,
                                        bits)
            layer = _pruned_inputs(node, layer, tensor_inputs, kept)
            if layer is None:
                producers[node] = sources
                continue
            count = names_seen.get(layer.name, 0)
            names_seen[layer.name] = count + 1
            if count:
                layer = dataclasses.replace(layer, name=f"{layer.name}:{count}")
            layer = dataclasses.replace(layer, inputs=sources)
            producers[node] = (layer.name,)
            if node.op == "call_module":
                module_of[node] = len(layers)
            layers.append([layer, node])
    finally:
        model.train(was_training)
    final, by_module = [], {}
    for index, (layer, node) in enumerate(layers):
        if node.op == "call_module":
            module = graph_module.get_submodule(node.target)
            if hasattr(module, "hw_stats"):
                layer = _merge_stats(layer, module, index in folded)
            elif index in folded:
                layer = dataclasses.replace(layer, bias=True)
            by_module.setdefault(node.target, layer)
        final.append(layer)
    notes = ((FOLD_NOTE,) if folded else ()) + (
        () if calibrated is None else (_calibration_note(calibrated),)) + (
        (_pruning_note(pruned),) if pruned else ())
    return LayerGraph(name, (batch, *input_shape), tuple(final), _storage(model, by_module),
                      notes)
