"""Ops: what an operator does to a running deployment, from the outside.

List and requeue dead letters (``list_dead_letters``, ``requeue_dead_letter``),
re-execute or verify history (``replay_stream``), preview a module upgrade on
history and backfill it (``preview``, ``backfill``), and ask the status
service (``ask_status``, ``ping_status``). None of it runs inside a worker.
"""

from ._backfill import BATCH, BackfillReport, backfill, publish_tasks, task_publisher
from ._dlq import (
    REQUEUE_ROLE,
    REQUEUED_FROM,
    AlreadyRequeuedError,
    DeadLetterEntry,
    DeadLetterNotFoundError,
    RequeueRecord,
    list_dead_letters,
    read_subject,
    requeue_dead_letter,
)
from ._history import ParentTaskGoneError, Skipped, Window, follow_ups_of, planned_tasks
from ._preview import Change, PreviewReport, Segment, count_line, preview
from ._replay import Mismatch, ReplayReport, replay_stream
from ._status_client import StatusUnavailableError, ask_status, ping_status

__all__ = [
    "BATCH",
    "REQUEUED_FROM",
    "REQUEUE_ROLE",
    "AlreadyRequeuedError",
    "BackfillReport",
    "Change",
    "DeadLetterEntry",
    "DeadLetterNotFoundError",
    "Mismatch",
    "ParentTaskGoneError",
    "PreviewReport",
    "ReplayReport",
    "RequeueRecord",
    "Segment",
    "Skipped",
    "StatusUnavailableError",
    "Window",
    "ask_status",
    "backfill",
    "count_line",
    "follow_ups_of",
    "list_dead_letters",
    "ping_status",
    "planned_tasks",
    "preview",
    "publish_tasks",
    "read_subject",
    "replay_stream",
    "requeue_dead_letter",
    "task_publisher",
]
