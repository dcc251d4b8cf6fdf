"""The pipeline's logic, without a server: what each delivery comes to, and what it publishes.

Every test here runs real modules in a real sandbox; only the slot streams
are a stand-in (``pipeline_support.MemoryStreams``), so these are about the
decisions, the messages and their headers. What the server does with them
(slots refusing a second message, acks, redeliveries) is tested against a
real nats-server elsewhere.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from gitstore_agents.config import (
    CATALOG_ENRICH,
    EXTENSION_RUN,
    GIT_PUSH,
    MARKDOWN_COMPILE,
    ExtensionConfig,
    LimitsConfig,
)
from gitstore_agents.consumers import PublishFailedError, Settle
from gitstore_agents.envelopes import (
    AuditBatch,
    AuditDecision,
    FailureDiagnostic,
    Limits,
    TaskRequest,
    ValidationRequest,
    canonical_digest,
    canonical_json,
    headers,
    slot_token,
)
from gitstore_agents.pipeline import derive_task

from .pipeline_support import (
    TOPOLOGY,
    delivery,
    planner_pipeline,
    task_delivery,
    task_pipeline,
)
from .runtime_support import make_event
from .wasm_modules import echo_module, loop_module, rejecting_module, text_module

EVENT_ID = "0193f1c2-7a4b-7c3d-9e8f-0a1b2c3d4e5f"
REPOSITORY = "0193f1c2-0000-7000-8000-00000000c0de"


def make_task(kind: str, module: bytes, task_input: dict[str, Any], **limits: int) -> TaskRequest:
    """A task as the planner or a follow-up derives it."""
    return derive_task(
        source_key=EVENT_ID,
        kind=kind,
        input_bytes=canonical_json(task_input),
        module_digest="sha256:" + __import__("hashlib").sha256(module).hexdigest(),
        limits=LimitsConfig(**limits) if limits else LimitsConfig(),
        source_event_id=EVENT_ID,
        repository_id=REPOSITORY,
        commit_sha="a" * 40,
        path="products/shoe.md",
        logical_time="2026-11-29T08:00:00Z",
    ).task


def wire(task: TaskRequest) -> bytes:
    """The task's message bytes."""
    return canonical_json(task)


def audit_records(streams: Any) -> list[Any]:
    """Every audit record stored, in order."""
    return [
        record
        for message in streams.on("mem.audit.")
        for record in msgspec.json.decode(message.payload, type=AuditBatch).records
    ]


async def test_a_task_stores_one_validation_request_and_one_audit_record(tmp_path: Path) -> None:
    module = echo_module("echoed")
    task = make_task(MARKDOWN_COMPILE, module, {"content": "# x", "path": "products/shoe.md"})
    with task_pipeline(tmp_path, module=module) as p:
        decision = await p.handler(task_delivery(task, wire(task)))

    assert (decision.settle, decision.code) == (Settle.ACK, "ok")
    (stored,) = p.streams.on("mem.validation.")
    assert stored.subject == f"mem.validation.markdown.compile.{slot_token(task.idempotency_key)}"
    request = msgspec.json.decode(stored.payload, type=ValidationRequest)
    assert json.loads(bytes(request.output)) == {
        "echoed": {"content": "# x", "path": "products/shoe.md"}
    }
    assert request.output_digest == canonical_digest(json.loads(bytes(request.output)))
    # The contract's headers, on the result as on every other message.
    assert stored.headers[headers.MSG_ID] == task.idempotency_key
    assert stored.headers[headers.SCHEMA_VERSION] == "1.1", "ValidationRequest 1.1: output_ref"
    assert stored.headers[headers.REQUEST_ID] == "req-1"
    (record,) = audit_records(p.streams)
    assert (record.decision, record.event_id, record.role) == (
        AuditDecision.PUBLISHED,
        EVENT_ID,
        "markdown-compiler",
    )
    assert record.refs["output_digest"] == request.output_digest
    assert p.streams.on("mem.audit.")[0].subject == f"mem.audit.markdown-compiler.{EVENT_ID}"


