"""``gitstore-agents trace``'s text form: an event's story as a tree.

Every decision is one line (time, decision, what it found); a failure adds
its stage, code, message and the module's last stderr lines, so the tree
alone tells why a task failed.
"""

from __future__ import annotations

from collections.abc import Iterator

import msgspec

from ..envelopes import AuditDecision, AuditRecord
from ._story import FOLLOW_UP_REF, PLANNED_REF, Attempt, EventStory, TaskStory


class _Node(msgspec.Struct):
    label: str
    children: list[_Node] = msgspec.field(default_factory=list)
    notes: list[str] = msgspec.field(default_factory=list)


def render_story(story: EventStory) -> str:
    """The story as an indented tree, one decision per line."""
    if not story.records:
        return f"event {story.event_id}: no audit records\n"
    tasks = story.all_tasks()
    outcomes: dict[str, int] = {}
    for task in tasks:
        outcomes[task.outcome] = outcomes.get(task.outcome, 0) + 1
    summary = ", ".join(f"{n} {outcome}" for outcome, n in sorted(outcomes.items()))
    root = _Node(
        f"event {story.event_id}  {story.outcome}"
        + (f"  {len(tasks)} task(s): {summary}" if tasks else "")
        + (f"  trace {story.trace_id}" if story.trace_id else "")
    )
    root.children = [_attempt(a) for a in story.attempts] + [_task(t) for t in story.tasks]
    return "\n".join(_lines(root)) + "\n"


def _task(task: TaskStory) -> _Node:
    what = "  ".join(v for v in (task.kind, task.extension, task.path) if v)
    node = _Node(f"task {task.task_id or task.idempotency_key}  {what}  -> {task.outcome}")
    node.notes.append(f"key {task.idempotency_key}")
    if task.module_digest:
        node.notes.append(f"module {task.module_digest}")
    node.children = [_attempt(a) for a in task.attempts] + [_task(t) for t in task.follow_ups]
    return node


def _attempt(attempt: Attempt) -> _Node:
    number = attempt.attempt if attempt.attempt is not None else "?"
    node = _Node(f"attempt {number}  {attempt.role} @ {attempt.worker_id}")
    node.children = [_decision(entry.record, entry.seq) for entry in attempt.records]
    for child, entry in zip(node.children, attempt.records, strict=True):
        if entry.claimed_role is not None:
            # The server pins the writer; what the record says of itself is a claim.
            child.notes.append(f"written by {entry.writer}, claims role {entry.claimed_role}")
    return node


def _decision(record: AuditRecord, seq: int) -> _Node:
    parts = [f"#{seq}", record.at, str(record.decision)]
    if record.stage is not None:
        parts.append(f"stage={record.stage}")
    if record.code not in (None, "ok"):
        parts.append(f"code={record.code}")
    parts += [
        f"{name}={value}"
        for name, value in sorted(record.refs.items())
        if value and not name.startswith((PLANNED_REF, FOLLOW_UP_REF))
    ]
    node = _Node("  ".join(parts))
    if record.reason:
        label = "message" if record.decision in _FAILURES else "reason"
        node.notes.append(f"{label}: {record.reason}")
    node.notes += [f"stderr | {line}" for line in record.stderr_tail]
    return node


_FAILURES = frozenset(
    {
        AuditDecision.FAILED,
        AuditDecision.REFUSED,
        AuditDecision.RETRIED,
        AuditDecision.DEAD_LETTERED,
    }
)


def _lines(node: _Node, prefix: str = "", last: bool = True, top: bool = True) -> Iterator[str]:
    if top:
        yield node.label
        child_prefix = ""
    else:
        yield f"{prefix}{'└── ' if last else '├── '}{node.label}"
        child_prefix = prefix + ("    " if last else "│   ")
    bar = "│   " if node.children else "    "
    for note in node.notes:
        yield f"{child_prefix}{bar}  {note}"
    for i, child in enumerate(node.children):
        yield from _lines(child, child_prefix, i == len(node.children) - 1, top=False)
