"""Configs: strict YAML loading and dotted ``--set key=value`` overrides.

Shared by every command that builds a model or an accelerator. A config is a nested dict;
``--set a.b=v`` parses ``v`` as a YAML scalar (so ``3`` is an int, ``0.05`` a float, ``true`` a
bool) and sets ``cfg["a"]["b"]``. Whoever consumes a section checks its keys and types.
"""

import os
import re
from pathlib import Path

import yaml

# Namespaces whose keys are passed to the compressed models as one dict argument of that name.
METHOD_NAMESPACES = ("mlg", "resrep", "pg", "cg")
# Least values of the calibration settings (hwsim pipeline's hardware keys, sweep points, a
# checkpoint's stored config): 0 batches is no calibration. Here, not in hwsim.pipeline, so
# that checking a sweep file does not import torch.
CALIB_LEAST = {"calib_batches": 0, "calib_batch_size": 1}

MAX_NESTING = 64  # a config deeper than this is a mistake (or an attack on the parser)
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
# YAML 1.2 reads 1e-3 and 1.0e3 as floats; PyYAML (YAML 1.1) needs a dot and a signed exponent.
_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")


class _StrictLoader(yaml.SafeLoader):
    """Safe loader for configs: duplicate keys and aliases are errors, ``1e-3`` is a float,
    dates stay strings."""

    def compose_node(self, parent, index):
        # An alias can expand a few lines into gigabytes (the "billion laughs"); configs are
        # short enough to write every value out.
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, f"aliases (*{event.anchor}) are not allowed in configs; "
                            f"write the value out", event.start_mark)
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_NESTING:
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {MAX_NESTING} levels",
                    self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


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


def _plain_values_only(loader, node):
    raise yaml.constructor.ConstructorError(
        None, None, f"tag {node.tag.replace('tag:yaml.org,2002:', '!!')} is not allowed in "
                    f"configs (plain strings, numbers, booleans, lists and mappings only)",
        node.start_mark)


# A config holds what JSON can: a byte string, set or ordered pair list would pass no schema
# and break the JSON copy of the config that results carry.
for _tag in ("binary", "set", "omap", "pairs", "timestamp"):
    _StrictLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _plain_values_only)
_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_StrictLoader.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT,
                                    list("-+0123456789."))


def parse_yaml(text: str, where: str) -> object:
    """``text`` parsed by the config loader; any problem is a ValueError naming ``where``."""
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = " ".join(f"{exc.context or ''} {exc.problem or ''}".split())
        raise ValueError(f"{where}: invalid YAML: {problem}{at}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{where}: invalid YAML: {' '.join(str(exc).split())}") from None
    except (ValueError, TypeError, AttributeError, OverflowError) as exc:
        # PyYAML's constructors let these through for explicit tags (!!float abc) and
        # unhashable keys ({[1]: 2}).
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise ValueError(f"{where}: invalid YAML: {reason}") from None


def load_yaml(path: str | os.PathLike) -> dict:
    """Load a YAML mapping safely; duplicate keys, aliases and non-mapping documents are errors."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a folder, expected a YAML file")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text (byte {exc.start}); expected a YAML file"
                         ) from None
    data = parse_yaml(text, str(path))
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
        value = parse_yaml(raw, f"--set {key}") if raw.strip() else ""
    except ValueError:
        value = raw  # not YAML (e.g. an unbalanced quote): the text itself
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
