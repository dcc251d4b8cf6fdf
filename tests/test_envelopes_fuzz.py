"""Fuzzing every decoder: whatever the bytes, the only error is a clear EnvelopeError.

Random bytes, byte-level mutations of the golden examples, and structure-aware
mutations (a random JSON value swapped in anywhere) go through ``decode`` for
every exported type, through ``decode_json``/``canonicalize``, and through the
header checks. Anything else escaping (ValueError, RecursionError,
UnicodeDecodeError, …) fails the test, and whatever is accepted must have a
canonical form.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from gitstore_agents.envelopes import (
    SCHEMA_TYPES,
    EnvelopeError,
    canonical_json,
    canonicalize,
    decode,
    decode_json,
    headers,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "schemas" / "examples"
TYPES = {t.__name__: t for t in SCHEMA_TYPES}
SEEDS = [(TYPES[p.name.split(".")[0]], p.read_bytes()) for p in sorted(EXAMPLES.glob("*.json"))]

FUZZ = settings(max_examples=400, deadline=None, derandomize=True, database=None)

any_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["", "\n", "sha256:", "refs/", "1.0", "2.0", "..", "*", ">"]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def _refusal(call: Callable[[], object]) -> EnvelopeError | None:
    """The EnvelopeError ``call`` raised, or None; any other exception propagates."""
    try:
        call()
    except EnvelopeError as exc:
        return exc
    return None


def _accepts_or_explains(data: bytes, type_: Any) -> None:
    # Whatever the boundary lets in can be hashed.
    refusal = _refusal(lambda: canonical_json(decode(data, type_)))
    if refusal is not None:
        assert refusal.message, "an EnvelopeError must say what failed"
        assert refusal.code
        assert not refusal.retryable


def _mutate(data: bytes, ops: list[tuple[int, int, bytes]]) -> bytes:
    buf = bytearray(data)
    for kind, position, chunk in ops:
        at = position % (len(buf) + 1)
        if kind == 0:  # overwrite
            buf[at : at + len(chunk)] = chunk
        elif kind == 1:  # insert
            buf[at:at] = chunk
        elif kind == 2:  # delete
            del buf[at : at + len(chunk) + 1]
        else:  # duplicate a slice
            buf[at:at] = buf[at : at + len(chunk) * 8]
    return bytes(buf)


mutation = st.tuples(st.integers(0, 3), st.integers(0, 1 << 20), st.binary(min_size=1, max_size=8))


@FUZZ
@given(st.binary(max_size=256), st.sampled_from(SCHEMA_TYPES))
def test_random_bytes(data: bytes, type_: Any) -> None:
    _accepts_or_explains(data, type_)


@FUZZ
@given(st.sampled_from(SEEDS), st.lists(mutation, min_size=1, max_size=6))
def test_mutated_golden_examples(
    seed: tuple[Any, bytes], ops: list[tuple[int, int, bytes]]
) -> None:
    type_, data = seed
    _accepts_or_explains(_mutate(data, ops), type_)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, *rest = path
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[head] = _replace(value[head], tuple(rest), new)
    return copy


@FUZZ
@given(st.sampled_from(SEEDS), st.integers(min_value=0), any_json, st.booleans())
def test_structure_aware_mutations(
    seed: tuple[Any, bytes], pick: int, new: Any, drop: bool
) -> None:
    type_, data = seed
    original = json.loads(data)
    paths = _paths(original)
    path = paths[pick % len(paths)]
    if drop and path and isinstance(path[-1], str):
        # Remove the key instead (``original`` is a fresh copy: mutate it in place).
        container = original
        for step in path[:-1]:
            container = container[step]
        del container[path[-1]]
        mutated = original
    else:
        mutated = _replace(original, path, new)
    _accepts_or_explains(json.dumps(mutated).encode(), type_)


@FUZZ
@given(st.binary(max_size=256))
def test_untyped_json_decoders(data: bytes) -> None:
    for refusal in (_refusal(lambda: decode_json(data)), _refusal(lambda: canonicalize(data))):
        assert refusal is None or refusal.message


@FUZZ
@given(any_json)
def test_canonicalize_accepts_exactly_the_float_free_documents(value: Any) -> None:
    data = json.dumps(value).encode()
    refusal = _refusal(lambda: canonicalize(data))
    if refusal is not None:
        assert refusal.code in {"envelope-invalid", "canonical-form"}
    else:
        assert msgspec.json.decode(canonicalize(data)) == value


def test_pathological_inputs() -> None:
    deep = b"[" * 50_000 + b"]" * 50_000
    for type_ in SCHEMA_TYPES:
        for data in (
            b"",
            b"null",
            b"[]",
            b"{}",
            deep,
            b'{"a":' * 20_000,
            b"\xff\xfe",
            b'"\\ud800"',
        ):
            _accepts_or_explains(data, type_)


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(
            ["Content-Type", "content-type", "GitStore-Schema-Version", "traceparent", "x"]
        ),
        st.text(max_size=60),
        max_size=4,
    )
)
def test_header_readers(raw: dict[str, str]) -> None:
    received = headers.read_headers(raw)
    refusal = _refusal(lambda: headers.check_headers(received, "GitEvent"))
    assert refusal is None or refusal.message
