"""Accelerator specs: presets load, every bad key or value is a one-line error naming it."""

import json

import pytest

from hwsim.accel import accelerator_dict, list_accelerators, load_accelerator

PRESETS = ("systolic_32", "eyeriss_like", "bitserial_32", "bitfusion_16", "mlg_gen")
SPEC = """# test spec
name: tiny
clock_mhz: 100
array: {rows: 4, cols: 4, dataflow: ws}
buffers:
  shared: {size_bytes: 4096, bw_bytes_per_cycle: 16}
dram: {bw_bytes_per_cycle: 8}
"""


def write(tmp_path, text, name="tiny.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_presets_listed_and_load():
    assert set(PRESETS) <= set(list_accelerators())
    for name in list_accelerators():
        accel = load_accelerator(name)
        assert accel.name == name
        data = accelerator_dict(accel)
        json.dumps(data)
        assert data["tech"]["citation"]


def test_preset_shapes():
    assert load_accelerator("eyeriss_like").array.num_pes == 168
    assert load_accelerator("eyeriss_like").buffers[0].size_bytes == 108 * 1024
    assert load_accelerator("bitserial_32").array.precision_mode == "bit_serial_act"
    assert load_accelerator("mlg_gen").weight_gen.macs_per_cycle > 0


def test_load_by_path_and_defaults(tmp_path):
    accel = load_accelerator(write(tmp_path, SPEC))
    assert accel.shared_buffer and accel.buffer("weight").size_bytes == 4096
    assert accel.buffers[0].usable_bytes == 2048
    assert accel.tech == "horowitz45" and accel.dram.transaction_bytes == 64


@pytest.mark.parametrize("old,new,message", [
    ("rows: 4,", "rows: 0,", "tiny.yaml: array.rows must be > 0, got 0"),
    ("dataflow: ws", "dataflow: rs", "tiny.yaml: array.dataflow must be one of ws, os, is"),
    ("dataflow: ws", "dataflow: ws, rowz: 3", "tiny.yaml: array.rowz: unknown key"),
    ("size_bytes: 4096", "size_bytes: -1", "tiny.yaml: buffers.shared.size_bytes must be > 0"),
    ("clock_mhz: 100", "clock_mhz: fast", "tiny.yaml: clock_mhz: expected float, got str"),
    ("shared:", "scratch:", "tiny.yaml: buffers.scratch: unknown key"),
])
def test_bad_values_name_file_and_key(tmp_path, old, new, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")) as info:
        load_accelerator(write(tmp_path, SPEC.replace(old, new)))
    assert "\n" not in str(info.value)


def test_duplicate_key_rejected(tmp_path):
    with pytest.raises(ValueError, match="duplicate key 'name'"):
        load_accelerator(write(tmp_path, SPEC + "name: again\n"))


def test_unknown_preset_suggests():
    with pytest.raises(ValueError, match="did you mean systolic_32"):
        load_accelerator("systolic_23")


def test_overrides():
    accel = load_accelerator("systolic_32",
                             {"array": {"rows": 16}, "dram": {"bw_bytes_per_cycle": 8}})
    assert accel.array.rows == 16 and accel.array.cols == 32 and accel.dram.bw_bytes_per_cycle == 8
    with pytest.raises(ValueError, match=r"^accel\.array\.rowz: unknown key; allowed: rows, cols"):
        load_accelerator("systolic_32", {"array": {"rowz": 16}})
    with pytest.raises(ValueError, match=r"^accel\.array\.rows: expected int, got str"):
        load_accelerator("systolic_32", {"array": {"rows": "many"}})
    with pytest.raises(ValueError, match=r"^accel\.array\.rows must be > 0, got 0"):
        load_accelerator("systolic_32", {"array": {"rows": 0}})
    with pytest.raises(ValueError, match=r"^accel\.tech must be one of"):
        load_accelerator("systolic_32", {"tech": "tsmc3"})
