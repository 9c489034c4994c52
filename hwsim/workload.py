"""The workload as a struct of arrays: the per-layer numbers the mapper and the cost model
read, one array entry per layer (``LayerArrays``) or per candidate (``LayerView``), and the
input lines a run of output lines reads (``lines_read``), which both need.
"""

import dataclasses
from dataclasses import dataclass

import numpy as np

from .layer import Layer


@dataclass(frozen=True)
class LayerArrays:
    """Per-layer numbers the model needs, one array entry per layer (or per candidate).

    ``groups`` / ``filters`` / ``channels`` are the mapped GEMM dimensions: for pool / add /
    concat one group per channel with one filter of one channel. ``input_cols_read``: input
    columns one output row reads (a stride above the kernel skips columns);
    ``input_rows_read``: input rows the whole output reads, padding excluded.
    """

    groups: np.ndarray
    filters: np.ndarray
    channels: np.ndarray
    kernel_h: np.ndarray
    kernel_w: np.ndarray
    stride_h: np.ndarray
    pad_h: np.ndarray
    in_h: np.ndarray
    in_w: np.ndarray
    out_h: np.ndarray
    out_w: np.ndarray
    batch: np.ndarray
    weight_bits: np.ndarray
    act_bits: np.ndarray
    out_bits: np.ndarray
    accum_bits: np.ndarray
    num_inputs: np.ndarray
    in_channels: np.ndarray
    out_channels: np.ndarray
    is_vector: np.ndarray
    weight_bytes: np.ndarray
    dense_weight_bytes: np.ndarray
    input_bytes: np.ndarray
    output_bytes: np.ndarray
    output_elements: np.ndarray
    macs: np.ndarray
    vector_ops: np.ndarray
    mac_density: np.ndarray
    filter_density: np.ndarray
    gen_macs: np.ndarray
    gen_bits: np.ndarray
    pred_bits: np.ndarray
    lsb_density: np.ndarray
    factor_out_bits: np.ndarray
    factor_in_bits: np.ndarray
    factor_shared_bits: np.ndarray
    gen_in_macs: np.ndarray
    input_cols_read: np.ndarray
    input_rows_read: np.ndarray

    @property
    def kernel(self) -> np.ndarray:
        return self.kernel_h * self.kernel_w

    def per_layer(self, fn):
        """``fn(self)``: a figure of the layer fields alone (see ``LayerView.per_layer``)."""
        return fn(self)

    def per_key(self, key: np.ndarray, fn):
        """``fn(self, key)`` (see ``LayerView.per_key``)."""
        return fn(self, key)

    @classmethod
    def from_layers(cls, layers) -> "LayerArrays":
        rows = [_layer_row(layer) for layer in layers]
        table = np.array(rows, dtype=float).reshape(len(rows), len(_FIELDS))
        fields = {name: table[:, i] for i, name in enumerate(_FIELDS[:-2])}
        stride_w, pad_w = table[:, -2], table[:, -1]
        # The input lines the whole output reads, for all layers in one call each.
        fields["input_cols_read"] = lines_read(0, fields["out_w"], stride_w, fields["kernel_w"],
                                               pad_w, fields["in_w"])
        fields["input_rows_read"] = lines_read(0, fields["out_h"], fields["stride_h"],
                                               fields["kernel_h"], fields["pad_h"],
                                               fields["in_h"])
        return cls(**fields)

    def view(self, index: np.ndarray) -> "LayerView":
        """The entries at ``index`` (one per candidate), gathered field by field on first use."""
        return LayerView(self, index)


_FIELDS = tuple(f.name for f in dataclasses.fields(LayerArrays))


