"""Accelerator spec: frozen dataclasses loaded from YAML with every key and value checked.

Presets live in ``hwsim/accelerators/<name>.yaml`` and are found by file name. Errors are one
line naming the file (or the ``accel.`` override) and the key, e.g.
``systolic_32.yaml: array.rows must be > 0, got 0``.
"""

import dataclasses
import difflib
import functools
import math
import typing
from dataclasses import dataclass
from pathlib import Path

from .config import load_yaml
from .tech import TECH_TABLES, get_tech

DATAFLOWS = ("ws", "os", "is")
PRECISION_MODES = ("bit_parallel", "bit_serial_act", "bit_serial_both", "bit_fusion")
BUFFER_LAYOUTS = (("weight", "input", "output"), ("shared",))
PRESET_DIR = Path(__file__).parent / "accelerators"


# Upper limits keep every count the cost model forms far inside int64 / float64.
MAX_SIZE = 2 ** 48  # bytes, MACs per cycle, bandwidths
MAX_ARRAY_DIM = 2 ** 16  # PE rows or columns
MAX_BITS = 64  # operand widths
MIN_VALUE = 1e-9  # smaller positive rates (bandwidth, clock, pJ) overflow latencies to inf


def _positive(section: str, obj, *keys: str, at_most: float = MAX_SIZE) -> None:
    """Each ``obj.key`` is a finite number in (0, at_most]; NaN and infinity are errors."""
    for key in keys:
        value = getattr(obj, key)
        where = f"{section}.{key}" if section else key
        if not math.isfinite(value):
            raise ValueError(f"{where} must be a finite number > 0, got {value}")
        if value <= 0:
            raise ValueError(f"{where} must be > 0, got {value}")
        if value < MIN_VALUE:
            raise ValueError(f"{where} must be at least {MIN_VALUE:g}, got {value}")
        if value > at_most:
            raise ValueError(f"{where} must be at most {at_most}, got {value}")


