"""The one seam every decision goes through: logs and counters now, audit and spans later.

Each pipeline stage runs inside ``Observer.stage(...)`` (a tracing span, once
issue 7 adds one) and every decision is reported to ``Observer.decided(...)``.
``decided`` may return messages (audit records) that the pipeline publishes
through the role's publish boundary together with the message's results, so
they are stored before the input is settled.
"""

from __future__ import annotations

import collections
import contextlib
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

import msgspec

from ..envelopes import AuditDecision
from ..guardrails import Outbound
from ..telemetry import log_decision
from ._delivery import Delivery


def utc_now() -> datetime:
    """The current time in UTC (the one clock the runtime reads)."""
    return datetime.now(UTC)


def rfc3339(moment: datetime) -> str:
    """``2026-11-29T08:00:00.123Z``: the timestamp form of every record we write."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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


class Observer(Protocol):
    """Receives every decision and wraps every stage (issue 7: audit records and spans)."""

    def decided(self, record: DecisionRecord) -> Sequence[Outbound]:
        """Record ``record``; return messages to publish with the delivery's results."""
        ...

    def stage(self, name: str, delivery: Delivery) -> contextlib.AbstractContextManager[None]:
        """Context around one pipeline stage (``decode``, ``admission``, ``sandbox``...)."""
        ...


class LogObserver:
    """The default observer: a log line (``log_decision``) and a counter per decision.

    ``counts`` is keyed by ``(decision, code)``; tests and (later) metrics read it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: collections.Counter[tuple[AuditDecision, str]] = collections.Counter()

    def decided(self, record: DecisionRecord) -> Sequence[Outbound]:
        """Log the decision and count it; publishes nothing."""
        with self._lock:
            self.counts[(record.decision, record.code)] += 1
        log_decision(record)
        return ()

    def stage(self, name: str, delivery: Delivery) -> contextlib.AbstractContextManager[None]:
        """No span yet (issue 7)."""
        return contextlib.nullcontext()

    def total(self, decision: AuditDecision, code: str | None = None) -> int:
        """How many ``decision``s were recorded (optionally only with ``code``)."""
        with self._lock:
            return sum(
                n for (d, c), n in self.counts.items() if d == decision and code in (None, c)
            )
