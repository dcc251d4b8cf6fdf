"""One trace id from the git event's ``traceparent`` to the status API's answer.

A git event is published with a known ``traceparent`` (header name in mixed
case: nats-py keeps the sender's spelling). The planner's and the task's
spans, the task message and the validation request, every audit record, the
status API's answers and ``gitstore-agents trace`` must all carry its trace
id, with each span the child of the one before it. Dropping the context at
any hop (extraction, injection into a publish) breaks a parent link here, as
the last test shows for the publish hop.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import msgspec
import pytest
from nats.aio.client import Client
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from gitstore_agents.config import MARKDOWN_COMPILE, MARKDOWN_COMPILER, PLANNER, Topology
from gitstore_agents.envelopes import AuditDecision, GitEvent, ValidationRequest, headers
from gitstore_agents.ops import ask_status, read_subject
from gitstore_agents.service import TRACE_ID_HEADER, status_subject

from .runtime_support import (
    cli,
    make_event,
    running,
    runtime_config,
    validation_requests,
    wait_settled,
    write_config,
)
from .support import eventually
from .telemetry_support import (
    audit_records,
    by_name,
    hex_span,
    hex_trace,
    one,
    parent_id,
    recording_spans,
)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PUBLISHER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PUBLISHER_SPAN}-01"
TRACESTATE = "gitstore=push-1"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Spans that end during the test."""
    with recording_spans() as exporter:
        yield exporter


async def publish_traced(nc: Client, topology: Topology, event: GitEvent) -> None:
    """Publish ``event`` as the Go control plane does, with a trace context."""
    await nc.jetstream().publish(
        topology.subjects.git_push(event.repository_id),
        msgspec.json.encode(event),
        headers={
            headers.MSG_ID: event.event_id,
            "TraceParent": TRACEPARENT,
            "TraceState": TRACESTATE,
        },
    )


