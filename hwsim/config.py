"""Configs: strict YAML loading and dotted ``--set key=value`` overrides.

Shared by every command that builds a model or an accelerator. A config is a nested dict;
``--set a.b=v`` parses ``v`` as a YAML scalar (so ``3`` is an int, ``0.05`` a float, ``true`` a
bool) and sets ``cfg["a"]["b"]``. Whoever consumes a section checks its keys and types.
"""

import os
from pathlib import Path

import yaml

# Namespaces whose keys are passed to the compressed models as one dict argument of that name.
METHOD_NAMESPACES = ("mlg", "resrep", "pg", "cg")


class _StrictLoader(yaml.SafeLoader):
    """Safe loader that rejects duplicate keys instead of keeping the last one."""


def _mapping_without_duplicates(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                              _mapping_without_duplicates)


def load_yaml(path: str | os.PathLike) -> dict:
    """Load a YAML mapping safely; duplicate keys and non-mapping documents are errors."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        data = yaml.load(path.read_text(), Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: invalid YAML: {' '.join(str(exc).split())}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def parse_set(item: str) -> tuple[str, object]:
    """Split ``a.b=value`` into the dotted key and the YAML-parsed value."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ValueError(f"--set {item!r}: expected key=value with a dotted key, e.g. "
                         f"model.num_classes=100")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    if isinstance(value, (dict, list)):
        raise ValueError(f"--set {item!r}: value must be a scalar")
    return key, value


def set_dotted(cfg: dict, key: str, value: object) -> None:
    """Set ``cfg[a][b]... = value`` for ``key='a.b...'``, creating sections as needed."""
    *parents, leaf = key.split(".")
    node = cfg
    for i, part in enumerate(parents):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ValueError(f"--set {key}: {'.'.join(parents[:i + 1])} is not a section")
        node = child
    node[leaf] = value


def apply_overrides(cfg: dict, items: list[str]) -> dict:
    """Apply ``--set`` items to a copy of ``cfg`` and return it."""
    out = yaml.safe_load(yaml.safe_dump(cfg)) or {}
    for item in items:
        set_dotted(out, *parse_set(item))
    return out


def dump_yaml(data: dict) -> str:
    return yaml.safe_dump(data, sort_keys=False)
