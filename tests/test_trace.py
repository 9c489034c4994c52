"""Tracer: layer kinds, shapes, edges, BN folding, hw_stats() merging, calibration, errors."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import models
from hwsim import Layer, trace


class _Gated(nn.Conv2d):
    """A conv that reports a measured density, counting the calibration batches it saw."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen = 0

    def reset_hw_stats(self):
        self.seen = 0

    def forward(self, x):
        self.seen += x.shape[0]
        return super().forward(x)

    def hw_stats(self):
        return {"mac_density": 1.0 / (1 + self.seen), "act_bits": 4}


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = _Gated(2, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.side = nn.Conv2d(2, 4, 1)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        a = F.relu(self.bn(self.conv(x)))
        b = self.side(x)
        y = torch.cat([a + b, b], 1)
        y = F.max_pool2d(y, 2)
        return self.fc(F.adaptive_avg_pool2d(y, 1).flatten(1))


def test_layer_kinds_shapes_and_edges():
    graph = trace(_Net(), (2, 8, 8), batch=3)
    ops = [(layer.name, layer.op) for layer in graph.layers]
    assert ops == [("conv", "conv"), ("side", "conv"), ("add", "add"), ("cat", "concat"),
                   ("max_pool2d", "pool"), ("adaptive_avg_pool2d", "pool"), ("fc", "linear")]
    add, cat, pool, gap = (graph[n] for n in ("add", "cat", "max_pool2d", "adaptive_avg_pool2d"))
    assert add.inputs == ("conv", "side") and add.num_inputs == 2
    assert cat.inputs == ("add", "side") and cat.in_channels == 8
    assert pool.in_hw == (8, 8) and pool.out_hw == (4, 4) and pool.kernel_size == (2, 2)
    assert gap.kernel_size == (4, 4) and gap.out_hw == (1, 1)
    assert graph["conv"].batch == 3 and graph["conv"].macs == 3 * 8 * 8 * 4 * 2 * 9
    assert graph["conv"].bias and graph["side"].bias  # BN folded / own bias
    assert graph.notes and "folded" in graph.notes[0]


def test_hw_stats_merge_and_calibration():
    net = _Net()
    graph = trace(net, (2, 8, 8))
    assert graph["conv"].act_bits == 4  # from hw_stats, over the default 8
    assert graph["side"].act_bits == 8
    calib = [torch.randn(5, 2, 8, 8), (torch.randn(3, 2, 8, 8), torch.zeros(3))]
    graph = trace(net, (2, 8, 8), calib=calib)
    assert graph["conv"].mac_density == pytest.approx(1 / 9)  # reset, then 5 + 3 samples


def test_hw_stats_unknown_key_is_an_error():
    class Bad(nn.Conv2d):
        def hw_stats(self):
            return {"weight_bitz": 4}

    with pytest.raises(ValueError, match=r"0\.hw_stats\(\) returned unknown key\(s\) weight_bitz"):
        trace(nn.Sequential(Bad(1, 1, 1)), (1, 4, 4))


def test_compressed_storage_counts_hw_stats():
    class Compressed(nn.Conv2d):
        def hw_stats(self):
            return {"weight_storage_bits": 100, "stored_params": 25}

    model = nn.Sequential(Compressed(2, 4, 3, bias=False), nn.Conv2d(4, 4, 1, bias=False))
    graph = trace(model, (2, 6, 6))
    dense = 4 * 2 * 9 + 4 * 4
    assert graph.storage["stored_params"] == 25 + 16 and graph.storage["dense_params"] == dense
    assert graph.storage["memory_ratio"] == pytest.approx((100 + 32 * 16) / (32 * dense))
    assert graph["0"].weight_bytes == 100 / 8
    assert graph["1"].weight_bytes == 16  # dense, 8-bit default


def test_bn_after_shared_conv_output_is_not_folded():
    graph = trace(models.create_model("densenet121", width=0.125), (3, 32, 32))
    stem = graph["conv1"]  # feeds both a BN and the first concat
    assert not stem.bias


def test_input_shape_validation_and_batch_from_shape():
    with pytest.raises(ValueError, match="input_shape must be"):
        trace(nn.Conv2d(1, 1, 1), (1, 4))
    graph = trace(nn.Sequential(nn.Conv2d(1, 2, 1)), (4, 1, 5, 5))
    assert graph.input_shape == (4, 1, 5, 5) and graph.layers[0].batch == 4


def test_untraceable_model_is_a_clear_error():
    class Branchy(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    with pytest.raises(ValueError, match="torch.fx cannot trace"):
        trace(Branchy(), (1, 2, 2))


def test_layer_validation_and_replace_keeps_counts_consistent():
    import dataclasses

    layer = Layer("c", "conv", 1, 4, 8, (4, 4), (4, 4), (3, 3), groups=2)
    assert layer.reduction_size == 18 and layer.weight_count == 144
    wider = dataclasses.replace(layer, bias=True, weight_bits=4)
    assert wider.stored_weight_bits == (144 + 8) * 4
    with pytest.raises(ValueError, match="groups=3 must divide"):
        Layer("c", "conv", 1, 4, 8, (4, 4), (4, 4), groups=3)
    with pytest.raises(ValueError, match="op must be one of"):
        Layer("c", "matmul", 1, 4, 8, (1, 1), (1, 1))