async def test_one_trace_links_push_planner_task_validation_status_and_trace(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    config = runtime_config(nats_url, topology, tmp_path, follow_ups=())
    config_file = write_config(tmp_path / "gitstore.yaml", config)
    js = nc.jetstream()
    event = make_event(1)
    prefix = topology.prefix
    async with running(config, [PLANNER, MARKDOWN_COMPILER]):
        await publish_traced(nc, topology, event)
        (request,) = await eventually(
            lambda: validation_requests(js, topology), lambda found: len(found) == 1
        )
        await wait_settled(js, config, [PLANNER, MARKDOWN_COMPILER])
        event_reply = await ask_status(
            nc, status_subject(prefix, "event"), {"event_id": event.event_id}, timeout_s=5
        )
        key_reply = await ask_status(
            nc,
            status_subject(prefix, "key"),
            {"idempotency_key": request.idempotency_key},
            timeout_s=5,
        )
        code, trace_out = await cli("trace", event.event_id, "--config", str(config_file))
    finished = spans.get_finished_spans()
    mine = [s for s in finished if hex_trace(s) == TRACE_ID]
    planner, plan_send = _planner_spans(mine, topology, event)
    task, sandbox, result_send = _task_spans(mine, topology, request, plan_send)
    _receive_links(finished, plan_send)

    # The task message carries the planner's send span; the validation request the
    # task's send span (and the publisher's tracestate).
    ((_, _, _, task_headers),) = await read_subject(
        js, topology.tasks_stream, topology.subjects.tasks_all()
    )
    assert headers.get_header(task_headers, "traceparent") == (
        f"00-{TRACE_ID}-{hex_span(plan_send)}-01"
    )
    ((_, _, _, result_headers),) = await read_subject(
        js, topology.validation_stream, topology.subjects.validation_all()
    )
    assert headers.get_header(result_headers, "traceparent") == (
        f"00-{TRACE_ID}-{hex_span(result_send)}-01"
    )
    assert headers.get_header(result_headers, "tracestate") == TRACESTATE

    # Every outcome is audited, in order, with the trace id and the span it was made in.
    records = await audit_records(nc, topology, event.event_id)
    assert [r.decision for r in records] == [
        AuditDecision.TASKS_PLANNED,
        AuditDecision.PUBLISHED,
    ]
    assert [r.role for r in records] == [PLANNER, MARKDOWN_COMPILER]
    assert {r.trace_id for r in records} == {TRACE_ID}
    assert records[0].span_id == hex_span(planner)
    assert records[1].span_id == hex_span(task)
    assert records[1].refs["fuel"] == str(sandbox.attributes["gitstore.sandbox.fuel"])

    # The status API answers with the same trace id (body and header).
    status = json.loads(event_reply.data)
    assert status["trace_id"] == TRACE_ID
    assert headers.get_header(event_reply.headers, TRACE_ID_HEADER) == TRACE_ID
    assert status["state"] == "succeeded"
    (task_status,) = status["tasks"]
    assert task_status["state"] == "succeeded"
    assert task_status["output_digest"] == request.output_digest
    assert json.loads(key_reply.data)["trace_id"] == TRACE_ID

    # `trace` prints the trace id and every decision, in order.
    assert code == 0, trace_out
    assert TRACE_ID in trace_out
    positions = [trace_out.find(f"  {r.decision}") for r in records]
    assert -1 not in positions, trace_out
    assert positions == sorted(positions), trace_out
    assert f"validation_seq={task_status['result_seq']}" in trace_out


def _planner_spans(
    spans: Sequence[ReadableSpan], topology: Topology, event: GitEvent
) -> tuple[ReadableSpan, ReadableSpan]:
    """The planner's process span continues the publisher's trace; its send span is a child."""
    planner = one(spans, f"process {topology.prefix}.events.git.push.{{repository_id}}")
    assert parent_id(planner) == PUBLISHER_SPAN
    assert planner.kind is SpanKind.CONSUMER
    assert planner.attributes is not None
    assert planner.attributes["messaging.system"] == "nats"
    assert planner.attributes["messaging.operation.type"] == "process"
    assert planner.attributes["messaging.consumer.group.name"] == PLANNER
    assert planner.attributes["messaging.message.id"] == event.event_id
    assert planner.attributes["gitstore.event_id"] == event.event_id
    plan_send = one(spans, f"send {topology.prefix}.tasks.{MARKDOWN_COMPILE}.{{key}}")
    assert parent_id(plan_send) == hex_span(planner)
    assert plan_send.kind is SpanKind.PRODUCER
    return planner, plan_send


def _task_spans(
    spans: Sequence[ReadableSpan],
    topology: Topology,
    request: ValidationRequest,
    plan_send: ReadableSpan,
) -> tuple[ReadableSpan, ReadableSpan, ReadableSpan]:
    """The task's process span is the planner send span's child; sandbox, send, ack inside."""
    prefix = topology.prefix
    task = one(spans, f"process {prefix}.tasks.{MARKDOWN_COMPILE}.{{key}}")
    assert parent_id(task) == hex_span(plan_send)
    assert task.attributes is not None
    assert task.attributes["messaging.consumer.group.name"] == MARKDOWN_COMPILER
    assert task.attributes["gitstore.idempotency_key"] == request.idempotency_key
    assert task.attributes["gitstore.settle"] == "ack"
    sandbox = one(spans, "gitstore.sandbox")
    assert parent_id(sandbox) == hex_span(task)
    assert sandbox.attributes is not None
    assert dict(sandbox.attributes) | {
        "gitstore.sandbox.outcome": "ok",
        "gitstore.sandbox.fuel": request.usage.fuel,
        "gitstore.sandbox.wall_time_us": request.usage.wall_time_us,
        "gitstore.sandbox.peak_memory_bytes": request.usage.peak_memory_bytes,
    } == dict(sandbox.attributes), "sandbox usage as attributes"
    result_send = one(spans, f"send {prefix}.validation.{MARKDOWN_COMPILE}.{{key}}")
    assert parent_id(result_send) == hex_span(task)
    # An ack is the process span's gitstore.settle (nak and term get settle spans).
    assert by_name(spans, f"ack {prefix}.tasks.{MARKDOWN_COMPILE}.{{key}}") == []
    return task, sandbox, result_send


def _receive_links(spans: Sequence[ReadableSpan], plan_send: ReadableSpan) -> None:
    """The pull request that delivered the task links to the message's context."""
    assert plan_send.context is not None
    links = [
        (link.context.trace_id, link.context.span_id)
        for receive in by_name(spans, f"receive {MARKDOWN_COMPILER}")
        for link in receive.links
    ]
    assert (int(TRACE_ID, 16), plan_send.context.span_id) in links


async def test_a_publish_that_drops_the_context_breaks_the_chain(
    nats_url: str,
    nc: Client,
    topology: Topology,
    tmp_path: Path,
    *,
    spans: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The control: without injection the task starts a trace of its own."""
    monkeypatch.setattr("gitstore_agents.consumers._publisher.inject", lambda carrier: carrier)
    config = runtime_config(nats_url, topology, tmp_path, follow_ups=())
    js = nc.jetstream()
    event = make_event(2)
    async with running(config, [PLANNER, MARKDOWN_COMPILER]):
        await publish_traced(nc, topology, event)
        await eventually(lambda: validation_requests(js, topology), lambda found: len(found) == 1)
        await wait_settled(js, config, [PLANNER, MARKDOWN_COMPILER])
    finished = spans.get_finished_spans()

    planner = one(finished, f"process {topology.prefix}.events.git.push.{{repository_id}}")
    task = one(finished, f"process {topology.prefix}.tasks.{MARKDOWN_COMPILE}.{{key}}")
    assert hex_trace(planner) == TRACE_ID, "extraction still works"
    assert hex_trace(task) != TRACE_ID, "the task lost the trace with the publish hop"
    assert parent_id(task) is None
