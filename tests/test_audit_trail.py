"""Every decision lands on the audit stream; a failed task's trail says why it failed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import msgspec
import nats.js.errors
import pytest
from nats.aio.client import Client
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from gitstore_agents.config import MARKDOWN_COMPILE, MARKDOWN_COMPILER, PLANNER, Topology
from gitstore_agents.consumers import JetStreamPublisher, provision_streams
from gitstore_agents.envelopes import AuditDecision, Stage, canonical_json, requeue_slot, slot_token
from gitstore_agents.guardrails import PublishBoundary
from gitstore_agents.ops import list_dead_letters
from gitstore_agents.telemetry import (
    DecisionRecord,
    audit_message,
    audit_msg_id,
    audit_record,
    encode_record,
)

from .runtime_support import (
    cli,
    default_modules,
    make_event,
    planned_task,
    publish_event,
    running,
    runtime_config,
    validation_requests,
    wait_settled,
    write_config,
    write_module,
)
from .support import eventually
from .telemetry_support import (
    audit_records,
    decisions,
    hex_trace,
    one,
    parent_id,
    recording_spans,
    stderr_trap_module,
)
from .wasm_modules import loop_module

STDERR = "compiling products/product-1-0.md\nline 3: unexpected token '{'\nabort: bad frontmatter"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Spans that end during the test."""
    with recording_spans() as exporter:
        yield exporter


