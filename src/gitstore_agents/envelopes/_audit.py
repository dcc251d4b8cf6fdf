"""Audit records: one small, digest-referencing record per decision."""

from __future__ import annotations

import enum

import msgspec

SCHEMA_VERSION = "1.0"


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

    Published to ``<prefix>.audit.<event_id>`` on a stream that denies delete
    and purge. Never carries payloads: only digests and sizes.
    """

    schema_version: str = SCHEMA_VERSION
    event_id: str
    decision: AuditDecision
    role: str
    worker_id: str
    reason: str = ""
    idempotency_key: str | None = None
    task_id: str | None = None
    kind: str | None = None
    attempt: int | None = None
    refs: dict[str, str] = msgspec.field(default_factory=dict)
    trace_id: str | None = None
    span_id: str | None = None
    at: str
