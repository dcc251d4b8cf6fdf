"""Audit records: one small, digest-referencing record per decision.

A message on ``<prefix>.audit.<role>.<event_id>`` is an ``AuditBatch``: the
records one role stored together about one git event in one flush. One
message per batch rather than per record matters on a single-node JetStream
with ``sync_interval: always``, where every stored message costs an fsync.
"""

from __future__ import annotations

import enum
from typing import Annotated

import msgspec

from ._failure import Stage
from ._types import (
    Code,
    Digest,
    Kind,
    Name,
    Positive,
    SchemaVersion,
    Text,
    Timestamp,
    Token,
    Uuid,
)

SCHEMA_VERSION = "1.0"

TraceId = Annotated[
    str, msgspec.Meta(pattern=r"^[0-9a-f]{32}$", description="W3C trace id (32 hex).")
]
SpanId = Annotated[
    str, msgspec.Meta(pattern=r"^[0-9a-f]{16}$", description="W3C span id (16 hex).")
]


class AuditDecision(enum.StrEnum):
    """Every decision a worker makes about an event or a task."""

    EVENT_RECEIVED = "event-received"
    TASKS_PLANNED = "tasks-planned"
    DUPLICATE_SKIPPED = "duplicate-skipped"
    ADMITTED = "admitted"
    REFUSED = "refused"
    EXECUTED = "executed"
    OUTPUT_CHECKED = "output-checked"
    PUBLISHED = "published"
    RETRIED = "retried"
    FAILED = "failed"
    DEAD_LETTERED = "dead-lettered"
    REQUEUED = "requeued"


class AuditRecord(msgspec.Struct, frozen=True, kw_only=True):
    """Who decided what, why, about which event/task, with trace ids.

    Published to ``<prefix>.audit.<role>.<event_id>`` on a stream that denies delete
    and purge. Never carries payloads: only digests and sizes.

    Attributes:
        schema_version: Contract version, ``1.0``.
        event_id: The git event the decision is about (the subject's last token).
        decision: What was decided.
        role: The deciding role, e.g. ``planner``.
        worker_id: The deciding worker process.
        reason: Why, naming codes and limits (never payloads).
        code: Stable code of the outcome (``ok``, an error or outcome code, a
            state a skipped duplicate found: succeeded, failed, planned).
        stage: Pipeline stage of a failure, refusal or retry.
        stderr_tail: Last lines the module wrote to stderr, when a run failed.
        idempotency_key: The task's key, when the decision is about a task.
        task_id: The task's id.
        kind: The task's kind.
        attempt: Delivery attempt (1-based).
        refs: Related digests and ids by name (``module_digest``, ``output_digest``, …).
        trace_id: W3C trace id of the decision's span.
        span_id: W3C span id of the decision's span.
        at: When the decision was made (UTC).
    """

    schema_version: SchemaVersion = SCHEMA_VERSION
    event_id: Uuid
    decision: AuditDecision
    role: Token
    worker_id: Name
    reason: Text = ""
    code: Code | None = None
    stage: Stage | None = None
    stderr_tail: list[Text] = msgspec.field(default_factory=list)
    idempotency_key: Digest | None = None
    task_id: Token | None = None
    kind: Kind | None = None
    attempt: Positive | None = None
    refs: dict[str, Text] = msgspec.field(default_factory=dict)
    trace_id: TraceId | None = None
    span_id: SpanId | None = None
    at: Timestamp


class AuditBatch(msgspec.Struct, frozen=True, kw_only=True):
    """The audit records one message carries, in the order they were decided.

    Attributes:
        records: One or more records, all about the event in the subject.
        schema_version: Contract version, ``1.0``.
    """

    records: Annotated[list[AuditRecord], msgspec.Meta(min_length=1)]
    schema_version: SchemaVersion = SCHEMA_VERSION