async def test_a_repeated_delivery_finds_the_slot_taken_and_is_acked_as_a_duplicate(
    tmp_path: Path,
) -> None:
    module = echo_module()
    task = make_task(MARKDOWN_COMPILE, module, {"content": "# x", "path": "products/shoe.md"})
    with task_pipeline(tmp_path, module=module) as p:
        first = await p.handler(task_delivery(task, wire(task)))
        again = await p.handler(task_delivery(task, wire(task), attempt=2))

    assert (first.code, again.code) == ("ok", "duplicate")
    assert again.settle is Settle.ACK
    assert len(p.streams.on("mem.validation.")) == 1
    assert [r.decision for r in audit_records(p.streams)] == [
        AuditDecision.PUBLISHED,
        AuditDecision.DUPLICATE_SKIPPED,
    ]


async def test_follow_ups_embed_the_compile_output_and_hash_like_their_decoded_form(
    tmp_path: Path,
) -> None:
    module = echo_module("compiled")
    extension = ExtensionConfig(name="seo-lint", version="1.0.0", parameters={"lang": "en"})
    task = make_task(MARKDOWN_COMPILE, module, {"content": "# x", "path": "products/shoe.md"})
    with task_pipeline(
        tmp_path,
        module=module,
        follow_ups=[(CATALOG_ENRICH, echo_module("e")), (EXTENSION_RUN, echo_module("x"))],
        extensions=[extension],
    ) as p:
        await p.handler(task_delivery(task, wire(task)))
        again = await p.handler(task_delivery(task, wire(task), attempt=2))

    output = {"compiled": {"content": "# x", "path": "products/shoe.md"}}
    tasks = [msgspec.json.decode(m.payload, type=TaskRequest) for m in p.streams.on("mem.tasks.")]
    assert sorted(t.kind for t in tasks) == [CATALOG_ENRICH, EXTENSION_RUN]
    for follow_up in tasks:
        assert follow_up.parent_key == task.idempotency_key
        # Spliced bytes, yet the digest a decoder computes from the value.
        assert follow_up.input_digest == canonical_digest(follow_up.input)
        assert follow_up.input is not None
        assert follow_up.input["compiled"] == output
    enrich = next(t for t in tasks if t.kind == CATALOG_ENRICH)
    extend = next(t for t in tasks if t.kind == EXTENSION_RUN)
    assert enrich.input == {"compiled": output, "parameters": {}}
    assert extend.input == {
        "compiled": output,
        "extension": {"name": "seo-lint", "version": "1.0.0"},
        "parameters": {"lang": "en"},
    }
    assert again.code == "duplicate"
    assert len(p.streams.on("mem.tasks.")) == 2, "a repeat re-derives the same follow-ups"


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"not json", "envelope-invalid"),
        (b'{"input":{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}}", "envelope-too-deep"),
        (b'{"schema_version": "2.0"}', "schema-version-unsupported"),
        (b'{"task_id": 1.5}', "envelope-invalid"),
    ],
)
async def test_an_unreadable_task_gets_one_diagnostic_naming_its_message(
    tmp_path: Path, data: bytes, code: str
) -> None:
    with task_pipeline(tmp_path, module=echo_module()) as p:
        d = delivery("mem.tasks.markdown.compile." + "0" * 64, data, msg_id="publisher-id-7")
        decision = await p.handler(d)

    assert (decision.settle, decision.code) == (Settle.TERM, code)
    (diagnostic,) = p.streams.diagnostics()
    assert (diagnostic.code, diagnostic.stage, diagnostic.kind) == (
        code,
        "decode",
        MARKDOWN_COMPILE,
    )
    # The publisher can tell which message it answers.
    assert (diagnostic.stream, diagnostic.stream_seq, diagnostic.msg_id) == (
        d.stream,
        d.stream_seq,
        "publisher-id-7",
    )
    (stored,) = p.streams.on("mem.failures.")
    assert stored.subject == f"mem.failures.markdown.compile.TASKS-{d.stream_seq}"
    assert stored.headers[headers.SCHEMA_VERSION] == "1.0"
    assert stored.headers[headers.REQUEST_ID] == "req-1"


async def test_the_same_bad_bytes_stored_twice_get_a_diagnostic_each(tmp_path: Path) -> None:
    with task_pipeline(tmp_path, module=echo_module()) as p:
        for msg_id in ("first", "second"):
            await p.handler(delivery("mem.tasks.markdown.compile." + "0" * 64, b"{", msg_id=msg_id))

    assert [d.msg_id for d in p.streams.diagnostics()] == ["first", "second"]


