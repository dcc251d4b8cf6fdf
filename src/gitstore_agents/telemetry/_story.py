"""An event's story: its audit records arranged as event → tasks → attempts → outcome.

The planner's records (``event-received``, ``tasks-planned``) are about the
event; every other record names its task by idempotency key. A planned task
is known from the ``tasks-planned`` record (refs ``task:<task_id>`` =
``<kind> <idempotency_key> <path>``) before it runs, and a follow-up from its
parent's ``published`` record (refs ``follow-up:<task_id>``), so the tree
shows work that has not started yet and nests follow-ups under their parent.

Every delivery ends in one decision that settles it (``published``,
``retried``, ``duplicate-skipped``...): a record after it starts another
attempt even when role, worker and attempt number repeat (a rewound consumer
counts deliveries from 1 again). A task's trace id is the one of the delivery
that stored its result or diagnostic, not of a later duplicate.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec

from ..envelopes import AuditDecision, AuditRecord
from ._trail import TrailEntry

PLANNED_REF = "task:"
"""Refs prefix of a task listed by ``tasks-planned``."""
FOLLOW_UP_REF = "follow-up:"
"""Refs prefix of a follow-up task listed by ``published``."""

# The decision that ends an attempt, and the task outcome it means.
_OUTCOMES = {
    AuditDecision.PUBLISHED: "succeeded",
    AuditDecision.FAILED: "failed",
    AuditDecision.REFUSED: "refused",
    AuditDecision.RETRIED: "retrying",
    AuditDecision.DEAD_LETTERED: "dead-lettered",
    AuditDecision.REQUEUED: "requeued",
}
_ERRORS = frozenset(
    {
        AuditDecision.FAILED,
        AuditDecision.REFUSED,
        AuditDecision.RETRIED,
        AuditDecision.DEAD_LETTERED,
    }
)
# Decisions a delivery makes before the one that settles it (records stored
# before the pipeline redesign); any other decision ends its attempt.
_STEPS = frozenset(
    {
        AuditDecision.EVENT_RECEIVED,
        AuditDecision.ADMITTED,
        AuditDecision.EXECUTED,
        AuditDecision.OUTPUT_CHECKED,
    }
)
# Decisions that store what a task's slots hold (its result or its diagnostic):
# the trace of the last of them is the task's.
_PRODUCING = frozenset({AuditDecision.PUBLISHED, AuditDecision.FAILED, AuditDecision.REFUSED})
_RUNNING = "running"
_PLANNED = "planned"


def planned_ref(kind: str, idempotency_key: str, path: str) -> str:
    """The refs value naming one planned (or follow-up) task."""
    return f"{kind} {idempotency_key} {path}"


class Attempt(msgspec.Struct, kw_only=True):
    """One delivery of a task (or of the event) and the decisions made in it.

    Attributes:
        attempt: Delivery attempt (1-based; a requeued message starts again at 1).
        role: Role that handled it.
        worker_id: Worker process that handled it.
        records: Its decisions, in the order they were stored.
    """

    attempt: int | None
    role: str
    worker_id: str
    records: list[TrailEntry] = msgspec.field(default_factory=list)


class TaskStory(msgspec.Struct, kw_only=True):
    """What happened to one task.

    Attributes:
        idempotency_key: The task's key.
        task_id: The task's id.
        kind: Task kind.
        path: Catalog file the task is about (when the planner listed it).
        parent_key: Key of the task whose output it consumes (follow-ups).
        module_digest: Module that produced its result, as its worker recorded.
        extension: ``name@version`` of the extension an ``extension.run``
            task ran as, as its worker recorded.
        outcome: ``planned`` (nothing happened yet), ``running``, ``succeeded``,
            ``failed``, ``refused``, ``retrying``, ``dead-lettered``,
            ``requeued``, or for a skipped duplicate the state it found.
        trace_id: Trace id of the delivery that stored its result or diagnostic;
            before one did, of its latest decision (a duplicate skip's only
            when nothing else is recorded).
        last_error: ``code: message`` of its last failure, retry or refusal.
        updated_at: When its last decision was made.
        attempts: Its deliveries.
        follow_ups: Tasks derived from its output.
    """

    idempotency_key: str
    task_id: str | None = None
    kind: str | None = None
    path: str | None = None
    parent_key: str | None = None
    module_digest: str | None = None
    extension: str | None = None
    outcome: str = _PLANNED
    trace_id: str | None = None
    last_error: str | None = None
    updated_at: str | None = None
    attempts: list[Attempt] = msgspec.field(default_factory=list)
    follow_ups: list[TaskStory] = msgspec.field(default_factory=list)


class EventStory(msgspec.Struct, kw_only=True):
    """What happened to one git event.

    Attributes:
        event_id: The event.
        trace_id: Trace id of the event's processing (the git event's own trace
            when its publisher sent a ``traceparent``).
        outcome: The event's own outcome (``planned``, ``failed``, ...; ``unknown``
            without records).
        attempts: The planner's deliveries of the event.
        tasks: Planned tasks, in planning order (follow-ups nested).
        records: How many audit records the story is made of.
    """

    event_id: str
    trace_id: str | None = None
    outcome: str = "unknown"
    attempts: list[Attempt] = msgspec.field(default_factory=list)
    tasks: list[TaskStory] = msgspec.field(default_factory=list)
    records: int = 0

    def all_tasks(self) -> list[TaskStory]:
        """Every task, parents before their follow-ups."""
        found: list[TaskStory] = []
        stack = list(reversed(self.tasks))
        while stack:
            task = stack.pop()
            found.append(task)
            stack.extend(reversed(task.follow_ups))
        return found


def _listed(refs: dict[str, str], prefix: str) -> Iterable[tuple[str, str, str, str]]:
    """``(task_id, kind, key, path)`` for each task a record's refs list under ``prefix``."""
    for name, value in refs.items():
        if name.startswith(prefix):
            parts = value.split(" ", 2)
            if len(parts) == 3:
                yield name.removeprefix(prefix), parts[0], parts[1], parts[2]


