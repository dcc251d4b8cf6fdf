"""Subjects for every stream, built from validated tokens; headers mapped in one place."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitstore_agents.envelopes import (
    EnvelopeError,
    GitEvent,
    SchemaVersionError,
    SubjectError,
    Subjects,
    TaskRequest,
    ValidationRequest,
    decode,
    headers,
    input_token,
    requeue_slot,
    slot_token,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "schemas" / "examples"
EVENT_ID = "01938a2e-5c1d-7b2a-8f00-3d2c1b0a9e87"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


KEY = "sha256:" + "ab" * 32


def test_every_subject_of_the_scheme() -> None:
    s = Subjects(prefix="gitstore")
    hex_key = "ab" * 32
    assert slot_token(KEY) == hex_key
    assert s.task("markdown.compile", hex_key) == f"gitstore.tasks.markdown.compile.{hex_key}"
    assert s.tasks_of("markdown.compile") == "gitstore.tasks.markdown.compile.*"
    assert s.validation("catalog.enrich", KEY) == f"gitstore.validation.catalog.enrich.{hex_key}"
    assert s.validations_of("catalog.enrich") == "gitstore.validation.catalog.enrich.*"
    assert s.failure("markdown.compile", hex_key) == f"gitstore.failures.markdown.compile.{hex_key}"
    assert s.failures_of("git.push") == "gitstore.failures.git.push.*"
    assert s.dead_letter("catalog.enrich", "GITSTORE_TASKS-42") == (
        "gitstore.dlq.catalog.enrich.GITSTORE_TASKS-42"
    )
    assert s.requeue_record("GITSTORE_TASKS-42") == "gitstore.dlq._requeued.GITSTORE_TASKS-42"
    assert s.audit("planner", EVENT_ID) == f"gitstore.audit.planner.{EVENT_ID}"
    assert s.audit_of_event(EVENT_ID) == f"gitstore.audit.*.{EVENT_ID}"
    assert s.audit_of_role("enricher") == "gitstore.audit.enricher.*"
    assert s.failures_all() == "gitstore.failures.>"
    assert s.dead_letters_all() == "gitstore.dlq.>"
    assert s.audit_all() == "gitstore.audit.>"
    assert requeue_slot(KEY, 7) == f"{hex_key}-rq7"
    assert input_token("GITSTORE_TASKS", 9) == "GITSTORE_TASKS-9"
    assert Subjects(prefix="acme.gitstore").tasks_of("extension.run") == (
        "acme.gitstore.tasks.extension.run.*"
    )


@pytest.mark.parametrize("bad", ["a.b", "*", ">", "", "x y", "ab\n"])
def test_slot_tokens_cannot_inject_tokens(bad: str) -> None:
    s = Subjects()
    with pytest.raises(SubjectError):
        s.task("markdown.compile", bad)
    with pytest.raises(SubjectError):
        s.failure("markdown.compile", bad)
    with pytest.raises(SubjectError):
        s.dead_letter("markdown.compile", bad)
    with pytest.raises(SubjectError, match="idempotency_key"):
        slot_token("sha256:" + bad)


@pytest.mark.parametrize(
    "bad", ["repo\n", "a.b", "a b", "*", ">", "", "x\ty", "é", "r" * 129, "repo\r\nPUB x"]
)
def test_repository_ids_cannot_inject_tokens(bad: str) -> None:
    with pytest.raises(SubjectError, match="repository_id"):
        Subjects().git_push(bad)


@pytest.mark.parametrize(
    "bad", ["Markdown.compile", "markdown..compile", ".x", "x.", "a.*", "a.>", "a b", "x\n"]
)
def test_kinds_are_dot_separated_lowercase_tokens(bad: str) -> None:
    s = Subjects()
    for build in (s.tasks_of, s.validations_of, s.failures_of, s.dead_letters_of):
        with pytest.raises(SubjectError, match="kind"):
            build(bad)
    with pytest.raises(SubjectError, match="kind"):
        s.validation(bad, KEY)


@pytest.mark.parametrize("bad", ["evt-1", EVENT_ID.upper(), EVENT_ID + "\n", "*", EVENT_ID + ".x"])
def test_audit_subject_takes_event_ids_only(bad: str) -> None:
    with pytest.raises(SubjectError, match="event_id"):
        Subjects().audit("planner", bad)


@pytest.mark.parametrize("bad", ["", "a..b", "a.*", "a b", "g>"])
def test_prefix_is_validated(bad: str) -> None:
    with pytest.raises(SubjectError, match="prefix"):
        Subjects(prefix=bad)


def _event() -> GitEvent:
    return decode((EXAMPLES / "GitEvent.handwritten.json").read_bytes(), GitEvent)


def test_git_event_headers_carry_msg_id_trace_and_request_id() -> None:
    trace = headers.parse_traceparent(TRACEPARENT, "vendor=1")
    assert trace is not None
    assert headers.git_event_headers(_event(), trace=trace) == {
        "Nats-Msg-Id": EVENT_ID,
        "Content-Type": "application/json",
        "GitStore-Schema-Version": "1.0",
        "traceparent": TRACEPARENT,
        "tracestate": "vendor=1",
        "X-Request-ID": "req-summit-0001",
    }


def test_task_and_validation_headers_use_the_idempotency_key() -> None:
    task = decode((EXAMPLES / "TaskRequest.json").read_bytes(), TaskRequest)
    request = decode((EXAMPLES / "ValidationRequest.json").read_bytes(), ValidationRequest)
    assert headers.task_headers(task)["Nats-Msg-Id"] == task.idempotency_key
    assert headers.validation_headers(request, request_id="req-1")["X-Request-ID"] == "req-1"
    assert headers.validation_headers(request)["Nats-Msg-Id"] == request.idempotency_key


def test_headers_round_trip_and_are_read_case_insensitively() -> None:
    trace = headers.parse_traceparent(TRACEPARENT)
    sent = headers.git_event_headers(_event(), trace=trace)
    shouted = {name.upper(): value for name, value in sent.items()}
    for received in (headers.read_headers(sent), headers.read_headers(shouted)):
        assert received.msg_id == EVENT_ID
        assert received.trace == trace
        assert received.request_id == "req-summit-0001"
        assert received.content_type == "application/json"
        assert received.schema_version == "1.0"
        headers.check_headers(received, "GitEvent")
    assert received.trace is not None
    assert received.trace.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert received.trace.span_id == "00f067aa0ba902b7"


def test_read_headers_of_a_message_without_headers() -> None:
    received = headers.read_headers(None)
    assert received == headers.MessageHeaders()
    headers.check_headers(received, "GitEvent")


@pytest.mark.parametrize(
    "value",
    [
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",  # no flags
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # zero span id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # forbidden version
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  # v00 has no extras
        "garbage",
    ],
)
def test_malformed_traceparent_is_ignored(value: str) -> None:
    assert headers.read_headers({"traceparent": value}).trace is None


def test_future_traceparent_versions_are_read() -> None:
    future = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more"
    trace = headers.parse_traceparent(future)
    assert trace is not None
    assert trace.traceparent == "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize("bad", ["a\r\nX-Evil: 1", "ünï", " padded", ""])
def test_header_values_that_could_inject_headers_are_refused(bad: str) -> None:
    with pytest.raises(headers.HeaderError, match="X-Request-ID"):
        headers.envelope_headers(msg_id="m", schema_version="1.0", request_id=bad)


def test_content_type_and_schema_version_headers_are_checked() -> None:
    headers.check_headers(
        headers.read_headers({"content-type": "application/json; charset=utf-8"}), "GitEvent"
    )
    with pytest.raises(EnvelopeError, match="Content-Type") as caught:
        headers.check_headers(headers.read_headers({"Content-Type": "text/plain"}), "GitEvent")
    assert caught.value.code == "content-type-unsupported"
    with pytest.raises(SchemaVersionError, match="GitStore-Schema-Version"):
        headers.check_headers(headers.read_headers({"GitStore-Schema-Version": "2.0"}), "GitEvent")
    headers.check_headers(headers.read_headers({"GitStore-Schema-Version": "1.9"}), "GitEvent")
