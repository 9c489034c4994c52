"""Every registered model builds, runs and traces; traced MACs and params match oracles.

Oracles: ``torch.utils.flop_counter.FlopCounterMode`` counts the FLOPs PyTorch's convolution and
addmm (classifier) kernels perform (2 per multiply-accumulate, so MACs = FLOPs / 2); params
are ``sum(p.numel())`` over the module, with BatchNorm's γ/β replaced by one folded bias per conv
that a BN follows. Published figures pin the two reference networks.
"""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import models
from hwsim import trace

# Small widths keep the suite fast; full-width checks are pinned below by published figures.
TEST_KWARGS = {"densenet121": {"width": 0.25}, "mobilenetv2": {"width": 0.25},
               "resnet50": {"width": 0.25}, "resnet56": {"width": 0.5},
               "mlg_densenet121": {"width": 0.125}, "mlg_mobilenetv2": {"width": 0.125},
               "mlg_resnet18": {"width": 0.25},
               # Converted: unconverted compactors fold into the conv at deployment, so the
               # tracer does not cost them but FlopCounterMode counts them (test_resrep.py).
               "resrep_resnet20": {"converted": True},
               "resrep_resnet56": {"width": 0.5, "converted": True},
               "resrep_resnet50": {"width": 0.25, "converted": True}}
# Gated layers simulate both of their paths with dense convs; the MACs the hardware is charged
# before gating (graph.macs) are those of the same network built with plain convs.
PLAIN_ORACLE = {"pg_resnet20": "resnet20", "cg_resnet20": "resnet20",
                "cg_resnet20_postact": "resnet20"}


def _oracle_macs(model, shape, batch=2):
    """Conv + classifier MACs as PyTorch counts them (weight generation matmuls excluded)."""
    model.eval()
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(batch, *shape))
    flops = counter.get_flop_counts()["Global"]
    return (flops.get(torch.ops.aten.convolution, 0) + flops.get(torch.ops.aten.addmm, 0)) // 2


def _small_shape(name, kwargs):
    shape = models.default_input_shape(name, kwargs.get("in_channels"))
    return shape if shape[1] <= 64 else (shape[0], 64, 64)


@pytest.mark.parametrize("name", models.list_models())
def test_model_traces_and_macs_match_pytorch_counter(name):
    kwargs = {**TEST_KWARGS.get(name, {}), "num_classes": 7}
    model = models.create_model(name, **kwargs)
    shape = _small_shape(name, kwargs)
    graph = trace(model, shape, batch=2, name=name)
    out = model.eval()(torch.randn(2, *shape))
    assert out.shape == (2, 7)
    oracle = models.create_model(PLAIN_ORACLE[name], **kwargs) if name in PLAIN_ORACLE else model
    assert graph.macs == _oracle_macs(oracle, shape)
    assert graph.layers[-1].op == "linear" and graph.layers[-1].out_channels == 7
    names = {layer.name for layer in graph.layers} | {"input"}
    for layer in graph.layers:  # every edge points at an earlier layer or the input
        assert layer.inputs and set(layer.inputs) <= names


@pytest.mark.parametrize("name,shape,macs,params", [
    ("resnet18", (3, 32, 32), 555_422_720, 11_173_962),     # issue #2; kuangliu CIFAR ResNet-18
    ("resnet50", (3, 224, 224), 4_089_184_256, 25_557_032),  # torchvision resnet50 figures
    ("resnet20", (3, 32, 32), 40_551_040, 269_722),           # He et al.: 0.27M params
    ("resnet56", (3, 32, 32), 125_485_696, 853_018),          # He et al.: 0.85M params
])
def test_reference_networks_exact(name, shape, macs, params):
    model = models.create_model(name)
    graph = trace(model, shape)
    assert graph.macs == macs
    assert graph.storage["stored_params"] == params == sum(p.numel() for p in model.parameters())
    assert graph.storage["memory_ratio"] == 1.0


def test_mobilenetv2_is_the_papers_architecture():
    """Sandler et al. 2018, Table 2: the expansion-1 block has no 1x1 expansion conv. Params
    equal torchvision's mobilenet_v2 (3,504,872 with 1000 classes); MACs are a hand count
    from the paper's table with the CIFAR strides (stem and second stage at stride 1)."""
    assert sum(p.numel() for p in models.create_model(
        "mobilenetv2", num_classes=1000).parameters()) == 3_504_872
    table = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
             (6, 160, 3, 2), (6, 320, 1, 1)]  # expansion t, channels c, blocks n, stride s
    size, channels = 32, 32
    macs = size * size * 3 * 9 * channels  # 3x3 stem
    for t, out, n, s in table:
        for i in range(n):
            hidden, stride = channels * t, (s if i == 0 else 1)
            macs += size * size * channels * hidden if t != 1 else 0  # 1x1 expansion
            size //= stride
            macs += size * size * hidden * 9 + size * size * hidden * out  # depthwise, project
            channels = out
    macs += size * size * channels * 1280 + 1280 * 10  # 1x1 head, classifier
    model = models.create_model("mobilenetv2")
    assert trace(model, (3, 32, 32)).macs == macs == 87_976_448
    assert not hasattr(model.blocks[0], "conv1")


def test_folded_params_equal_module_count():
    model = models.create_model("resnet20", width=0.5)
    graph = trace(model, (3, 32, 32))
    bn_channels = sum(m.num_features for m in model.modules()
                      if isinstance(m, torch.nn.BatchNorm2d))
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    # every BN follows a conv here, so BN (γ, β) → one bias per output channel
    assert graph.folded_params == sum(p.numel() for p in model.parameters()) - bn_channels
    assert sum(1 for layer in graph.layers if layer.op == "conv") == len(convs)


def test_shortcut_options_differ_only_by_projections():
    a = trace(models.create_model("resnet56", shortcut="A"), (3, 32, 32))
    b = trace(models.create_model("resnet56", shortcut="B"), (3, 32, 32))
    projections = [layer for layer in b.layers
                   if layer.kernel_size == (1, 1) and layer.op == "conv"]
    assert len(projections) == 2
    assert b.macs - a.macs == sum(layer.macs for layer in projections)


def test_unknown_model_lists_close_names():
    with pytest.raises(KeyError, match="did you mean resnet18"):
        models.create_model("resnet81")


def test_unknown_and_mistyped_kwargs():
    with pytest.raises(ValueError, match="unknown argument 'depth'"):
        models.create_model("resnet18", depth=3)
    with pytest.raises(ValueError, match="'num_classes' must be int"):
        models.create_model("resnet18", num_classes="ten")
    with pytest.raises(ValueError, match="shortcut must be one of A, B"):
        models.create_model("resnet20", shortcut="C")