def _add(attempts: list[Attempt], entry: TrailEntry) -> None:
    record = entry.record
    last = attempts[-1] if attempts else None
    if (
        last is None
        or last.attempt != record.attempt
        or last.role != record.role
        or last.worker_id != record.worker_id
        # The last delivery was settled: this record is another delivery's.
        or last.records[-1].record.decision not in _STEPS
    ):
        last = Attempt(attempt=record.attempt, role=record.role, worker_id=record.worker_id)
        attempts.append(last)
    last.records.append(entry)


def _event_outcome(record: AuditRecord, current: str) -> str:
    if record.decision is AuditDecision.TASKS_PLANNED:
        return "planned"
    if record.decision is AuditDecision.EVENT_RECEIVED:
        return "received" if current == "unknown" else current
    return _OUTCOMES.get(record.decision, current)


def _task_outcome(record: AuditRecord, current: str) -> str:
    if record.decision is AuditDecision.DUPLICATE_SKIPPED:
        # What the duplicate found stored (succeeded, failed, planned): the task's outcome.
        return record.code or current
    if record.decision in _OUTCOMES:
        return _OUTCOMES[record.decision]
    return _RUNNING


def build_story(event_id: str, entries: Sequence[TrailEntry]) -> EventStory:
    """Arrange ``entries`` (one event's audit records, in stream order) as a story."""
    story = EventStory(event_id=event_id, records=len(entries))
    tasks: dict[str, TaskStory] = {}
    roots: list[str] = []
    # Tasks whose trace id is the one of the delivery that stored their result.
    produced: set[str] = set()

    def task_for(key: str) -> TaskStory:
        found = tasks.get(key)
        if found is None:
            found = tasks[key] = TaskStory(idempotency_key=key)
            roots.append(key)
        return found

    for entry in entries:
        record = entry.record
        if record.trace_id and story.trace_id is None:
            story.trace_id = record.trace_id
        if record.idempotency_key is None:
            _add(story.attempts, entry)
            story.outcome = _event_outcome(record, story.outcome)
            for task_id, kind, key, path in _listed(record.refs, PLANNED_REF):
                planned = task_for(key)
                planned.task_id, planned.kind, planned.path = task_id, kind, path
            continue
        task = task_for(record.idempotency_key)
        task.task_id = task.task_id or record.task_id
        task.kind = task.kind or record.kind
        task.module_digest = record.refs.get("module_digest", task.module_digest)
        task.extension = record.refs.get("extension", task.extension)
        if record.trace_id is not None:
            if record.decision in _PRODUCING:
                task.trace_id = record.trace_id
                produced.add(task.idempotency_key)
            elif task.idempotency_key not in produced and (
                record.decision is not AuditDecision.DUPLICATE_SKIPPED or task.trace_id is None
            ):
                task.trace_id = record.trace_id
        task.outcome = _task_outcome(record, task.outcome)
        task.updated_at = record.at
        if record.decision in _ERRORS:
            task.last_error = f"{record.code}: {record.reason}"
        _add(task.attempts, entry)
        for task_id, kind, key, path in _listed(record.refs, FOLLOW_UP_REF):
            child = task_for(key)
            child.task_id, child.kind, child.path = task_id, kind, path
            child.parent_key = task.idempotency_key
    for key in roots:
        task = tasks[key]
        parent = tasks.get(task.parent_key) if task.parent_key else None
        if parent is not None and parent is not task:
            parent.follow_ups.append(task)
        else:
            story.tasks.append(task)
    return story
