"""Config loading and dotted overrides."""

import pytest

from hwsim.config import apply_overrides, load_yaml, parse_set


def test_parse_set_types():
    assert parse_set("optimizer.lr=0.05") == ("optimizer.lr", 0.05)
    assert parse_set("model.num_classes=100") == ("model.num_classes", 100)
    assert parse_set("train.amp=true") == ("train.amp", True)
    assert parse_set("data.name=cifar10") == ("data.name", "cifar10")


@pytest.mark.parametrize("bad", ["lr", "=3", "a..b=1", "a.b=[1, 2]"])
def test_parse_set_rejects(bad):
    with pytest.raises(ValueError, match="--set"):
        parse_set(bad)


def test_apply_overrides_nested_and_copy():
    base = {"optimizer": {"lr": 0.1}}
    out = apply_overrides(base, ["optimizer.lr=0.01", "mlg.base_in=2"])
    assert out == {"optimizer": {"lr": 0.01}, "mlg": {"base_in": 2}}
    assert base == {"optimizer": {"lr": 0.1}}
    with pytest.raises(ValueError, match="optimizer.lr is not a section"):
        apply_overrides(base, ["optimizer.lr.x=1"])


def test_load_yaml_strict(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("a: 1\na: 2\n")
    with pytest.raises(ValueError, match="c.yaml: invalid YAML: .*duplicate key 'a'"):
        load_yaml(path)
    path.write_text("- 1\n")
    with pytest.raises(ValueError, match="top level must be a mapping"):
        load_yaml(path)
    path.write_text("x: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ValueError, match="invalid YAML"):
        load_yaml(path)
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        load_yaml(tmp_path / "missing.yaml")