def _one_of(section: str, key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{section}.{key} must be one of {', '.join(allowed)}, got {value!r}")


@dataclass(frozen=True)
class PEArray:
    """Systolic PE array: ``rows`` x ``cols`` MACs of ``mac_bits`` operands.

    ``bits_per_cycle`` is the activation bits a bit-serial PE consumes per cycle
    (``bit_serial_act`` only).
    """

    rows: int
    cols: int
    dataflow: str = "ws"
    mac_bits: int = 8
    precision_mode: str = "bit_parallel"
    bits_per_cycle: int = 1

    def __post_init__(self):
        _positive("array", self, "rows", "cols", at_most=MAX_ARRAY_DIM)
        _positive("array", self, "mac_bits", "bits_per_cycle", at_most=MAX_BITS)
        _one_of("array", "dataflow", self.dataflow, DATAFLOWS)
        _one_of("array", "precision_mode", self.precision_mode, PRECISION_MODES)

    @property
    def num_pes(self) -> int:
        return self.rows * self.cols


@dataclass(frozen=True)
class Buffer:
    """One on-chip SRAM partition (``weight``, ``input``, ``output``) or the ``shared`` one.

    ``read_pj_per_byte`` / ``write_pj_per_byte`` override the tech table's size-scaled access
    energy when given (e.g. to reproduce another tool's constants).
    """

    name: str
    size_bytes: int
    bw_bytes_per_cycle: float
    double_buffered: bool = True
    read_pj_per_byte: float | None = None
    write_pj_per_byte: float | None = None

    def __post_init__(self):
        _positive(f"buffers.{self.name}", self, "size_bytes", "bw_bytes_per_cycle")
        for key in ("read_pj_per_byte", "write_pj_per_byte"):
            if getattr(self, key) is not None:
                _positive(f"buffers.{self.name}", self, key)

    @property
    def usable_bytes(self) -> float:
        """Bytes one tile may occupy: half the buffer when double-buffered."""
        return self.size_bytes / 2 if self.double_buffered else self.size_bytes


@dataclass(frozen=True)
class DRAM:
    """Off-chip memory: bandwidth, burst size (one transaction) and energy per bit."""

    bw_bytes_per_cycle: float
    transaction_bytes: int = 64
    pj_per_bit: float | None = None

    def __post_init__(self):
        _positive("dram", self, "bw_bytes_per_cycle", "transaction_bytes")
        if self.pj_per_bit is not None:
            _positive("dram", self, "pj_per_bit")


@dataclass(frozen=True)
class WeightGen:
    """In-situ weight generation unit beside the array (MLG): MACs per cycle at ``bits``.

    ``factor_buffer_bytes``: the unit's own store for one layer's compressed factors. A layer
    whose factors fit reads them from DRAM once per pass over its weights; otherwise every
    weight tile fetches the factors it needs (0: no such store).
    """

    macs_per_cycle: int
    bits: int
    factor_buffer_bytes: int = 0

    def __post_init__(self):
        _positive("weight_gen", self, "macs_per_cycle")
        _positive("weight_gen", self, "bits", at_most=MAX_BITS)
        if not 0 <= self.factor_buffer_bytes <= MAX_SIZE:
            raise ValueError(f"weight_gen.factor_buffer_bytes must be >= 0 and at most {MAX_SIZE}, "
                             f"got {self.factor_buffer_bytes}")


@dataclass(frozen=True)
class Energy:
    """Per-action energies that replace the tech table's (Accelergy-style overrides).

    ``mac_pj``: operand bits -> pJ of one multiply-accumulate at those bits (multiply and its
    accumulate add). It prices a PE-cycle of the array when its key is the array's
    ``mac_bits`` and a generator MAC when it is the ``weight_gen`` unit's ``bits``; other MACs
    keep the table's figure. SRAM and DRAM overrides live on the buffers and on ``dram``.
    """

    mac_pj: tuple[tuple[int, float], ...] = ()

    def __post_init__(self):
        for bits, pj in self.mac_pj:
            if bits <= 0 or pj <= 0:
                raise ValueError(f"energy.mac_pj: bits and pJ must be > 0, got {bits}: {pj}")

    def mac(self, bits: int) -> float | None:
        return dict(self.mac_pj).get(bits)


@dataclass(frozen=True)
class Accelerator:
    """A whole accelerator: array, on-chip buffers, DRAM, optional generator, tech table."""

    name: str
    clock_mhz: float
    array: PEArray
    buffers: tuple[Buffer, ...]
    dram: DRAM
    tech: str = "horowitz45"
    weight_gen: WeightGen | None = None
    description: str = ""
    energy: Energy = Energy()

    def __post_init__(self):
        _positive("", self, "clock_mhz")
        names = tuple(buffer.name for buffer in self.buffers)
        if tuple(sorted(names)) not in {tuple(sorted(layout)) for layout in BUFFER_LAYOUTS}:
            raise ValueError(f"buffers must be either weight, input, output or shared, "
                             f"got {', '.join(names) or 'none'}")
        if self.tech not in TECH_TABLES:
            raise ValueError(f"tech must be one of {', '.join(sorted(TECH_TABLES))}, "
                             f"got {self.tech!r}")

    @property
    def shared_buffer(self) -> bool:
        return len(self.buffers) == 1

    def buffer(self, name: str) -> Buffer:
        """The buffer holding tensor ``name`` (``weight``/``input``/``output``)."""
        if self.shared_buffer:
            return self.buffers[0]
        return next(b for b in self.buffers if b.name == name)


# --- strict loading ------------------------------------------------------------------------
_SECTIONS = {"array": PEArray, "dram": DRAM, "weight_gen": WeightGen}
_TOP_KEYS = ("name", "description", "clock_mhz", "tech", "array", "buffers", "dram",
             "weight_gen", "energy")
_BUFFER_KEYS = tuple(f.name for f in dataclasses.fields(Buffer) if f.name != "name")


def _field_types(cls) -> dict[str, type]:
    hints = typing.get_type_hints(cls)
    out = {}
    for name, hint in hints.items():
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        out[name] = args[0] if args else hint
    return out


def _check_type(where: str, value, expected: type) -> None:
    if expected is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif expected is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, expected)
    if not ok:
        raise ValueError(f"{where}: expected {expected.__name__}, got "
                         f"{type(value).__name__} {value!r}")


