"""``trace`` and the status API tell deliveries apart and keep the trace that produced a result.

Two deliveries of one message with the same role, worker and attempt number
(a rewound durable counts from 1 again) are two attempts, not one; a task's
trace id is the one of the delivery that stored its result or diagnostic,
not of a later duplicate skip or retry.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec
from nats.aio.client import Client

from gitstore_agents.config import MARKDOWN_COMPILE, MARKDOWN_COMPILER, PLANNER, Topology
from gitstore_agents.consumers import provision_consumer, role_consumer
from gitstore_agents.envelopes import AuditDecision, AuditRecord, GitEvent, headers
from gitstore_agents.ops import ask_status
from gitstore_agents.service import Runtime, status_subject
from gitstore_agents.telemetry import TrailEntry, build_story

from .runtime_support import (
    cli,
    make_event,
    planned_task,
    running,
    runtime_config,
    validation_requests,
    wait_settled,
    write_config,
)
from .support import eventually
from .telemetry_support import audit_records, decisions

EVENT_ID = "0193f1c2-7a4b-7c3d-9e8f-0a1b2c3d4e5f"
KEY = "sha256:" + "6d" * 32
PRODUCED = "4bf92f3577b34da6a3ce929d0e0e4736"
LATER = "0af7651916cd43dd8448eb211c80319c"
RETRIED = "11111111111111111111111111111111"


def _entry(
    seq: int,
    decision: AuditDecision,
    *,
    attempt: int = 1,
    worker_id: str = "w1",
    trace_id: str | None = PRODUCED,
    code: str | None = None,
) -> TrailEntry:
    return TrailEntry(
        seq=seq,
        record=AuditRecord(
            event_id=EVENT_ID,
            decision=decision,
            role=MARKDOWN_COMPILER,
            worker_id=worker_id,
            code=code,
            idempotency_key=KEY,
            kind=MARKDOWN_COMPILE,
            attempt=attempt,
            trace_id=trace_id,
            at=f"2026-11-29T08:00:0{seq}.000Z",
        ),
    )


def test_a_delivery_ends_with_the_decision_that_settled_it() -> None:
    story = build_story(
        EVENT_ID,
        [
            _entry(1, AuditDecision.PUBLISHED),
            # The durable was rewound: the same worker gets the message again as attempt 1.
            _entry(2, AuditDecision.DUPLICATE_SKIPPED, code="succeeded"),
            _entry(3, AuditDecision.RETRIED, attempt=2, code="publish-failed"),
            _entry(4, AuditDecision.RETRIED, attempt=2, code="publish-failed"),
        ],
    )
    (task,) = story.tasks
    assert [(a.attempt, [e.seq for e in a.records]) for a in task.attempts] == [
        (1, [1]),
        (1, [2]),
        (2, [3]),
        (2, [4]),
    ]
    # Records from before the pipeline redesign: one delivery, several steps.
    legacy = build_story(
        EVENT_ID,
        [
            _entry(1, AuditDecision.ADMITTED),
            _entry(2, AuditDecision.EXECUTED),
            _entry(3, AuditDecision.OUTPUT_CHECKED),
            _entry(4, AuditDecision.PUBLISHED),
            _entry(5, AuditDecision.ADMITTED, attempt=2),
            _entry(6, AuditDecision.FAILED, attempt=2),
        ],
    )
    assert [[e.seq for e in a.records] for a in legacy.tasks[0].attempts] == [
        [1, 2, 3, 4],
        [5, 6],
    ]


def test_a_task_keeps_the_trace_that_stored_its_result() -> None:
    def trace_of(*entries: TrailEntry) -> str | None:
        (task,) = build_story(EVENT_ID, entries).tasks
        return task.trace_id

    published = _entry(1, AuditDecision.PUBLISHED)
    later_skip = _entry(2, AuditDecision.DUPLICATE_SKIPPED, trace_id=LATER, code="succeeded")
    later_retry = _entry(3, AuditDecision.RETRIED, trace_id=RETRIED, code="publish-failed")
    assert trace_of(published, later_skip) == PRODUCED
    # A copy that failed in another trace after the result was stored does not take over.
    assert trace_of(published, later_skip, later_retry) == PRODUCED
    # A duplicate recorded before the delivery that stored the result (group commits
    # of two workers can land in either order).
    early_skip = _entry(1, AuditDecision.DUPLICATE_SKIPPED, trace_id=LATER, code="succeeded")
    assert trace_of(early_skip, _entry(2, AuditDecision.PUBLISHED)) == PRODUCED
    # Nothing stored yet: the latest decision; a duplicate skip only when alone.
    assert trace_of(later_retry) == RETRIED
    assert trace_of(later_retry, later_skip) == RETRIED
    assert trace_of(later_skip) == LATER


async def _publish_traced(nc: Client, topology: Topology, event: GitEvent, trace_id: str) -> None:
    await nc.jetstream().publish(
        topology.subjects.git_push(event.repository_id),
        msgspec.json.encode(event),
        headers={headers.MSG_ID: event.event_id, "traceparent": f"00-{trace_id}-{'1' * 16}-01"},
    )


async def test_status_gives_a_task_the_trace_that_produced_its_result(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path
) -> None:
    config = runtime_config(nats_url, topology, tmp_path, follow_ups=())
    js = nc.jetstream()
    event = make_event(1)
    async with running(config, [PLANNER, MARKDOWN_COMPILER]) as runtime:
        task = await planned_task(runtime, event)
        # A delivery in trace PRODUCED stored the result, and its audit flush was
        # lost (an audit write that failed): the trail only learns of the task
        # from the delivery that comes next, in another trace, and skips it.
        await js.publish(
            topology.subjects.validation(MARKDOWN_COMPILE, task.idempotency_key),
            msgspec.json.encode({"output_digest": "sha256:" + "0" * 64}),
            headers={"traceparent": f"00-{PRODUCED}-{'2' * 16}-01"},
        )
        await _publish_traced(nc, topology, event, LATER)
        await eventually(
            lambda: audit_records(nc, topology, event.event_id),
            lambda records: AuditDecision.DUPLICATE_SKIPPED in decisions(records),
            what="the compiler's duplicate skip",
        )
        await wait_settled(js, config, [PLANNER, MARKDOWN_COMPILER])
        by_event = await ask_status(
            nc, status_subject(topology.prefix, "event"), {"event_id": event.event_id}, timeout_s=5
        )
        by_key = await ask_status(
            nc,
            status_subject(topology.prefix, "key"),
            {"idempotency_key": task.idempotency_key},
            timeout_s=5,
        )
    status = json.loads(by_event.data)
    assert status["trace_id"] == LATER, "the event's own trace is the one it came with"
    (compiled,) = status["tasks"]
    assert compiled["state"] == "succeeded"
    assert compiled["trace_id"] == PRODUCED
    assert json.loads(by_key.data)["task"]["trace_id"] == PRODUCED


async def test_a_redelivery_after_a_rewind_is_an_attempt_of_its_own(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path
) -> None:
    config = runtime_config(nats_url, topology, tmp_path, follow_ups=())
    config_file = write_config(tmp_path / "gitstore.yaml", config)
    js = nc.jetstream()
    event = make_event(1)
    spec = role_consumer(config, MARKDOWN_COMPILER)
    async with running(config, [PLANNER, MARKDOWN_COMPILER]) as runtime:
        await _publish_traced(nc, topology, event, PRODUCED)
        (request,) = await eventually(
            lambda: validation_requests(js, topology), lambda found: len(found) == 1
        )
        await wait_settled(js, config, [PLANNER, MARKDOWN_COMPILER])
        # The rewind runbook: the durable is recreated and delivers everything again.
        await js.delete_consumer(spec.stream, spec.durable)
        await eventually(_probe(runtime), lambda r: not r.ready, what="unready without it")
        await provision_consumer(js, spec)
        records = await eventually(
            lambda: audit_records(nc, topology, event.event_id),
            lambda found: (
                decisions(found, request.idempotency_key)
                == [AuditDecision.PUBLISHED, AuditDecision.DUPLICATE_SKIPPED]
            ),
            what="the redelivery's duplicate skip",
        )
        await wait_settled(js, config, [PLANNER, MARKDOWN_COMPILER])
        reply = await ask_status(
            nc,
            status_subject(topology.prefix, "key"),
            {"idempotency_key": request.idempotency_key},
            timeout_s=5,
        )
        worker_id = runtime.worker_id
    # Same role, worker and attempt number: only the delivery tells them apart.
    skipped = records[-1]
    assert (skipped.attempt, skipped.worker_id) == (1, worker_id)
    assert json.loads(reply.data)["task"]["attempts"] == 2
    code, out = await cli("trace", event.event_id, "--json", "--config", str(config_file))
    assert code == 0, out
    (task,) = json.loads(out)["tasks"]
    assert [(a["attempt"], a["worker_id"], len(a["records"])) for a in task["attempts"]] == [
        (1, worker_id, 1),
        (1, worker_id, 1),
    ]
    assert task["trace_id"] == PRODUCED


def _probe(runtime: Runtime) -> Callable[[], Awaitable[Runtime]]:
    async def probe() -> Runtime:
        return runtime

    return probe
