"""Exact pattern checks after decoding.

msgspec checks string patterns with ``re.search``, where ``$`` also matches
before a final newline: ``"…c0de\\n"`` would pass as a UUID and then break a
NATS subject or header. JSON Schema (ECMA-262) and Go's RE2 anchor ``$`` at the
very end, so this module re-checks every patterned string of a decoded envelope
with ``fullmatch``, keeping the three engines in agreement. The checker for a
type is built once from ``msgspec.inspect`` and only visits fields that can
hold a patterned string.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import msgspec
import msgspec.inspect as mi

# Reports the first violation as (path, message), or None.
Checker = Callable[[Any, str], tuple[str, str] | None]


def strict_check(value: Any, type_: Any) -> tuple[str, str] | None:
    """First string in ``value`` that matches its pattern only loosely, as (path, expected)."""
    checker = _checker_for(type_)
    return None if checker is None else checker(value, "$")


@functools.cache
def _checker_for(type_: Any) -> Checker | None:
    return _build(mi.type_info(type_), {})


def _build(info: mi.Type, seen: dict[type, Checker | None]) -> Checker | None:  # noqa: PLR0911
    if isinstance(info, mi.Metadata):
        return _build(info.type, seen)
    if isinstance(info, mi.StrType):
        return None if info.pattern is None else _pattern_checker(info.pattern)
    if isinstance(info, mi.StructType):
        return _struct_checker(info, seen)
    if isinstance(info, mi.ListType | mi.VarTupleType | mi.SetType | mi.FrozenSetType):
        return _items_checker(_build(info.item_type, seen))
    if isinstance(info, mi.DictType):
        return _values_checker(_build(info.value_type, seen))
    if isinstance(info, mi.UnionType):
        members = [c for c in (_build(t, seen) for t in info.types) if c is not None]
        if not members:
            return None
        # A decoded value matched exactly one member's Python type; the members
        # of our unions (X | None) never overlap, so checking each is exact.
        return _union_checker(members)
    return None


def _pattern_checker(pattern: str) -> Checker:
    compiled = re.compile(pattern)

    def check(value: Any, path: str) -> tuple[str, str] | None:
        if isinstance(value, str) and compiled.fullmatch(value) is None:
            return path, f"Expected `str` matching regex {pattern!r}"
        return None

    return check


def _struct_checker(info: mi.StructType, seen: dict[type, Checker | None]) -> Checker | None:
    if info.cls in seen:
        # A recursive Struct: defer to its own (cached) checker at check time.
        cls = info.cls

        def deferred(value: Any, path: str) -> tuple[str, str] | None:
            checker = _checker_for(cls)
            return None if checker is None else checker(value, path)

        return deferred
    cls = info.cls
    seen[cls] = None
    fields = [
        (field.name, field.encode_name, checker)
        for field in info.fields
        if (checker := _build(field.type, seen)) is not None
    ]
    if not fields:
        return None

    def check(value: Any, path: str) -> tuple[str, str] | None:
        if not isinstance(value, cls):
            return None
        for name, encode_name, checker in fields:
            found = checker(getattr(value, name), f"{path}.{encode_name}")
            if found is not None:
                return found
        return None

    return check


def _items_checker(item: Checker | None) -> Checker | None:
    if item is None:
        return None

    def check(value: Any, path: str) -> tuple[str, str] | None:
        for index, element in enumerate(value):
            found = item(element, f"{path}[{index}]")
            if found is not None:
                return found
        return None

    return check


def _values_checker(item: Checker | None) -> Checker | None:
    if item is None:
        return None

    def check(value: Any, path: str) -> tuple[str, str] | None:
        for key, element in value.items():
            found = item(element, f"{path}.{key}")
            if found is not None:
                return found
        return None

    return check


def _union_checker(members: list[Checker]) -> Checker:
    def check(value: Any, path: str) -> tuple[str, str] | None:
        if value is None or value is msgspec.UNSET:
            return None
        for member in members:
            found = member(value, path)
            if found is not None:
                return found
        return None

    return check