def _check_section(where: str, data, allowed: tuple[str, ...], types: dict[str, type],
                   prefix: str) -> None:
    if not isinstance(data, dict):
        # ValueError, not TypeError: every spec problem is one kind of error for the CLI.
        raise ValueError(f"{prefix}{where}: expected a mapping, "  # noqa: TRY004
                         f"got {type(data).__name__}")
    for key, value in data.items():
        if key not in allowed:
            raise ValueError(f"{prefix}{where}.{key}: unknown key; allowed: {', '.join(allowed)}")
        if key in types and not isinstance(value, dict):
            _check_type(f"{prefix}{where}.{key}", value, types[key])


def _check_raw(raw: dict, prefix: str) -> None:
    """Unknown keys and wrong types, with messages naming ``prefix`` + dotted key."""
    top_types = {"name": str, "description": str, "clock_mhz": float, "tech": str}
    for key, value in raw.items():
        if key not in _TOP_KEYS:
            raise ValueError(f"{prefix}{key}: unknown key; allowed: {', '.join(_TOP_KEYS)}")
        if key in top_types:
            _check_type(f"{prefix}{key}", value, top_types[key])
    for section, cls in _SECTIONS.items():
        if raw.get(section) is not None:
            _check_section(section, raw[section], tuple(_field_types(cls)), _field_types(cls),
                           prefix)
    if raw.get("energy") is not None:
        _check_energy(raw["energy"], prefix)
    buffers = raw.get("buffers", {})
    if not isinstance(buffers, dict):
        raise ValueError(f"{prefix}buffers: expected a mapping of buffer name to spec")  # noqa: TRY004
    allowed_names = ("weight", "input", "output", "shared")
    for name, spec in buffers.items():
        if name not in allowed_names:
            raise ValueError(f"{prefix}buffers.{name}: unknown key; allowed: "
                             f"{', '.join(allowed_names)}")
        _check_section(f"buffers.{name}", spec, _BUFFER_KEYS, _field_types(Buffer), prefix)


def _check_energy(energy, prefix: str) -> None:
    """``energy: {mac_pj: {BITS: PJ, ...}}`` with integer bits and numeric pJ."""
    _check_section("energy", energy, ("mac_pj",), {}, prefix)
    table = energy.get("mac_pj", {})
    if not isinstance(table, dict):
        raise ValueError(f"{prefix}energy.mac_pj: expected a mapping of operand bits to pJ, "  # noqa: TRY004
                         f"got {type(table).__name__}")
    for bits, pj in table.items():
        _check_type(f"{prefix}energy.mac_pj key", bits, int)
        _check_type(f"{prefix}energy.mac_pj.{bits}", pj, float)


def _merge(base: dict, overrides: dict, path: str, touched: set[str]) -> dict:
    out = dict(base)
    for key, value in overrides.items():
        dotted = f"{path}{key}"
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value, f"{dotted}.", touched)
        else:
            out[key] = value
            touched.add(dotted)
    return out


