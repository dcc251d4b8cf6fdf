"""Decoding at the trust boundary: exact formats, named paths, version rules."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from gitstore_agents.envelopes import (
    CompiledResource,
    EnvelopeError,
    GitEvent,
    SchemaVersionError,
    TaskRequest,
    ValidationRequest,
    canonicalize,
    decode,
    decode_json,
    format_timestamp,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "schemas" / "examples"


def _example(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EXAMPLES / name).read_text())
    return loaded


def _encode(value: Any) -> bytes:
    return json.dumps(value).encode()


def _event_error(mutate: Any) -> EnvelopeError:
    event = _example("GitEvent.handwritten.json")
    mutate(event)
    with pytest.raises(EnvelopeError) as caught:
        decode(_encode(event), GitEvent)
    return caught.value


@pytest.mark.parametrize(
    ("mutate", "field", "expected"),
    [
        (lambda e: e.update(event_id=7), "$.event_id", "Expected `str`, got `int`"),
        (lambda e: e.update(event_id="not-a-uuid"), "$.event_id", "lower-case UUID"),
        (lambda e: e.update(event_id=e["event_id"].upper()), "$.event_id", "lower-case UUID"),
        (lambda e: e.pop("occurred_at"), "$.occurred_at", "missing required field"),
        (lambda e: e.update(occurred_at="2026-12-01T09:30:00+02:00"), "$.occurred_at", "UTC"),
        (lambda e: e["blobs"][0].pop("blob_oid"), "$.blobs[0].blob_oid", "missing required"),
        (lambda e: e["blobs"][0].update(path="../etc/passwd"), "$.blobs[0].path", "path"),
        (lambda e: e["blobs"][0].update(path="/abs.md"), "$.blobs[0].path", "path"),
        (lambda e: e["blobs"][0].update(path="a//b.md"), "$.blobs[0].path", "path"),
        (lambda e: e["blobs"][0].update(ref="sha256:ABC"), "$.blobs[0].ref", "digest"),
        (lambda e: e["changed_paths"].append("x/./y"), "$.changed_paths[2]", "path"),
        (lambda e: e.update(new_commit_sha="e69de29"), "$.new_commit_sha", "git object id"),
        (lambda e: e.update(ref_name="main"), "$.ref_name", "refs/"),
        (lambda e: e.update(request_id="a\r\nX-Evil: 1"), "$.request_id", "NATS header"),
        (lambda e: e.update(blobs={}), "$.blobs", "Expected `array`, got `object`"),
    ],
)
def test_every_decode_error_names_the_field_path_and_what_was_expected(
    mutate: Any, field: str, expected: str
) -> None:
    error = _event_error(mutate)
    assert error.field == field, str(error)
    assert expected in str(error)
    assert f"`{field}`" in str(error)
    assert error.code == "envelope-invalid"
    assert not error.retryable


@pytest.mark.parametrize(
    "field",
    ["event_id", "repository_id", "ref_name", "new_commit_sha", "occurred_at", "request_id"],
)
def test_a_trailing_newline_does_not_slip_past_a_pattern(field: str) -> None:
    # Python's `$` matches before a final newline; JSON Schema's and Go's do not.
    error = _event_error(lambda e: e.update({field: e[field] + "\n"}))
    assert error.field == f"$.{field}"


def test_nested_struct_patterns_are_checked_exactly() -> None:
    error = _event_error(lambda e: e["blobs"][0].update(blob_oid=e["blobs"][0]["blob_oid"] + "\n"))
    assert error.field == "$.blobs[0].blob_oid"


def test_unknown_fields_from_newer_publishers_are_ignored() -> None:
    event = _example("GitEvent.handwritten.json")
    event["schema_version"] = "1.7"
    event["priority"] = "high"
    event["blobs"][0]["mode"] = "100644"
    decoded = decode(_encode(event), GitEvent)
    assert decoded.schema_version == "1.7"
    assert decoded.blobs[0].path == "products/summit-shell-jacket.md"


def test_missing_schema_version_reads_as_1_0() -> None:
    event = _example("GitEvent.handwritten.json")
    del event["schema_version"]
    assert decode(_encode(event), GitEvent).schema_version == "1.0"


@pytest.mark.parametrize("version", ["2.0", "0.9", "10.1"])
def test_another_major_is_refused_with_a_clear_code(version: str) -> None:
    event = _example("GitEvent.handwritten.json")
    event["schema_version"] = version
    with pytest.raises(SchemaVersionError, match=f"schema_version='{version}'") as caught:
        decode(_encode(event), GitEvent)
    assert caught.value.code == "schema-version-unsupported"
    assert caught.value.field == "$.schema_version"


def test_a_new_major_is_reported_before_type_errors_it_may_explain() -> None:
    # A 2.0 publisher may have changed a field's type: say "version", not "type".
    event = _example("GitEvent.handwritten.json")
    event["schema_version"] = "2.0"
    event["blobs"] = {"by_path": {}}
    with pytest.raises(SchemaVersionError):
        decode(_encode(event), GitEvent)


def test_size_is_bounded_before_parsing() -> None:
    data = (EXAMPLES / "GitEvent.handwritten.json").read_bytes()
    with pytest.raises(EnvelopeError, match="max_envelope_bytes=100") as caught:
        decode(data, GitEvent, max_bytes=100)
    assert caught.value.code == "envelope-too-large"
    # Not even JSON: the bound comes first.
    with pytest.raises(EnvelopeError, match="over the limit"):
        decode(b"x" * 101, GitEvent, max_bytes=100)


def test_floats_are_refused_where_any_json_is_allowed() -> None:
    task = _example("TaskRequest.json")
    task["input"]["parameters"] = {"ratio": 0.5}
    with pytest.raises(EnvelopeError, match=r"float 0\.5") as caught:
        decode(_encode(task), TaskRequest)
    assert caught.value.field is not None
    assert caught.value.field.startswith("$.input")


def test_integers_are_refused_as_floats_in_typed_fields() -> None:
    task = _example("TaskRequest.json")
    task["limits"]["fuel"] = 1e9
    with pytest.raises(EnvelopeError) as caught:
        decode(_encode(task), TaskRequest)
    assert caught.value.field == "$.limits.fuel"


def test_seed_is_a_uint64() -> None:
    task = _example("TaskRequest.json")
    task["seed"] = 2**64 - 1
    assert decode(_encode(task), TaskRequest).seed == 2**64 - 1
    task["seed"] = 2**64
    with pytest.raises(EnvelopeError, match="uint64") as caught:
        decode(_encode(task), TaskRequest)
    assert caught.value.field == "$.seed"


def test_deep_nesting_is_a_clear_error() -> None:
    task = _example("TaskRequest.json")
    task["input"]["parameters"] = {"x": "DEEP"}
    data = _encode(task).replace(b'"DEEP"', b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(EnvelopeError) as caught:
        decode(data, TaskRequest)
    assert caught.value.code == "envelope-too-deep"


def test_invalid_utf8_is_a_clear_error() -> None:
    data = (EXAMPLES / "GitEvent.handwritten.json").read_bytes().replace(b"grace", b"gr\xffce")
    with pytest.raises(EnvelopeError, match="invalid UTF-8"):
        decode(data, GitEvent)


def test_compiled_body_is_checked_as_mdast() -> None:
    compiled = _example("CompiledResource.json")
    assert decode(_encode(compiled), CompiledResource).body["type"] == "root"
    compiled["body"]["children"][0]["depth"] = 9
    with pytest.raises(EnvelopeError) as caught:
        decode(_encode(compiled), CompiledResource)
    assert caught.value.field == "$.body.children[0].depth"
    compiled = _example("CompiledResource.json")
    compiled["body"]["type"] = "paragraph"
    with pytest.raises(EnvelopeError, match="root") as caught:
        decode(_encode(compiled), CompiledResource)
    assert caught.value.field == "$.body.type"


def test_compiled_body_keeps_attributes_this_version_does_not_know() -> None:
    compiled = _example("CompiledResource.json")
    compiled["body"]["position"] = {"start": {"line": 1}}
    decoded = decode(_encode(compiled), CompiledResource)
    assert decoded.body["position"] == {"start": {"line": 1}}


def test_canonicalize_module_output() -> None:
    assert canonicalize(b'{ "b": 1, "a": [true, null] }') == b'{"a":[true,null],"b":1}'
    with pytest.raises(EnvelopeError, match="float"):
        canonicalize(b'{"price": 149.90}')
    with pytest.raises(EnvelopeError) as caught:
        canonicalize(b'{"n": 36893488147419103232}')
    assert caught.value.code == "canonical-form"
    with pytest.raises(EnvelopeError, match="malformed JSON"):
        decode_json(b'{"a":')


def test_format_timestamp_matches_the_pattern_and_go() -> None:
    assert format_timestamp(datetime(2026, 12, 1, 9, 30, tzinfo=UTC)) == "2026-12-01T09:30:00Z"
    moment = datetime(2026, 12, 1, 11, 30, 0, 250000, tzinfo=timezone(timedelta(hours=2)))
    assert format_timestamp(moment) == "2026-12-01T09:30:00.25Z"
    with pytest.raises(ValueError, match="aware"):
        format_timestamp(datetime(2026, 12, 1))
    event = _example("GitEvent.handwritten.json")
    event["occurred_at"] = format_timestamp()
    decode(_encode(event), GitEvent)


def test_validation_output_must_match_its_digest() -> None:
    data = (EXAMPLES / "ValidationRequest.json").read_bytes()
    request = _example("ValidationRequest.json")
    request["output"]["resource"]["metadata"]["name"] = "forged"
    with pytest.raises(EnvelopeError, match="sha256 of the canonical output") as caught:
        decode(_encode(request), ValidationRequest)
    assert caught.value.field == "$.output_digest"
    request = _example("ValidationRequest.json")
    request["output"]["weight"] = 0.3
    with pytest.raises(EnvelopeError, match="float") as caught:
        decode(_encode(request), ValidationRequest)
    assert caught.value.field == "$.output"
    # Whitespace around the embedded output does not matter: its canonical form does.
    pretty = json.dumps(json.loads(data), indent=2).encode()
    assert decode(pretty, ValidationRequest).output_digest == json.loads(data)["output_digest"]
