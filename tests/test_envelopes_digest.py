"""Canonical JSON and digests: golden values, and properties that make them stable."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitstore_agents.envelopes import (
    CanonicalFormError,
    GitEvent,
    MarkdownInput,
    TaskRequest,
    ValidationRequest,
    canonical_digest,
    canonical_json,
    decode,
    derive_idempotency_key,
    git_blob_oid,
    sha256_digest,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "schemas" / "examples"

# Fixed examples, no shrink database: CI runs the same cases every time, fast.
PROPERTIES = settings(max_examples=300, deadline=None, derandomize=True, database=None)

# JSON values with a canonical form: integers in range, valid Unicode strings.
json_strings = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1) | json_strings,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(json_strings, children, max_size=5)
    ),
    max_leaves=30,
)


def _reference_canonical(value: Any) -> bytes:
    """An independent implementation of the documented form (Python's json module)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def test_golden_canonical_bytes_and_digest() -> None:
    value = {"b": [1, "é", None, True], "a": {"z": "line\nbreak", "y": -42}, "A": "<&>/\u2028"}
    data = canonical_json(value)
    assert (
        data == '{"A":"<&>/\u2028","a":{"y":-42,"z":"line\\nbreak"},"b":[1,"é",null,true]}'.encode()
    )
    assert sha256_digest(data) == (
        "sha256:4ea3a9c1b1e99afb948ccadc596f6f72fb5857a7a57804c7af4736c0ab56db78"
    )


def test_golden_string_escapes() -> None:
    assert (
        canonical_json('"\\\b\f\n\r\t\x00\x1f\x7f/')
        == b'"\\"\\\\\\b\\f\\n\\r\\t\\u0000\\u001f\x7f/"'
    )


def test_golden_markdown_input_digest() -> None:
    task_input = MarkdownInput(path="products/a.md", content="---\nkind: Product\n---\n")
    assert canonical_json(task_input) == (
        b'{"content":"---\\nkind: Product\\n---\\n","parameters":{},"path":"products/a.md"}'
    )
    assert canonical_digest(task_input) == (
        "sha256:6682dbd11bcca6f32f287af6a9364d3a282dfb81ee433a3702cee60bce6bcfc3"
    )
    # A Struct and its builtins form hash the same.
    assert canonical_digest(msgspec.to_builtins(task_input)) == canonical_digest(task_input)


def test_golden_idempotency_key() -> None:
    key = derive_idempotency_key(
        "0193f1c2-7a4b-7c3d-9e8f-0a1b2c3d4e5f",
        "markdown.compile",
        "sha256:" + "1" * 64,
        "sha256:" + "2" * 64,
    )
    assert key == "sha256:7bc2b4c093e42ed06fd3ed9172505df30488f2b671c940861ed47bcf83695ba1"


def test_golden_git_blob_ids() -> None:
    # `printf 'hello\n' | git hash-object --stdin` (and with --object-format=sha256).
    assert git_blob_oid(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"
    assert git_blob_oid(b"hello\n", object_format="sha256") == (
        "2cf8d83d9ee29543b34a87727421fdecb7e3f3a183d337639025de576db9ebb4"
    )
    assert git_blob_oid(b"") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"


def test_golden_example_digests() -> None:
    """The committed examples keep their digests: a change here breaks every replay."""
    task = decode((EXAMPLES / "TaskRequest.json").read_bytes(), TaskRequest)
    assert task.input_digest == canonical_digest(task.input)
    assert task.input_digest == (
        "sha256:cf793ab0dc93f89d1124fd34ae9ee6050d4b41fba739bff66ac6d7d4deb63b70"
    )
    assert task.idempotency_key == derive_idempotency_key(
        task.source_event_id, task.kind, task.input_digest, task.module_digest
    )
    assert task.idempotency_key == (
        "sha256:7106c219227d87c07475c6095f9be0f46aac6b91aa770b062ad2260a6e957609"
    )
    request = decode((EXAMPLES / "ValidationRequest.json").read_bytes(), ValidationRequest)
    assert sha256_digest(bytes(request.output)) == request.output_digest
    event = decode((EXAMPLES / "GitEvent.handwritten.json").read_bytes(), GitEvent)
    assert canonical_digest(event) == (
        "sha256:889b8cb61a9ed694fc050df0007d5f761f3aed84ab1a9f3eade86dd18f964e0f"
    )


@pytest.mark.parametrize(
    ("value", "path"),
    [
        (1.5, "$"),
        ({"price": {"amount": 149.9}}, "$.price.amount"),
        ([0, float("nan")], "$[1]"),
        ({"n": 2**64}, "$.n"),
        ({"n": -(2**63) - 1}, "$.n"),
        ({1: "x"}, "$"),
        (MarkdownInput(path="a.md", content="x", parameters={"w": 0.1}), "$.parameters.w"),
        ({"s": {1, 2}}, "$.s"),
    ],
)
def test_values_without_a_canonical_form_are_refused(value: Any, path: str) -> None:
    with pytest.raises(CanonicalFormError) as caught:
        canonical_json(value)
    assert caught.value.message.startswith(f"{path}:")


def test_lone_surrogates_are_refused() -> None:
    with pytest.raises(CanonicalFormError):
        canonical_json({"s": "\ud800"})


@PROPERTIES
@given(json_values)
def test_canonical_form_matches_an_independent_implementation(value: Any) -> None:
    assert canonical_json(value) == _reference_canonical(value)


@PROPERTIES
@given(json_values, st.randoms(use_true_random=False))
def test_canonical_bytes_do_not_depend_on_key_insertion_order(
    value: Any, rnd: random.Random
) -> None:
    def shuffled(v: Any) -> Any:
        if isinstance(v, dict):
            items = list(v.items())
            rnd.shuffle(items)
            return {k: shuffled(x) for k, x in items}
        if isinstance(v, list):
            return [shuffled(x) for x in v]
        return v

    assert canonical_json(shuffled(value)) == canonical_json(value)
    assert canonical_digest(shuffled(value)) == canonical_digest(value)


@PROPERTIES
@given(json_values)
def test_canonical_form_round_trips(value: Any) -> None:
    data = canonical_json(value)
    assert canonical_json(msgspec.json.decode(data)) == data
    # Re-serialized with whitespace and another key order: same canonical bytes.
    pretty = json.dumps(value, indent=3, sort_keys=False).encode()
    assert canonical_json(msgspec.json.decode(pretty)) == data


@PROPERTIES
@given(st.binary(max_size=512))
def test_git_blob_oid_is_gits_hash(content: bytes) -> None:
    header = b"blob " + str(len(content)).encode() + b"\x00"
    assert git_blob_oid(content) == hashlib.sha1(header + content).hexdigest()
