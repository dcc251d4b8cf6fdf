"""The one seam every decision goes through: what a decision is, and who receives it.

Each pipeline stage runs inside ``Observer.stage(...)`` and every decision is
reported to ``Observer.decided(...)``.
The pipeline stores every record in the audit trail itself (``AuditLog``)
before the delivery is settled; observers log, count and trace.
"""

from __future__ import annotations

import contextlib
from typing import Protocol

import msgspec

from ..envelopes import AuditDecision


class DecisionRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One decision about one delivery (the future audit record's content).

    Attributes:
        decision: What was decided (the audit vocabulary).
        role: Role that decided.
        worker_id: Process that decided.
        code: Stable code (``ok``, an outcome or error code).
        reason: Human-readable detail (no payloads).
        stream: Stream of the input.
        stream_seq: Stream sequence of the input.
        attempt: Delivery attempt (1-based).
        event_id: Source git event.
        idempotency_key: Task idempotency key, when the input is a task.
        task_id: Task id, when the input is a task.
        kind: Task kind (``git.push`` for events).
        refs: Digests and sequences that explain the decision.
        stage: Pipeline stage a failure or retry happened in.
        stderr_tail: Last lines the module wrote to stderr (failures of a run).
        at: When (RFC 3339, UTC).
        trace_id: Trace id of the span the decision was made in (32 hex).
        span_id: Its span id (16 hex).
    """

    decision: AuditDecision
    role: str
    worker_id: str
    code: str = "ok"
    reason: str = ""
    stream: str | None = None
    stream_seq: int | None = None
    attempt: int | None = None
    event_id: str | None = None
    idempotency_key: str | None = None
    task_id: str | None = None
    kind: str | None = None
    refs: dict[str, str] = msgspec.field(default_factory=dict)
    stage: str | None = None
    stderr_tail: tuple[str, ...] = ()
    at: str = ""
    trace_id: str | None = None
    span_id: str | None = None


class Observer(Protocol):
    """Receives every decision and wraps every stage (issue 7: audit records and spans)."""

    def decided(self, record: DecisionRecord) -> None:
        """Log, count and trace ``record`` (the pipeline stores it in the audit trail)."""
        ...

    def stage(self, name: str, subject: str) -> contextlib.AbstractContextManager[None]:
        """Context around one pipeline stage (``decode``, ``admission``, ``sandbox``...)."""
        ...