def _build(raw: dict) -> Accelerator:
    missing = [key for key in ("name", "clock_mhz", "array", "buffers", "dram") if key not in raw]
    if missing:
        raise ValueError(f"{missing[0]}: required key missing")
    for section, cls in _SECTIONS.items():
        given = raw.get(section) or {}
        required = [f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING and f.name not in given]
        if section == "weight_gen" and not given:
            continue
        if required:
            raise ValueError(f"{section}.{required[0]}: required key missing")
    buffers = []
    for name, spec in raw["buffers"].items():
        for key in ("size_bytes", "bw_bytes_per_cycle"):
            if key not in spec:
                raise ValueError(f"buffers.{name}.{key}: required key missing")
        buffers.append(Buffer(name=name, **spec))
    weight_gen = raw.get("weight_gen")
    return Accelerator(
        name=raw["name"], clock_mhz=raw["clock_mhz"], array=PEArray(**raw["array"]),
        buffers=tuple(buffers), dram=DRAM(**raw["dram"]), tech=raw.get("tech", "horowitz45"),
        weight_gen=WeightGen(**weight_gen) if weight_gen else None,
        description=raw.get("description", ""),
        energy=Energy(mac_pj=tuple(sorted((raw.get("energy") or {}).get("mac_pj", {}).items()))))


def list_accelerators() -> list[str]:
    """Preset names (file stems in ``hwsim/accelerators``), sorted."""
    return sorted(path.stem for path in PRESET_DIR.glob("*.yaml"))


def _resolve(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        return path
    preset = PRESET_DIR / f"{name_or_path}.yaml"
    if preset.is_file():
        return preset
    close = difflib.get_close_matches(name_or_path, list_accelerators(), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"unknown accelerator {name_or_path!r}{hint} "
                     f"(known: {', '.join(list_accelerators())})")


@functools.lru_cache(maxsize=64)
def _read_spec(path: Path, mtime_ns: int, size: int) -> dict:
    """Parsed and checked YAML of a spec file; cached because a sweep builds thousands of
    accelerators from a few files (YAML parsing is 10x the rest). Keyed on the file's mtime and
    size so an edited file is read again; callers never mutate the returned dict."""
    raw = load_yaml(path)
    _check_raw(raw, f"{path.name}: ")
    return raw


def load_accelerator(name_or_path: str, overrides: dict | None = None) -> Accelerator:
    """Load a preset by name or a YAML file by path, with nested ``overrides`` applied.

    ``overrides`` mirrors the YAML, e.g. ``{"array": {"rows": 16}}`` (from
    ``--set accel.array.rows=16``). Errors name the file, or ``accel.<key>`` when the offending
    value came from an override.
    """
    path = _resolve(name_or_path)
    if not path.is_file():
        load_yaml(path)  # raises the reader's one-line error (missing, a folder, ...)
    stat = path.stat()
    raw = _read_spec(path.resolve(), stat.st_mtime_ns, stat.st_size)
    touched: set[str] = set()
    if overrides:
        _check_raw(overrides, "accel.")
        raw = _merge(raw, overrides, "", touched)
    try:
        return _build(raw)
    except (TypeError, ValueError) as exc:
        message = str(exc)
        key = message.split(" ", 1)[0].rstrip(":")
        parts = key.split(".")
        # The override set the key, a section the key belongs to, or a key inside it.
        if any(".".join(parts[:i]) in touched for i in range(1, len(parts) + 1)) or any(
                t.startswith(f"{key}.") for t in touched):
            # Name the accelerator too: one --set goes to every --accel of hwsim compare.
            raise ValueError(f"accel.{message} (accelerator {name_or_path})") from None
        raise ValueError(f"{path.name}: {message}") from None


def accelerator_dict(accel: Accelerator) -> dict:
    """JSON-able description of ``accel`` including its tech table name and citation."""
    data = dataclasses.asdict(accel)
    data["buffers"] = {b.pop("name"): b for b in data["buffers"]}
    data["energy"] = {"mac_pj": dict(accel.energy.mac_pj)}
    table = get_tech(accel.tech)
    data["tech"] = {"name": table.name, "citation": table.citation}
    return data


__all__ = [
    "DATAFLOWS",
    "DRAM",
    "PRECISION_MODES",
    "Energy",
    "Accelerator",
    "Buffer",
    "PEArray",
    "WeightGen",
    "accelerator_dict",
    "list_accelerators",
    "load_accelerator",
]
