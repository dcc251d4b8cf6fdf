"""The runtime's observer: each decision is a log line, metrics and span attributes or events.

It implements ``Observer``: the pipeline calls ``decided`` for each
decision (and stores the decision's audit record itself, ``AuditLog``). ``stage`` opens a span
around the module run (``gitstore.sandbox``, its usage as attributes); the
other stages stay inside the delivery's ``process`` span: a span costs about
as much as a decision's whole audit record, and the audit records and log
lines already say what each stage decided and in which span. Failures,
refusals and retries also become span events (and an error status).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading

import msgspec
import structlog
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from ..envelopes import AuditDecision, Stage
from ._decisions import DecisionRecord
from ._metrics import INSTRUMENTS
from ._tracing import stage_span

log = structlog.get_logger("gitstore_agents.decisions")

SPAN_STAGES = frozenset({Stage.SANDBOX})
"""Stages that get a span of their own."""

# The steps of a task that went well are DEBUG lines: at INFO a task logs
# once, with its outcome (published, skipped, failed...). Four JSON lines per
# task were a quarter of a no-op task's CPU (docs/performance.md); the audit
# trail keeps every decision whatever the log level.
_LEVELS = {
    AuditDecision.ADMITTED: "debug",
    AuditDecision.EXECUTED: "debug",
    AuditDecision.OUTPUT_CHECKED: "debug",
    AuditDecision.FAILED: "warning",
    AuditDecision.REFUSED: "warning",
    AuditDecision.RETRIED: "warning",
    AuditDecision.DEAD_LETTERED: "error",
}
_EVENTS = frozenset(
    {
        AuditDecision.FAILED,
        AuditDecision.REFUSED,
        AuditDecision.DEAD_LETTERED,
        AuditDecision.RETRIED,
    }
)
_REASON_EVENT_CHARS = 256


class LogObserver:
    """The plain observer: a log line (``log_decision``) and a count per decision.

    ``counts`` is keyed by ``(decision, code)``; tests read it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: collections.Counter[tuple[AuditDecision, str]] = collections.Counter()

    def decided(self, record: DecisionRecord) -> None:
        """Count the decision and log it."""
        self._count(record)
        log_decision(record)

    def _count(self, record: DecisionRecord) -> None:
        with self._lock:
            self.counts[(record.decision, record.code)] += 1

    def stage(self, name: str, subject: str) -> contextlib.AbstractContextManager[None]:
        """No span of its own."""
        return contextlib.nullcontext()

    def total(self, decision: AuditDecision, code: str | None = None) -> int:
        """How many ``decision``s were recorded (optionally only with ``code``)."""
        with self._lock:
            return sum(
                n for (d, c), n in self.counts.items() if d == decision and code in (None, c)
            )


class TelemetryObserver(LogObserver):
    """Counts, measures (metrics), traces and logs every decision."""

    def decided(self, record: DecisionRecord) -> None:
        """Count, measure, trace and log ``record``."""
        self._count(record)
        _record_metrics(record)
        span = trace.get_current_span()
        if span.is_recording():
            _annotate(span, record)
        log_decision(record)

    def stage(self, name: str, subject: str) -> contextlib.AbstractContextManager[None]:
        """A span around ``sandbox``; nothing around the others."""
        if name in SPAN_STAGES:
            return stage_span(name, subject)
        return contextlib.nullcontext()


def _record_metrics(record: DecisionRecord) -> None:
    role, decision = record.role, record.decision
    INSTRUMENTS.decisions.add(role, decision)
    if decision is AuditDecision.RETRIED:
        INSTRUMENTS.retries.add(role, record.code)
    elif decision is AuditDecision.DEAD_LETTERED:
        INSTRUMENTS.dead_letters.add(role, record.kind or "")
    elif decision is AuditDecision.DUPLICATE_SKIPPED:
        INSTRUMENTS.duplicates.add(role, record.code)
    fuel = _int(record.refs.get("fuel"))
    if fuel is not None:
        # A record that says what a run used: published, or skipped after a re-run.
        kind = record.kind or ""
        INSTRUMENTS.fuel.record(fuel, kind)
        wall_us = _int(record.refs.get("wall_time_us"))
        if wall_us is not None:
            INSTRUMENTS.wall_time.record(wall_us / 1e6, kind)


def _annotate(span: Span, record: DecisionRecord) -> None:
    # Ordinary decisions leave nothing on the span (the audit record and the
    # log line name the span); a run's usage and anything that went wrong do.
    if record.decision in _EVENTS:
        span.add_event(
            str(record.decision),
            {"gitstore.code": record.code, "gitstore.reason": record.reason[:_REASON_EVENT_CHARS]},
        )
        if record.decision is AuditDecision.RETRIED:
            return
        if record.stage == Stage.SANDBOX:
            span.set_attribute("gitstore.sandbox.outcome", record.code)
        span.set_status(Status(StatusCode.ERROR, f"{record.code}: {record.reason}"[:512]))


def log_decision(record: DecisionRecord) -> None:
    """Log ``record``: DEBUG for a good task's steps, INFO for outcomes, WARNING for failures."""
    level = _LEVELS.get(record.decision, "info")
    if level == "debug" and not log.is_enabled_for(logging.DEBUG):
        return
    fields = {
        k: v
        for k, v in msgspec.structs.asdict(record).items()
        if v not in (None, "", {}, ()) and k not in ("decision", "at", "stderr_tail")
    }
    getattr(log, level)(str(record.decision), **fields)


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