async def test_a_task_on_another_keys_slot_is_refused(tmp_path: Path) -> None:
    module = echo_module()
    task = make_task(MARKDOWN_COMPILE, module, {"content": "# x", "path": "products/shoe.md"})
    with task_pipeline(tmp_path, module=module) as p:
        decision = await p.handler(delivery("mem.tasks.markdown.compile." + "f" * 64, wire(task)))

    assert (decision.settle, decision.code) == (Settle.TERM, "subject-mismatch")
    assert p.streams.on("mem.validation.") == []


async def test_a_refused_task_gets_a_diagnostic_in_its_own_slot_and_no_result(
    tmp_path: Path,
) -> None:
    module = echo_module()
    task = make_task(MARKDOWN_COMPILE, module, {"content": "# x", "path": "products/shoe.md"})
    foreign = msgspec.structs.replace(task, module_digest="sha256:" + "e" * 64)
    # The key must stay the task's for its slot: only the module digest is foreign.
    with task_pipeline(tmp_path, module=module) as p:
        decision = await p.handler(task_delivery(foreign, wire(foreign)))

    assert (decision.settle, decision.code) == (Settle.TERM, "module-not-allowed")
    (diagnostic,) = p.streams.diagnostics()
    assert (diagnostic.stage, diagnostic.idempotency_key) == ("admission", task.idempotency_key)
    assert p.streams.on("mem.validation.") == []
    assert audit_records(p.streams)[0].decision is AuditDecision.REFUSED


async def test_input_rejected_carries_the_modules_field_errors(tmp_path: Path) -> None:
    module = rejecting_module()
    task = make_task(MARKDOWN_COMPILE, module, {"content": "# x", "path": "products/shoe.md"})
    with task_pipeline(tmp_path, module=module) as p:
        decision = await p.handler(task_delivery(task, wire(task)))

    assert (decision.settle, decision.code) == (Settle.TERM, "input-rejected")
    (diagnostic,) = p.streams.diagnostics()
    assert diagnostic.errors, "the module's {errors: [...]} reaches the diagnostic"


async def test_a_deadline_overrun_is_retried_with_the_roles_backoff(tmp_path: Path) -> None:
    module = loop_module()
    task = make_task(
        MARKDOWN_COMPILE, module, {"content": "#", "path": "products/shoe.md"}, timeout_ms=50
    )
    with task_pipeline(tmp_path, module=module, limits=Limits(timeout_ms=50)) as p:
        decision = await p.handler(task_delivery(task, wire(task), attempt=2))

    assert (decision.settle, decision.code, decision.nak_delay_s) == (
        Settle.NAK,
        "deadline-exceeded",
        1.0,
    )
    assert p.streams.diagnostics() == []
    (record,) = audit_records(p.streams)
    assert (record.decision, record.code) == (AuditDecision.RETRIED, "deadline-exceeded")


@pytest.mark.parametrize(
    ("stdout", "code"),
    [
        ('{"price": 1.5}', "canonical-form"),
        ('{"n": 18446744073709551616}', "canonical-form"),
        ("not json", "invalid-output"),
        ("[" * 5000 + "]" * 5000, "output-too-deep"),
        ("[1, 2]", "output-not-object"),
    ],
)
async def test_an_output_without_a_place_in_the_catalog_is_a_permanent_failure(
    tmp_path: Path, stdout: str, code: str
) -> None:
    module = text_module(stdout)
    task = make_task(MARKDOWN_COMPILE, module, {"content": "#", "path": "products/shoe.md"})
    with task_pipeline(tmp_path, module=module) as p:
        decision = await p.handler(task_delivery(task, wire(task)))

    assert (decision.settle, decision.code) == (Settle.TERM, code)
    (diagnostic,) = p.streams.diagnostics()
    assert diagnostic.stage == "output-check"


async def test_a_publish_that_fails_is_retried_and_a_failed_diagnostic_too(
    tmp_path: Path,
) -> None:
    module = echo_module()
    task = make_task(MARKDOWN_COMPILE, module, {"content": "#", "path": "products/shoe.md"})
    with task_pipeline(tmp_path, module=module) as p:
        p.streams.fail = PublishFailedError("server gone")
        decision = await p.handler(task_delivery(task, wire(task)))
        bad = await p.handler(delivery("mem.tasks.markdown.compile." + "0" * 64, b"{"))

    # Nothing stored: the result is retried, and a permanent failure whose
    # diagnostic cannot be stored is retried too (never terminated silently).
    assert (decision.settle, decision.code) == (Settle.NAK, "publish-failed")
    assert (bad.settle, bad.code) == (Settle.NAK, "publish-failed")
    assert p.streams.kept == []


