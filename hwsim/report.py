"""Console views of result records (``hwsim.record``), and their JSON and CSV forms.

The console shows a headline first: what ran (model, input, the accelerator with what
``--set`` changed, objective), then the totals in human units beside the physical limits
(roofline, compute and memory bound, compulsory DRAM) and, for a compressed model, its dense
baseline's figures and the ratios. ``format_layers`` is the per-layer table (``--layers``),
``format_compare`` sets several records side by side (``hwsim compare``). Every view fits the
width it is given, columns dropped or folded, never wrapped mid-row. JSON and CSV carry the
record's exact numbers. Rows of quantities that need a definition are labelled with the
record's own key (``stored_bytes``, ``stored_params``, ``folded_params``, ``test_acc``), so the
console, JSON, CSV and README share one name per quantity.
"""

import json
import math
import shutil
import textwrap

from .catalog import MODELS
from .record import dense_counterpart

DEFAULT_WIDTH = 100


def terminal_width() -> int:
    """Columns of the terminal (``COLUMNS`` when set), ``DEFAULT_WIDTH`` when unknown."""
    return shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns


# --- human units ------------------------------------------------------------------------------
PREFIXES = {-12: "p", -9: "n", -6: "µ", -3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T"}


def si(value: float, unit: str) -> str:
    """``value`` (in ``unit``) to 3 significant digits with an SI prefix: 2.71 MB, 555 M."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    exponent = max(-12, min(12, 3 * math.floor(math.log10(abs(value)) / 3)))
    if unit in ("B", "") and exponent < 0:  # no millibytes or milli-MACs
        exponent = 0
    text = f"{value / 10 ** exponent:#.3g}".rstrip(".")
    if abs(float(text)) >= 1000 and exponent < 12:  # 999.7 rounds up to the next prefix
        exponent += 3
        text = f"{value / 10 ** exponent:#.3g}".rstrip(".")
    return f"{text} {PREFIXES[exponent]}{unit}".rstrip()


def binary_bytes(size: int) -> str:
    """A buffer size as hardware people write it: 16 KiB, 1.5 MiB."""
    units = ("B", "KiB", "MiB", "GiB")
    power = 0
    while size >= 1024 and power < len(units) - 1:
        size, power = size / 1024, power + 1
    return f"{size:g} {units[power]}"


def plural(n: int, unit: str) -> str:
    """``n`` and ``unit``, an "s" added unless ``n`` is one: 1 group, 4 output rows."""
    return f"{n} {unit}" + ("" if n == 1 else "s")


def human(value, kind: str, clock_mhz: float | None = None) -> str:
    """A total as the console shows it; ``kind`` is bytes, energy_pj, cycles (as time), ms,
    count, fraction (as %), accuracy (as %) or ratio."""
    if value is None:
        return "-"
    if kind == "bytes":
        return si(value, "B")
    if kind == "energy_pj":
        return si(value * 1e-12, "J")
    if kind == "cycles":
        return si(value / (clock_mhz * 1e6), "s") if clock_mhz else si(value, "cycles")
    if kind == "ms":
        return si(value * 1e-3, "s")
    if kind == "count":
        return si(value, "")
    if kind in ("fraction", "accuracy"):
        return f"{100 * value:.{1 if kind == 'fraction' else 2}f} %"
    if kind == "ratio":
        return f"{value:#.3g}".rstrip(".") + "x"
    return figure(value)


def figure(value) -> str:
    """Readable number: thousands separators, integers exact, small values to 4 digits."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int) or value.is_integer():
        return f"{int(value):,}"
    return f"{value:,.1f}" if abs(value) >= 1000 else f"{value:.4g}"


# --- headline -----------------------------------------------------------------------------------
# (label, section, key, kind); a row whose values are all missing is left out, a row marked
# "nonzero" also when every value is 0. Indented rows are the parts or the limits of the row
# above them.
HARDWARE_ROWS = [
    ("latency", "totals", "latency_cycles", "cycles"),
    ("  event-driven (--sim event)", "totals", "latency_cycles_des", "cycles"),
    ("  limit: roofline", "totals", "roofline_latency_cycles", "cycles"),
    ("  limit: compute bound", "totals", "compute_bound_cycles", "cycles"),
    ("  limit: memory bound", "totals", "memory_bound_cycles", "cycles"),
    ("  stalls", "totals", "stall_cycles", "cycles"),
    ("utilization", "totals", "utilization", "fraction"),
    ("energy", "totals", "energy_pj", "energy_pj"),
    ("  MACs", "totals", "mac_energy_pj", "energy_pj"),
    ("  SRAM", "totals", "sram_energy_pj", "energy_pj"),
    ("  DRAM", "totals", "dram_energy_pj", "energy_pj"),
    ("  weight generation", "totals", "gen_energy_pj", "energy_pj", "nonzero"),
    ("DRAM traffic", "totals", "dram_bytes", "bytes"),
    ("  limit: compulsory", "totals", "compulsory_dram_bytes", "bytes"),
    ("  weights", "totals", "weight_dram_bytes", "bytes"),
    ("  inputs", "totals", "ifmap_dram_bytes", "bytes"),
    ("  outputs", "totals", "ofmap_dram_bytes", "bytes"),
    ("DRAM transactions", "totals", "dram_transactions", "count"),
]
MODEL_ROWS = [
    ("MACs", "totals", "macs", "count"),
    ("  weight generation MACs", "totals", "gen_macs", "count", "nonzero"),
    ("stored_bytes", "storage", "stored_bytes", "bytes"),
    ("stored_params", "storage", "stored_params", "count"),
    ("folded_params", "totals", "folded_params", "count"),
    ("test_acc", "totals", "test_acc", "accuracy"),
]
WORKLOAD_ROWS = [
    ("weight_bytes", "totals", "weight_bytes", "bytes"),
    ("input_bytes", "totals", "input_bytes", "bytes"),
    ("output_bytes", "totals", "output_bytes", "bytes"),
]


def _value(column: dict, section: str, key: str):
    value = column.get(section, {}).get(key)
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _rows(columns: list[dict], rows: list[tuple], clock_mhz: float | None,
          ratios: dict | None = None) -> list[list[str]]:
    out = []
    for label, section, key, kind, *flags in rows:
        values = [_value(c, section, key) for c in columns]
        if all(v is None for v in values) or ("nonzero" in flags and not any(values)):
            continue
        cells = [label, *(human(v, kind, clock_mhz) for v in values)]
        if ratios is not None:
            ratio = ratios.get(f"{key}_ratio")
            cells.append(human(ratio, "ratio") if ratio is not None else "")
        out.append(cells)
    return out


def _changed_lines(prefix: str, changes: dict, width: int) -> list[str]:
    """``changes`` (key: (preset value, value run)) as lines of ``PREFIX changed by --set: ...``."""
    parts = [f"{k} {_plain(old)} -> {_plain(new)}" for k, (old, new) in changes.items()]
    return wrap_parts([f"{prefix} changed by --set: {parts[0]}", *parts[1:]], width)


def _widths(header: list[str], rows: list[list[str]]) -> list[int]:
    return [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]


def _fitting(widths: list[int], width: int) -> int:
    """How many columns from the left fit ``width`` (two spaces between columns)."""
    keep = 1
    while keep < len(widths) and sum(widths[:keep + 1]) + 2 * keep <= width:
        keep += 1
    return keep


def _table(header: list[str], rows: list[list[str]], width: int) -> list[str]:
    """Left-aligned first column, right-aligned others; columns that do not fit are dropped
    from the right."""
    widths = _widths(header, rows)
    keep = _fitting(widths, width)
    lines = []
    for row in [header, *rows]:
        cells = [row[0].ljust(widths[0])] + [row[i].rjust(widths[i]) for i in range(1, keep)]
        lines.append("  ".join(cells).rstrip())
    return lines


def _wrap(text: str, width: int, indent: str = "    ") -> list[str]:
    return textwrap.wrap(text, width, subsequent_indent=indent, break_on_hyphens=False) or [""]


def describe_accelerator(accel: dict) -> list[str]:
    """The spec in parts: array, precision, clock, buffers, DRAM, weight generator, energies."""
    array = accel["array"]
    parts = [f"{array['rows']}x{array['cols']} {array['dataflow']} array",
             f"{array['mac_bits']}-bit MACs"
             + ("" if array["precision_mode"] == "bit_parallel" else
                f" {array['precision_mode']}"),
             f"{accel['clock_mhz']:g} MHz"]
    buffers = accel["buffers"]
    parts.append("buffers " + " / ".join(f"{name} {binary_bytes(spec['size_bytes'])}"
                                         for name, spec in buffers.items()))
    dram = accel["dram"]["bw_bytes_per_cycle"]
    parts.append(f"DRAM {dram:g} B/cycle ({si(dram * accel['clock_mhz'] * 1e6, 'B')}/s)")
    if accel.get("weight_gen"):
        parts.append(f"weight generator {accel['weight_gen']['macs_per_cycle']:g} MAC/cycle")
    return [*parts, f"energies {accel['tech']['name']}"]


def wrap_parts(parts: list[str], width: int, indent: str = "    ") -> list[str]:
    """``parts`` joined by commas into lines of at most ``width``, never breaking a part."""
    lines = [parts[0]]
    for part in parts[1:]:
        if len(lines[-1]) + 2 + len(part) + 1 <= width:
            lines[-1] += f", {part}"
        else:
            lines[-1] += ","
            lines.append(indent + part)
    return lines


def _context(record: dict, width: int) -> list[str]:
    """What ran: model, input, objective, accelerator with the changed fields."""
    shape = "x".join(map(str, record["input_shape"]))
    head = f"{record['model']}, input {shape} (NxCxHxW)"
    accel = record["accelerator"]
    if accel is None:
        return _wrap(head + ", workload only (no accelerator)", width)
    lines = _wrap(f"{head}, objective {record['objective']}", width)
    parts = describe_accelerator(accel)
    lines += wrap_parts([f"on {accel['name']}: {parts[0]}", *parts[1:]], width)
    changes = record.get("accelerator_changes") or {}
    if changes:
        lines += _changed_lines(" ", changes, width)
    else:
        lines += ["  (preset as shipped: no --set accel.* changes)"]
    return lines


def _plain(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def format_headline(record: dict, width: int | None = None) -> str:
    """The default ``hwsim run`` view: what ran, then the totals beside the physical limits
    and, for a compressed model, the dense baseline's figures and the ratios."""
    width = width or terminal_width()
    accel = record["accelerator"]
    clock = accel["clock_mhz"] if accel else None
    base = record.get("baseline")
    columns = [record] + ([base] if base else [])
    # A baseline named with --baseline NAME need not be this model's dense counterpart.
    role = base and ("dense" if base["model"] == dense_counterpart(record["model"], MODELS)
                     else "baseline")
    # What the baseline was built with beyond its defaults (e.g. resrep's shortcut=B), so the
    # column is reproducible with hwsim run --model BASE --set model.KEY=VALUE.
    changed = "".join(f", {k}={_plain(v)}" for k, v in (base or {}).get("changed", {}).items())
    header = ["", record["model"]] + ([f"{base['model']} ({role}{changed})", "ratio"]
                                      if base else [])
    rows = (HARDWARE_ROWS if accel else WORKLOAD_ROWS) + MODEL_ROWS
    cells = _rows(columns, rows, clock, base["ratios"] if base else None)
    lines = _context(record, width)
    if base:
        what = "its dense counterpart" if role == "dense" else "the baseline"
        if base.get("checkpoint"):
            what = f"the checkpoint {base['checkpoint']}"
        built = f" ({changed[2:]})" if changed else ""
        lines += _wrap(f"compared with {base['model']}{built}, {what}, on the same "
                       f"accelerator (ratio = this / {role})", width)
    if base and _fitting(_widths(header, cells), width) < len(header):
        header = ["", "this", role, "ratio"]  # the names are in the lines above
    lines += [""] + _table(header, cells, width)
    if record.get("gating"):
        lines += [""] + format_gating(record["gating"], width)
    if _value(record, "totals", "latency_cycles_des") is not None:
        lines += [""] + format_simulation(record, width)
    lines += [""] + [line for note in record["notes"] for line in _wrap(f"note: {note}", width)]
    return "\n".join(lines).rstrip() + "\n"


def format_simulation(record: dict, width: int, top: int = 3) -> list[str]:
    """What the event-driven replay (``--sim event``) saw: how busy each unit was and how much
    of the DRAM link's and the generator's time compute hid, then the layers where the array
    stalls for data longest (with what was busy meanwhile) and where the DMA, ahead of a busy
    array, waits for a free buffer bank (there the transfers are hidden)."""
    totals, clock = record["totals"], record["accelerator"]["clock_mhz"]
    has_gen = bool(record["accelerator"].get("weight_gen"))

    def time(cycles):
        return human(cycles, "cycles", clock)

    def pct(value):
        return "-" if value is None else f"{100 * value:.0f} %"

    busy = [f"PE array {pct(totals['array_busy_fraction'])}",
            f"DRAM link {pct(totals['dram_busy_fraction'])} "
            f"({pct(totals['dram_under_compute_fraction'])} of it under compute)"]
    if has_gen:
        busy.append(f"weight generation {pct(totals['gen_busy_fraction'])} "
                    f"({pct(totals['gen_under_compute_fraction'])} under compute)")
    latency = totals["latency_cycles_des"]
    lines = _wrap(f"event-driven simulation (--sim event): {time(latency)}, "
                  f"{human(totals['des_over_analytic_latency'], 'ratio')} the analytical "
                  "latency", width)
    lines += wrap_parts([f"  busy: {busy[0]}", *busy[1:]], width, "      ")

    def meanwhile(r):
        units = [("link", "dram")] + ([("generator", "gen")] if has_gen else [])
        return ", ".join(f"{name} {pct(r[f'{unit}_busy_fraction'])} busy" for name, unit in units
                         if r[f"{unit}_busy_fraction"] or unit == "dram")

    for key, what, detail in (
            ("array_wait_data_cycles", "stalls: the array waits for data", meanwhile),
            ("dma_wait_space_cycles", "hidden transfers: the DMA, ahead of the array, waits "
             "for a free buffer bank", lambda r: f"array {pct(r['array_busy_fraction'])} busy")):
        layers = sorted((r for r in record["layers"] if r.get(key)), key=lambda r: -r[key])
        parts = [f"{r['name']} {time(r[key])} of its {time(r['latency_cycles_des'])} "
                 f"({detail(r)})" for r in layers[:top]]
        lines += _wrap(f"  {what} {time(totals[key])}" + (", longest in:" if parts else ""),
                       width, "      ")
        lines += wrap_parts([f"      {parts[0]}", *parts[1:]], width, "      ") if parts else []
    return lines + ["  per layer: --layers; Gantt chart: hwsim plot timeline"]


def format_gating(summary: dict, width: int) -> list[str]:
    from .gating import format_summary

    return [line for text in format_summary(summary).splitlines()
            for line in _wrap(text, width, " " * (len(text) - len(text.lstrip()) + 4))]


# --- per-layer table ------------------------------------------------------------------------------
# (column, header, kind) in the order they are dropped last to first when the width is short.
HARDWARE_LAYER_COLUMNS = [
    ("name", "layer", None), ("op", "op", None), ("latency_cycles", "latency", "cycles"),
    ("utilization", "util", "fraction"), ("energy_pj", "energy", "energy_pj"),
    ("dram_bytes", "DRAM", "bytes"), ("macs", "MACs", "count"),
    ("out_channels", "out_ch", None), ("out_hw", "out_hw", None), ("kernel_size", "kernel", None),
    ("compute_cycles", "compute", "cycles"), ("stall_cycles", "stall", "cycles"),
    ("weight_dram_bytes", "w DRAM", "bytes"), ("ifmap_dram_bytes", "in DRAM", "bytes"),
    ("ofmap_dram_bytes", "out DRAM", "bytes"), ("gen_macs", "gen MACs", "count"),
    ("sram_reads_bytes", "SRAM rd", "bytes"), ("sram_writes_bytes", "SRAM wr", "bytes"),
    ("dram_energy_pj", "DRAM E", "energy_pj"), ("loop_order", "loops", None),
]
WORKLOAD_LAYER_COLUMNS = [
    ("name", "layer", None), ("op", "op", None), ("macs", "MACs", "count"),
    ("out_channels", "out_ch", None), ("out_hw", "out_hw", None), ("kernel_size", "kernel", None),
    ("folded_params", "folded_params", "count"), ("weight_bytes", "weights", "bytes"),
    ("input_bytes", "inputs", "bytes"), ("output_bytes", "outputs", "bytes"),
    ("stride", "stride", None), ("groups", "groups", None),
]
DES_LAYER_COLUMNS = [
    ("name", "layer", None), ("latency_cycles", "analytic", "cycles"),
    ("latency_cycles_des", "event-driven", "cycles"),
    ("array_wait_data_cycles", "array waits", "cycles"),
    ("dma_wait_space_cycles", "DMA waits", "cycles"),
    ("array_busy_fraction", "array busy", "fraction"),
    ("dram_busy_fraction", "DRAM busy", "fraction"),
    ("gen_busy_fraction", "gen busy", "fraction"),
    ("dram_under_compute_fraction", "DRAM hidden", "fraction"),
    ("gen_under_compute_fraction", "gen hidden", "fraction"),
]
# A gated model's layer table shows each layer's ideal MAC reduction and realized cycle
# reduction side by side, right after the latency (so a narrow terminal keeps them).
GATING_LAYER_COLUMNS = [
    ("gating_mode", "gating", None), ("flop_reduction", "MAC red.", "ratio"),
    ("ideal_speedup", "ideal", "ratio"), ("gating_speedup", "realized", "ratio"),
]
NAME_WIDTH = 24


def format_layers(record: dict, width: int | None = None, columns: list | None = None) -> str:
    """One line per layer with as many of ``columns`` (default: by accelerator or not) as fit
    ``width``; times in human units at the accelerator's clock. Every column is in the CSV."""
    accel = record["accelerator"]
    if columns is None and accel and record.get("gating"):
        columns = HARDWARE_LAYER_COLUMNS[:3] + GATING_LAYER_COLUMNS + HARDWARE_LAYER_COLUMNS[3:]
    columns = columns or (HARDWARE_LAYER_COLUMNS if accel else WORKLOAD_LAYER_COLUMNS)
    return format_rows(record["layers"], columns, width, accel["clock_mhz"] if accel else None)


def format_rows(records: list[dict], columns: list, width: int | None = None,
                clock_mhz: float | None = None) -> str:
    """One line per record with as many of ``columns`` ((key, header, kind), see ``human``)
    as fit ``width``, in their order; columns no record has are left out."""
    width = width or terminal_width()
    columns = [c for c in columns if any(c[0] in record for record in records)]
    rows = []
    for layer in records:
        row = []
        for key, _, kind in columns:
            value = layer.get(key)
            if isinstance(value, float) and math.isnan(value):
                value = None
            if key == "name" and len(value) > NAME_WIDTH:  # keep the end: the distinct part
                value = "…" + value[-(NAME_WIDTH - 1):]
            row.append(human(value, kind, clock_mhz) if kind and value is not None else
                       "-" if value is None else str(value))
        rows.append(row)
    header = [header for _, header, _ in columns]
    return "\n".join(_table(header, rows, width)) + "\n"


# --- compare ------------------------------------------------------------------------------------
COMPARE_ROWS = [
    ("latency", "totals", "latency_cycles", "cycles"),
    ("  limit: roofline", "totals", "roofline_latency_cycles", "cycles"),
    ("utilization", "totals", "utilization", "fraction"),
    ("energy", "totals", "energy_pj", "energy_pj"),
    ("DRAM traffic", "totals", "dram_bytes", "bytes"),
    ("  limit: compulsory", "totals", "compulsory_dram_bytes", "bytes"),
    ("  weights", "totals", "weight_dram_bytes", "bytes"),
    ("MACs", "totals", "macs", "count"),
    ("  weight generation MACs", "totals", "gen_macs", "count", "nonzero"),
    ("stored_bytes", "storage", "stored_bytes", "bytes"),
    ("stored_params", "storage", "stored_params", "count"),
    ("test_acc", "totals", "test_acc", "accuracy"),
]


def format_compare(records: list[dict], width: int | None = None) -> str:
    """Records side by side, one column each (model over accelerator); times at each
    accelerator's clock. Columns that do not fit ``width`` continue in a further block."""
    width = width or terminal_width()
    clocks = [r["accelerator"]["clock_mhz"] if r["accelerator"] else None for r in records]
    rows = [["", *(r["model"] for r in records)],
            ["", *(r["accelerator"]["name"] if r["accelerator"] else "no accelerator"
                   for r in records)]]
    for label, section, key, kind, *flags in COMPARE_ROWS:
        values = [_value(r, section, key) for r in records]
        if all(v is None for v in values) or ("nonzero" in flags and not any(values)):
            continue
        rows.append([label, *(human(v, kind, c) for v, c in zip(values, clocks))])
    widths = _widths(rows[0], rows[1:])
    blocks, block = [], []
    for i in range(1, len(widths)):
        if block and widths[0] + sum(widths[j] + 2 for j in [*block, i]) > width:
            blocks.append(block)
            block = []
        block.append(i)
    blocks.append(block)
    lines = []
    for name, changes in {r["accelerator"]["name"]: r.get("accelerator_changes")
                          for r in records if r["accelerator"]}.items():
        if changes:  # the header names the preset: say what --set changed in it
            lines += _changed_lines(name, changes, width)
    lines += [""] if lines else []
    for block in blocks:
        for row in rows:
            lines.append("  ".join([row[0].ljust(widths[0]),
                                    *(row[j].rjust(widths[j]) for j in block)]).rstrip())
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


# --- machine-readable forms -------------------------------------------------------------------
def layers_frame(record: dict):
    """The per-layer records as a DataFrame (the rows of layers.csv)."""
    import pandas as pd

    return pd.DataFrame(record["layers"])


def to_json(record) -> str:
    return json.dumps(record, indent=2, ensure_ascii=False)