class LayerView:
    """``LayerArrays`` fields repeated per candidate, gathered lazily: the legality checks read
    a few fields of every candidate, the cost model all fields of the legal ones only."""

    def __init__(self, arrays: LayerArrays, index: np.ndarray, replaced: bool = False):
        self._arrays, self._index, self._replaced = arrays, index, replaced

    def __getattr__(self, name: str) -> np.ndarray:
        value = getattr(self._arrays, name)[self._index]
        setattr(self, name, value)
        return value

    @property
    def kernel(self) -> np.ndarray:
        return self.kernel_h * self.kernel_w

    def per_layer(self, fn):
        """``fn`` (elementwise over layer fields only) computed once per layer and gathered
        per candidate with its ``take``: the same figures as ``fn(self)`` at a fraction of the
        work."""
        if self._replaced:
            return fn(self)
        return fn(self._arrays).take(self._index)

    def per_key(self, key: np.ndarray, fn):
        """``fn(view, key)`` (elementwise over layer fields and ``key``, an integer per entry,
        e.g. a tile size) computed once per distinct (layer, key) pair and gathered per entry:
        the same figures as ``fn(self, key)``, for the few pairs many candidates share."""
        if self._replaced or not len(key):
            return fn(self, key)
        pair = self._index * (int(key.max()) + 1) + key
        _, first, inverse = np.unique(pair, return_index=True, return_inverse=True)
        return fn(LayerView(self._arrays, self._index[first]), key[first])[inverse]

    def replace(self, **values: np.ndarray) -> "LayerView":
        """The same view with some fields replaced (e.g. ``mac_density`` for the ungated run)."""
        out = LayerView(self._arrays, self._index, replaced=True)
        out.__dict__.update(values)
        return out


def clipped_sum(first, step, count, limit) -> np.ndarray:
    """Sum over j < count of clip(first + j * step, 0, limit), in closed form (step > 0)."""
    first, count = np.asarray(first, float), np.asarray(count, float)
    # np.minimum / np.maximum: np.clip's overhead dominates on arrays of a few thousand.
    low = np.minimum(np.maximum(np.floor(-first / step) + 1, 0), count)            # terms <= 0
    high = np.minimum(np.maximum(count - np.ceil((limit - first) / step), 0), count)  # >= limit
    mid = np.maximum(count - low - high, 0)
    middle = mid * first + step * (mid * low + mid * (mid - 1) / 2)
    return middle + high * limit


def lines_read(first_out, outs, stride, kernel, pad, size) -> np.ndarray:
    """Input lines (rows or columns, padding excluded) that ``outs`` output lines from
    ``first_out`` on read: one contiguous span when kernel >= stride, else disjoint windows."""
    start = first_out * stride - pad
    span = (np.minimum(np.maximum(start + (outs - 1) * stride + kernel, 0), size)
            - np.minimum(np.maximum(start, 0), size))
    windows = (clipped_sum(start + kernel, stride, outs, size)
               - clipped_sum(start, stride, outs, size))
    return np.where(outs > 0, np.where(kernel >= stride, span, windows), 0)


def _layer_row(layer: Layer) -> tuple:
    """The ``LayerArrays`` fields of one layer but the input lines read (``from_layers``
    computes those for all layers at once), then the column stride and padding they need."""
    vector = not layer.has_weights
    if vector and layer.in_channels != layer.out_channels:
        raise ValueError(f"Layer {layer.name}: {layer.op} must keep the channel count")
    (kh, kw), (sh, sw), (ph, pw) = layer.kernel_size, layer.stride, layer.padding
    (ih, iw), (oh, ow) = layer.in_hw, layer.out_hw
    return (layer.out_channels if vector else layer.groups,
            1 if vector else layer.filters_per_group,
            1 if vector else layer.in_channels // layer.groups,
            kh, kw, sh, ph, ih, iw, oh, ow, layer.batch, layer.weight_bits, layer.act_bits,
            layer.out_bits, layer.accum_bits, layer.num_inputs, layer.in_channels,
            layer.out_channels, vector, layer.weight_bytes, layer.dense_weight_bytes,
            layer.input_bytes, layer.output_bytes, layer.output_elements, layer.macs,
            layer.vector_ops, layer.mac_density,
            1.0 if layer.channel_gated else layer.mac_density, layer.gen_macs, layer.gen_bits,
            layer.pred_bits, layer.lsb_density, layer.factor_out_bits, layer.factor_in_bits,
            layer.factor_shared_bits, layer.gen_in_macs, sw, pw)


__all__ = ["LayerArrays", "LayerView", "clipped_sum", "lines_read"]