async def test_an_unexpected_error_is_reported_once_and_retried(tmp_path: Path) -> None:
    module = echo_module()
    task = make_task(MARKDOWN_COMPILE, module, {"content": "#", "path": "products/shoe.md"})
    with task_pipeline(tmp_path, module=module) as p:

        async def broken(*_args: object, **_kwargs: object) -> object:
            raise RuntimeError("a bug")

        p.handler.offload.run = broken
        decision = await p.handler(task_delivery(task, wire(task)))

    assert (decision.settle, decision.code) == (Settle.NAK, "handler-error")
    (record,) = audit_records(p.streams)
    assert record.reason == "RuntimeError: a bug"


async def test_the_planner_stores_each_task_in_its_slot_and_a_replay_nothing(
    tmp_path: Path,
) -> None:
    p = planner_pipeline()
    event = make_event(1, files=2)
    subject = TOPOLOGY.subjects.git_push(event.repository_id)
    first = await p.handler(delivery(subject, msgspec.json.encode(event), stream="EVENTS"))
    again = await p.handler(delivery(subject, msgspec.json.encode(event), stream="EVENTS"))

    assert (first.code, again.code) == ("ok", "duplicate")
    tasks = [msgspec.json.decode(m.payload, type=TaskRequest) for m in p.streams.on("mem.tasks.")]
    assert len(tasks) == 2
    for stored, task in zip(p.streams.on("mem.tasks."), tasks, strict=True):
        assert stored.subject == f"mem.tasks.markdown.compile.{slot_token(task.idempotency_key)}"
        assert stored.headers[headers.MSG_ID] == task.idempotency_key
        assert task.input_digest == canonical_digest(task.input)
    assert [r.decision for r in audit_records(p.streams)] == [
        AuditDecision.TASKS_PLANNED,
        AuditDecision.DUPLICATE_SKIPPED,
    ]


@pytest.mark.parametrize(
    ("payload", "code", "event_known"),
    [
        (b"{" * 100_000, "envelope-invalid", False),
        (
            b'{"event_id": "' + EVENT_ID.encode() + b'", ' + b'"x":' * 0 + b'"blobs": 3}',
            "envelope-invalid",
            True,
        ),
        (b'{"event_id":' + b"[" * 100_000, "envelope-invalid", False),
    ],
)
async def test_the_planners_failures_take_the_same_report_path(
    payload: bytes, code: str, event_known: bool
) -> None:
    p = planner_pipeline()
    d = delivery(f"mem.events.git.push.{REPOSITORY}", payload, stream="EVENTS", msg_id="evt-1")
    decision = await p.handler(d)

    assert (decision.settle, decision.code) == (Settle.TERM, code)
    (stored,) = p.streams.on("mem.failures.")
    diagnostic = msgspec.json.decode(stored.payload, type=FailureDiagnostic)
    assert diagnostic.kind == GIT_PUSH
    assert (diagnostic.stream, diagnostic.stream_seq, diagnostic.msg_id) == (
        "EVENTS",
        d.stream_seq,
        "evt-1",
    )
    # Schema version and request id, like every task role's diagnostic.
    assert stored.headers[headers.SCHEMA_VERSION] == "1.0"
    assert stored.headers[headers.REQUEST_ID] == "req-1"
    token = EVENT_ID if event_known else f"EVENTS-{d.stream_seq}"
    assert stored.subject == f"mem.failures.git.push.{token}"
    assert (diagnostic.source_event_id == EVENT_ID) is event_known


async def test_an_event_on_another_repositorys_subject_is_refused() -> None:
    p = planner_pipeline()
    event = make_event(1)
    decision = await p.handler(
        delivery("mem.events.git.push.other-repo", msgspec.json.encode(event), stream="EVENTS")
    )

    assert (decision.settle, decision.code) == (Settle.TERM, "subject-mismatch")
    assert p.streams.on("mem.tasks.") == []
