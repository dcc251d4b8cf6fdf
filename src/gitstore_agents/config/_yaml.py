"""Reading the YAML files people write (configuration, policy): safe, and no key twice.

YAML keeps only the last of two equal keys in a mapping, silently. In a file a
reviewer reads, that means the reviewer may approve the first ``paths:`` while
the worker runs with the second, so both loaders refuse a repeated key,
naming it and both lines. Everything else is what ``msgspec.yaml.decode``
does: PyYAML's safe loader (the C one when available), plain Python values.
"""

from __future__ import annotations

from typing import Any

# PyYAML ships no annotations (and types-PyYAML is not a dependency): the few
# names used here are treated as Any.
import yaml  # type: ignore[import-untyped]

# The C loader when PyYAML was built with libyaml, as msgspec.yaml uses.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlError(ValueError):
    """The text is not YAML, or a mapping in it repeats a key."""


class DuplicateKeyError(YamlError):
    """A mapping repeats a key.

    Attributes:
        key: The repeated key.
        line: 1-based line of the repetition.
        first_line: 1-based line where the key first appears.
    """

    def __init__(self, key: Any, line: int, first_line: int) -> None:
        super().__init__(
            f"duplicate key {key!r} at line {line} (first at line {first_line}): "
            "YAML would keep only the last one; remove one of them"
        )
        self.key = key
        self.line = line
        self.first_line = first_line


class _UniqueKeyLoader(_Loader):  # type: ignore[misc]
    """The safe loader, refusing a mapping that repeats a key."""


def _construct_mapping(loader: Any, node: Any) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        # `<<: *anchor` merges are overridden by explicit keys on purpose (YAML
        # semantics); only keys written twice are refused.
        if key_node.tag == _MERGE_TAG:
            continue
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        try:
            first = seen.get(key)
        except TypeError:
            continue  # an unhashable key: construct_mapping below refuses it, naming it
        if first is not None:
            raise DuplicateKeyError(key, line, first)
        seen[key] = line
    mapping: dict[Any, Any] = loader.construct_mapping(node, deep=True)
    return mapping


_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)


def decode_yaml(data: bytes | str) -> Any:
    """Parse ``data`` as YAML into plain Python values, refusing repeated keys.

    Raises:
        DuplicateKeyError: a mapping repeats a key (naming it and its lines).
        YamlError: ``data`` is not YAML.
    """
    try:
        return yaml.load(data, Loader=_UniqueKeyLoader)
    except DuplicateKeyError:
        raise
    except (yaml.YAMLError, ValueError, LookupError, AttributeError) as exc:
        # PyYAML's messages span lines (problem, then position): one line reads
        # better in an error line, and nothing is lost.
        raise YamlError(" ".join(str(exc).split())) from None
