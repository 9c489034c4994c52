"""Layer and LayerGraph: the workload the accelerator model evaluates.

One ``Layer`` per compute op, in execution order. Counts are derived from the shape fields so
they can never disagree with them. Sizes in bits are exact integers; byte properties divide by 8
(low-bit tensors can occupy fractional bytes).
"""

from dataclasses import dataclass, field

OPS = ("conv", "linear", "pool", "add", "concat")


@dataclass(frozen=True)
class Layer:
    """One compute op with its shapes, precisions and compression statistics.

    ``in_channels`` of a concat is the sum of its inputs; a linear layer has 1x1 maps and kernel.
    ``weight_storage_bits`` is what the weights (and bias) occupy off chip; ``None`` means dense,
    i.e. ``(weight_count + bias_count) * weight_bits`` (read ``stored_weight_bits``).
    ``stored_params`` is the compressed parameter count a compressed layer reports (``None``:
    dense).
    ``mac_density`` is the executed fraction of MACs (channel gating); ``pred_bits`` /
    ``lsb_density`` describe precision gating (0 / 1.0 when off).
    Channel gating's structure: ``gate_base_fraction`` of every output's reduction (the base
    pass over 1/pt of the input channels) always runs, the rest only for gated-on outputs,
    whose measured share per output channel is ``gate_channel_density`` (empty: not channel
    gated). Then ``mac_density = base + (1 - base) * mean(gate_channel_density)``.

    Generated (MLG) weights: ``gen_macs`` regenerate all weights once from the stored factors.
    A tile of filters x input channels needs only part of them: ``factor_out_bits`` are indexed
    by output channel only (cross-kernel coefficients), ``factor_in_bits`` by input channel only
    (intra-kernel coefficients), ``factor_shared_bits`` by neither (the basis, needed by every
    tile); the rest of ``weight_storage_bits`` splits over tiles like dense weights.
    ``gen_in_macs`` of ``gen_macs`` produce input-channel intermediates that every filter tile
    needs again.
    """

    name: str
    op: str
    batch: int
    in_channels: int
    out_channels: int
    in_hw: tuple[int, int]
    out_hw: tuple[int, int]
    kernel_size: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    groups: int = 1
    bias: bool = False
    weight_bits: int = 8
    act_bits: int = 8
    out_bits: int = 8
    accum_bits: int = 32
    weight_storage_bits: int | None = None
    stored_params: int | None = None
    gen_macs: int = 0
    gen_bits: int = 0
    factor_out_bits: int = 0
    factor_in_bits: int = 0
    factor_shared_bits: int = 0
    gen_in_macs: int = 0
    mac_density: float = 1.0
    pred_bits: int = 0
    lsb_density: float = 1.0
    gate_base_fraction: float = 0.0
    gate_channel_density: tuple[float, ...] = ()
    inputs: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self):
        if self.op not in OPS:
            raise ValueError(f"Layer {self.name}: op must be one of {', '.join(OPS)}, "
                             f"got {self.op!r}")
        for key in ("batch", "in_channels", "out_channels", "groups", "weight_bits", "act_bits",
                    "out_bits", "accum_bits"):
            if not getattr(self, key) > 0:  # also catches NaN
                raise ValueError(f"Layer {self.name}: {key} must be > 0, got {getattr(self, key)}")
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"Layer {self.name}: groups={self.groups} must divide in_channels="
                             f"{self.in_channels} and out_channels={self.out_channels}")
        if not 0.0 <= self.mac_density <= 1.0 or not 0.0 <= self.lsb_density <= 1.0:
            raise ValueError(f"Layer {self.name}: mac_density and lsb_density must lie in [0, 1]")
        if not 0 <= self.pred_bits <= self.act_bits:
            raise ValueError(f"Layer {self.name}: pred_bits must lie in [0, act_bits]")
        self._check_channel_gating()
        factors = (self.factor_out_bits, self.factor_in_bits, self.factor_shared_bits)
        if min(factors) < 0 or sum(factors) > self.stored_weight_bits:
            raise ValueError(f"Layer {self.name}: factor_*_bits must be >= 0 and add up to at "
                             f"most the stored weight bits ({self.stored_weight_bits})")
        if not 0 <= self.gen_in_macs <= self.gen_macs:
            raise ValueError(f"Layer {self.name}: gen_in_macs must lie in [0, gen_macs]")

    def _check_channel_gating(self) -> None:
        density, base = self.gate_channel_density, self.gate_base_fraction
        if not density:
            if base:
                raise ValueError(f"Layer {self.name}: gate_base_fraction needs "
                                 f"gate_channel_density (one measured share per output channel)")
            return
        if self.groups != 1 or self.op != "conv":
            raise ValueError(f"Layer {self.name}: channel gating needs a conv with groups=1")
        if len(density) != self.out_channels or not 0.0 < base <= 1.0 \
                or not all(0.0 <= d <= 1.0 for d in density):
            raise ValueError(f"Layer {self.name}: gate_channel_density needs out_channels="
                             f"{self.out_channels} values in [0, 1] and gate_base_fraction in "
                             f"(0, 1], got {len(density)} values and {base}")
        expected = base + (1 - base) * sum(density) / len(density)
        if abs(self.mac_density - expected) > 1e-6:
            raise ValueError(f"Layer {self.name}: mac_density {self.mac_density:.6f} disagrees "
                             f"with gate_base_fraction and gate_channel_density ({expected:.6f})")

    @property
    def channel_gated(self) -> bool:
        return bool(self.gate_channel_density)

    @property
    def average_act_bits(self) -> float:
        """Activation bits computed per MAC on average: pred + lsb_density·(act − pred) when
        precision gated, else act_bits."""
        if not self.pred_bits:
            return float(self.act_bits)
        return self.pred_bits + self.lsb_density * (self.act_bits - self.pred_bits)

    # --- shapes as GEMM (docs/architecture.md, A layer as a GEMM) ---------------------------------
    @property
    def has_weights(self) -> bool:
        return self.op in ("conv", "linear")

    @property
    def reduction_size(self) -> int:
        """Sr: reduction length of one output, per group: (in_channels/groups)·kh·kw."""
        return self.in_channels // self.groups * self.kernel_size[0] * self.kernel_size[1]

    @property
    def filters_per_group(self) -> int:
        """Sc: filters per group."""
        return self.out_channels // self.groups

    @property
    def output_pixels(self) -> int:
        """T: batch·oh·ow."""
        return self.batch * self.out_hw[0] * self.out_hw[1]

    # --- counts -------------------------------------------------------------------------------
    @property
    def weight_count(self) -> int:
        return self.out_channels * self.reduction_size if self.has_weights else 0

    @property
    def bias_count(self) -> int:
        return self.out_channels if self.bias and self.has_weights else 0

    @property
    def macs(self) -> int:
        """Dense multiply-accumulates (before any dynamic gating)."""
        if not self.has_weights:
            return 0
        return self.output_pixels * self.out_channels * self.reduction_size

    @property
    def vector_ops(self) -> int:
        """Element operations of pool / add / concat (compares, adds, copies)."""
        outputs = self.output_pixels * self.out_channels
        if self.op == "pool":
            return outputs * self.kernel_size[0] * self.kernel_size[1]
        if self.op == "add":
            return outputs * (self.num_inputs - 1)
        if self.op == "concat":
            return outputs
        return 0

    @property
    def num_inputs(self) -> int:
        """Tensors read: an add reads all its operands (at least two), other ops one tensor."""
        return max(2, len(self.inputs)) if self.op == "add" else 1

    @property
    def input_elements(self) -> int:
        return self.num_inputs * self.batch * self.in_channels * self.in_hw[0] * self.in_hw[1]

    @property
    def output_elements(self) -> int:
        return self.batch * self.out_channels * self.out_hw[0] * self.out_hw[1]

    # The raw field stays None for dense layers so ``dataclasses.replace`` never leaves a stale
    # dense figure behind; read this resolved value instead.
    @property
    def stored_weight_bits(self) -> int:
        """Bits of weights (and bias) off chip: compressed form if set, else dense."""
        if self.weight_storage_bits is not None:
            return self.weight_storage_bits
        return (self.weight_count + self.bias_count) * self.weight_bits

    @property
    def weight_bytes(self) -> float:
        """Bytes of weights as stored off chip (compressed form when the layer is compressed)."""
        return self.stored_weight_bits / 8

    @property
    def dense_weight_bytes(self) -> float:
        """Bytes of the weights the array consumes (after any on-chip generation)."""
        return (self.weight_count + self.bias_count) * self.weight_bits / 8

    @property
    def input_bytes(self) -> float:
        return self.input_elements * self.act_bits / 8

    @property
    def output_bytes(self) -> float:
        return self.output_elements * self.out_bits / 8


@dataclass(frozen=True)
class LayerGraph:
    """A traced model: layers in execution order plus the model-level storage accounting.

    ``inputs`` of each layer name its producers (``"input"`` for the model input), which makes
    the residual and concat edges explicit. ``storage`` holds the model's parameter and storage
    accounting (see ``hwsim.trace``); ``notes`` says what the tracer assumed.
    """

    model: str
    input_shape: tuple[int, ...]
    layers: tuple[Layer, ...]
    storage: dict = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def __post_init__(self):
        names = [layer.name for layer in self.layers]
        if len(set(names)) != len(names):
            raise ValueError(f"LayerGraph {self.model}: layer names must be unique")

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def __getitem__(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"LayerGraph {self.model}: no layer named {name!r}")

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def params(self) -> int:
        """Weights and biases of the traced conv / linear layers (BN folded)."""
        return sum(layer.weight_count + layer.bias_count for layer in self.layers)


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


__all__ = ["Layer", "LayerGraph", "OPS", "ceil_div"]