async def test_failed_task_trace_alone_tells_stage_code_message_and_stderr(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    modules = default_modules(tmp_path)
    modules[MARKDOWN_COMPILE] = write_module(tmp_path, "trap", stderr_trap_module(STDERR))
    config = runtime_config(nats_url, topology, tmp_path, modules=modules, follow_ups=())
    config_file = write_config(tmp_path / "gitstore.yaml", config)
    js = nc.jetstream()
    event = make_event(1)
    async with running(config, [PLANNER, MARKDOWN_COMPILER]):
        await publish_event(js, topology, event)
        await wait_settled(js, config, [PLANNER, MARKDOWN_COMPILER])
        records = await eventually(
            lambda: audit_records(nc, topology, event.event_id),
            lambda found: AuditDecision.FAILED in decisions(found),
            what="the failure's audit record",
        )
    text_code, text = await cli("trace", event.event_id, "--config", str(config_file))
    json_code, as_json = await cli("trace", event.event_id, "--json", "--config", str(config_file))

    failed = next(r for r in records if r.decision is AuditDecision.FAILED)
    assert (failed.stage, failed.code) == (Stage.SANDBOX, "trap")
    # The span tree says the same: an error on the sandbox span, a term settle span.
    finished = [s for s in spans.get_finished_spans() if hex_trace(s) == failed.trace_id]
    sandbox = one(finished, "gitstore.sandbox")
    assert sandbox.status.status_code is StatusCode.ERROR
    assert sandbox.attributes is not None
    assert sandbox.attributes["gitstore.sandbox.outcome"] == "trap"
    term = one(finished, f"term {topology.prefix}.tasks.{MARKDOWN_COMPILE}.{{key}}")
    assert term.attributes is not None
    assert term.attributes["messaging.operation.type"] == "settle"
    assert parent_id(term) == parent_id(sandbox), "both inside the task's process span"
    assert failed.stderr_tail == STDERR.splitlines()
    assert failed.reason, "the sandbox's message"
    assert decisions(records) == [AuditDecision.TASKS_PLANNED, AuditDecision.FAILED]
    assert [r.role for r in records] == [PLANNER, MARKDOWN_COMPILER], "each in its own name"

    assert text_code == 0, text
    assert "-> failed" in text
    assert "failed  stage=sandbox  code=trap" in text
    assert f"message: {failed.reason}" in text
    for line in STDERR.splitlines():
        assert f"stderr | {line}" in text

    assert json_code == 0, as_json
    story = json.loads(as_json)
    (task,) = story["tasks"]
    assert task["outcome"] == "failed"
    last = task["attempts"][-1]["records"][-1]["record"]
    assert (last["stage"], last["code"], last["stderr_tail"]) == (
        "sandbox",
        "trap",
        STDERR.splitlines(),
    )


async def test_duplicates_and_refusals_are_audited(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path
) -> None:
    config = runtime_config(nats_url, topology, tmp_path, follow_ups=())
    js = nc.jetstream()
    event = make_event(1)
    async with running(config, [PLANNER, MARKDOWN_COMPILER]) as runtime:
        await publish_event(js, topology, event)
        await eventually(lambda: validation_requests(js, topology), lambda found: len(found) == 1)
        await wait_settled(js, config, [PLANNER, MARKDOWN_COMPILER])
        task = await planned_task(runtime, event)
        # The same task again, as a requeue would store it (another slot, same key):
        # it runs, and finds its result's slot taken.
        await js.publish(
            topology.subjects.task(MARKDOWN_COMPILE, requeue_slot(task.idempotency_key, 1)),
            canonical_json(task),
            headers={"Nats-Msg-Id": "replayed-copy"},
        )
        refused = msgspec.structs.replace(
            task, module_digest="sha256:" + "0" * 64, idempotency_key="sha256:" + "1" * 64
        )
        await js.publish(
            topology.subjects.task(MARKDOWN_COMPILE, slot_token(refused.idempotency_key)),
            canonical_json(refused),
            headers={"Nats-Msg-Id": refused.idempotency_key},
        )
        await wait_settled(js, config, [MARKDOWN_COMPILER])
        records = await eventually(
            lambda: audit_records(nc, topology, event.event_id),
            lambda found: (
                AuditDecision.REFUSED in decisions(found)
                and AuditDecision.DUPLICATE_SKIPPED in decisions(found)
            ),
            what="the skip and the refusal",
        )

    assert decisions(records, task.idempotency_key) == [
        AuditDecision.PUBLISHED,
        AuditDecision.DUPLICATE_SKIPPED,
    ]
    skipped = next(r for r in records if r.decision is AuditDecision.DUPLICATE_SKIPPED)
    assert skipped.code == "succeeded"
    (refusal,) = [r for r in records if r.idempotency_key == refused.idempotency_key]
    assert (refusal.decision, refusal.stage, refusal.code) == (
        AuditDecision.REFUSED,
        Stage.ADMISSION,
        "module-not-allowed",
    )
    planned = next(r for r in records if r.decision is AuditDecision.TASKS_PLANNED)
    assert planned.refs[f"task:{task.task_id}"] == (
        f"{task.kind} {task.idempotency_key} {task.path}"
    ), "the plan names every task before it runs"
    published = next(r for r in records if r.decision is AuditDecision.PUBLISHED)
    assert int(published.refs["fuel"]) > 0
    assert published.refs["output_digest"].startswith("sha256:")
    assert all(r.trace_id is not None and r.span_id is not None for r in records)
    assert max(len(encode_record(r)) for r in records) < 1024, "small, digest-referencing"


async def test_retries_dead_letter_and_requeue_are_audited(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path
) -> None:
    modules = default_modules(tmp_path)
    modules[MARKDOWN_COMPILE] = write_module(tmp_path, "loop", loop_module())
    config = runtime_config(
        nats_url,
        topology,
        tmp_path,
        modules=modules,
        follow_ups=(),
        limits={"timeout_ms": 200},
        roles={MARKDOWN_COMPILER: {"max_deliver": 2, "backoff_s": [0.1]}},
    )
    config_file = write_config(tmp_path / "gitstore.yaml", config)
    js = nc.jetstream()
    event = make_event(1)
    async with running(config, [PLANNER, MARKDOWN_COMPILER]):
        await publish_event(js, topology, event)
        (entry,) = await eventually(
            lambda: list_dead_letters(js, topology),
            lambda entries: len(entries) == 1,
            what="the dead letter",
        )
        await eventually(
            lambda: audit_records(nc, topology, event.event_id),
            lambda found: AuditDecision.DEAD_LETTERED in decisions(found),
            what="the dead letter's audit record",
        )
    # With no worker running, an operator puts it back (a process without a tracer).
    code, out = await cli(
        "dlq", "requeue", entry.letter.id, "--by", "ada", "--config", str(config_file)
    )
    assert code == 0, out
    records = await audit_records(nc, topology, event.event_id)

    key = entry.letter.idempotency_key
    assert decisions(records, key) == [
        AuditDecision.RETRIED,
        AuditDecision.RETRIED,
        AuditDecision.DEAD_LETTERED,
        AuditDecision.REQUEUED,
    ]
    retried = [r for r in records if r.decision is AuditDecision.RETRIED]
    assert [(r.attempt, r.stage, r.code) for r in retried] == [
        (1, Stage.SANDBOX, "deadline-exceeded"),
        (2, Stage.SANDBOX, "deadline-exceeded"),
    ]
    dead = next(r for r in records if r.decision is AuditDecision.DEAD_LETTERED)
    assert (dead.role, dead.stage, dead.attempt) == (MARKDOWN_COMPILER, Stage.DEAD_LETTER, 2)
    assert dead.refs["dead_letter"] == entry.letter.id
    assert dead.reason.startswith("deadline-exceeded: "), "the last failure, not 'exhausted'"
    requeued = records[-1]
    assert (requeued.role, requeued.worker_id) == ("operator", "ada")
    assert requeued.refs["dead_letter"] == entry.letter.id
    # The dead letter and the requeue join the task's trace (the advisory has none).
    task_trace = retried[0].trace_id
    assert task_trace is not None
    assert dead.trace_id == task_trace
    assert requeued.trace_id == task_trace


async def test_audit_stream_is_append_only_and_deduplicates_republished_records(
    nc: Client, topology: Topology
) -> None:
    js = nc.jetstream()
    await provision_streams(js, topology)
    record = DecisionRecord(
        decision=AuditDecision.ADMITTED,
        role=MARKDOWN_COMPILER,
        worker_id="w1",
        stream=topology.tasks_stream,
        stream_seq=7,
        attempt=1,
        event_id="0193f1c2-7a4b-7c3d-9e8f-0a1b2c3d4e5f",
        idempotency_key="sha256:" + "a" * 64,
        at="2026-11-29T08:00:00.000Z",
    )
    message = audit_message(record, topology.subjects)
    assert message is not None
    assert message.subject == topology.subjects.audit(MARKDOWN_COMPILER, record.event_id or "")
    publisher = JetStreamPublisher(
        PublishBoundary(js, [topology.subjects.audit_all()]), timeout_s=5
    )
    # A batch that failed half-way is sent again: the record is stored once.
    await publisher.publish([message])
    (ack,) = await publisher.publish([message])
    assert ack.duplicate
    second_attempt = msgspec.structs.replace(record, attempt=2)
    second = audit_message(second_attempt, topology.subjects)
    assert second is not None
    (ack,) = await publisher.publish([second])
    assert not ack.duplicate, "a redelivery's decision really happened again"

    info = await js.stream_info(topology.audit_stream)
    assert info.state.messages == 2
    assert info.config.deny_delete
    assert info.config.deny_purge
    with pytest.raises(nats.js.errors.APIError):
        await js.delete_msg(topology.audit_stream, 1)
    with pytest.raises(nats.js.errors.APIError):
        await js.purge_stream(topology.audit_stream)
    assert (await js.stream_info(topology.audit_stream)).state.messages == 2


def test_audit_records_keep_to_the_contract() -> None:
    base = DecisionRecord(
        decision=AuditDecision.FAILED,
        role="markdown-compiler",
        worker_id="",
        code="Not A Code",
        reason="x" * 10_000,
        stream="GITSTORE_TASKS",
        stream_seq=3,
        attempt=0,
        event_id="0193f1c2-7a4b-7c3d-9e8f-0a1b2c3d4e5f",
        task_id="not a token",
        stderr_tail=tuple(f"line {i}" for i in range(50)),
        at="2026-11-29T08:00:00.000Z",
    )
    audit = audit_record(base, trace_id="1" * 32, span_id="2" * 16)
    assert audit is not None
    assert audit.code is None
    assert audit.reason.startswith("Not A Code: ")
    assert len(audit.reason) == 4096
    assert (audit.task_id, audit.attempt, audit.worker_id) == (None, None, "unknown")
    assert audit.stderr_tail == [f"line {i}" for i in range(30, 50)]
    assert audit_record(msgspec.structs.replace(base, event_id=None)) is None
    assert audit_record(msgspec.structs.replace(base, event_id="not-a-uuid")) is None
    # Same place, attempt and decision: same id; anything else differs.
    assert audit_msg_id(base) == audit_msg_id(msgspec.structs.replace(base, reason="other"))
    assert audit_msg_id(base) != audit_msg_id(msgspec.structs.replace(base, attempt=2))
    assert audit_msg_id(base) != audit_msg_id(
        msgspec.structs.replace(base, decision=AuditDecision.RETRIED)
    )
