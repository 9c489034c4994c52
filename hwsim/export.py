"""Export a LayerGraph and an accelerator as SCALE-Sim inputs, to cross-check compute cycles.

SCALE-Sim (v2/v3) reads a topology CSV (one conv per row, unpadded-input convention: it derives
ofmap = ceil((ifmap - filter + stride) / stride)), a layout CSV (required even when custom
layouts are off) and a .cfg. We write the input height and width that exactly cover the output
((out - 1) * stride + kernel), so SCALE-Sim sees the same GEMM as hwsim. SCALE-Sim has no
groups, batch or vector ops: depthwise layers use its ``DP`` naming (one channel per run),
other grouped layers are written one row per group, linear layers as a 1x1 conv over a
batch x 1 map, conv layers need batch 1, and pool / add / concat are left out (listed in the
return value). SCALE-Sim words are one byte, so buffer sizes are given in KB as they are.
"""


from .accel import Accelerator
from .layer import LayerGraph

TOPOLOGY_HEADER = ("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, "
                   "Channels, Num Filter, Strides,")
_LAYOUT_ROW = "1,1,1,1,1,1,0,1,2,0,1,2,0,1,2,3,0,1,2,3"


def scalesim_rows(graph: LayerGraph) -> tuple[list[tuple], list[str]]:
    """SCALE-Sim topology rows (name, ifmap h, ifmap w, kh, kw, channels, filters, stride)
    and the names of the layers SCALE-Sim cannot express."""
    rows, skipped = [], []
    for layer in graph.layers:
        if not layer.has_weights:
            skipped.append(layer.name)
            continue
        (kh, kw), (sh, sw) = layer.kernel_size, layer.stride
        if layer.op == "linear":
            rows.append((layer.name, layer.batch, 1, 1, 1, layer.in_channels,
                         layer.out_channels, 1))
            continue
        if layer.batch != 1:
            raise ValueError(f"Layer {layer.name}: SCALE-Sim has no batch; export with batch 1")
        if sh != sw:
            raise ValueError(f"Layer {layer.name}: SCALE-Sim needs equal strides, got {sh}x{sw}")
        ih = (layer.out_hw[0] - 1) * sh + kh
        iw = (layer.out_hw[1] - 1) * sw + kw
        cg = layer.in_channels // layer.groups
        if layer.groups == 1:
            rows.append((layer.name, ih, iw, kh, kw, cg, layer.out_channels, sh))
        elif cg == 1 and layer.filters_per_group == 1:
            rows.append((f"{layer.name}_DP", ih, iw, kh, kw, layer.groups, 1, sh))
        else:
            rows.extend((f"{layer.name}_g{g}", ih, iw, kh, kw, cg, layer.filters_per_group, sh)
                        for g in range(layer.groups))
    return rows, skipped


def scalesim_config(accel: Accelerator, run_name: str) -> str:
    """SCALE-Sim .cfg text: array, dataflow, buffers (KB); bandwidth in CALC mode (no stalls).

    CALC makes SCALE-Sim report the bandwidth a stall-free run needs, so its cycles are the
    compute cycles hwsim's ``compute_cycles`` is compared with.
    """
    if accel.shared_buffer:
        size = accel.buffers[0].size_bytes // 3
        sizes = {"weight": size, "input": size, "output": size}
    else:
        sizes = {b.name: b.size_bytes for b in accel.buffers}

    def kb(name):
        return max(1, sizes[name] // 1024)

    return f"""[general]
run_name = {run_name}

[run_presets]
InterfaceBandwidth = CALC
UseRamulatorTrace = False

[architecture_presets]
ArrayHeight = {accel.array.rows}
ArrayWidth = {accel.array.cols}
IfmapSramSzkB = {kb("input")}
FilterSramSzkB = {kb("weight")}
OfmapSramSzkB = {kb("output")}
IfmapOffset = 0
FilterOffset = 10000000
OfmapOffset = 20000000
Dataflow = {accel.array.dataflow}
Bandwidth = {max(1, int(accel.dram.bw_bytes_per_cycle))}
ReadRequestBuffer = 32
WriteRequestBuffer = 32

[layout]
IfmapCustomLayout = False
IfmapSRAMBankBandwidth = 10
IfmapSRAMBankNum = 10
IfmapSRAMBankPort = 2
FilterCustomLayout = False
FilterSRAMBankBandwidth = 10
FilterSRAMBankNum = 10
FilterSRAMBankPort = 2

[sparsity]
SparsitySupport = false
SparseRep = ellpack_block
OptimizedMapping = false
BlockSize = 8
RandomNumberGeneratorSeed = 40
"""


def scalesim_files(graph: LayerGraph, accel: Accelerator) -> tuple[dict[str, str], list[str]]:
    """SCALE-Sim inputs as texts by file name, and the layers left out.

    Files: ``<model>.csv`` (topology), ``<model>_layout.csv`` and ``<accel>.cfg``. Run
    SCALE-Sim with ``python -m scalesim.scale -c CFG -t TOPOLOGY -l LAYOUT -p LOGDIR``.
    """
    if accel is None:
        raise ValueError("export: SCALE-Sim needs an accelerator (its array and SRAM sizes); "
                         "give --accel NAME|FILE, not none")
    rows, skipped = scalesim_rows(graph)
    lines = [TOPOLOGY_HEADER] + [",".join(str(v) for v in row) + "," for row in rows]
    header = "Layer name," + ",".join(f"layout{i}" for i in range(20)) + ","
    layout = [header] + [f"{row[0]},{_LAYOUT_ROW}," for row in rows]
    files = {f"{graph.model}.csv": "\n".join(lines) + "\n",
             f"{graph.model}_layout.csv": "\n".join(layout) + "\n",
             f"{accel.name}.cfg": scalesim_config(accel, f"{graph.model}_{accel.name}")}
    return files, skipped


__all__ = ["scalesim_config", "scalesim_files", "scalesim_rows"]
