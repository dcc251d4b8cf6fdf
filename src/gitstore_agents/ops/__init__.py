"""Ops: what an operator does to a running deployment, from the outside.

List and requeue dead letters (``list_dead_letters``, ``requeue_dead_letter``),
re-execute or verify history (``replay_stream``), and ask the status service
(``ask_status``, ``ping_status``). None of it runs inside a worker.
"""

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
from ._replay import Mismatch, ReplayReport, replay_stream
from ._status_client import StatusUnavailableError, ask_status, ping_status

__all__ = [
    "REQUEUED_FROM",
    "REQUEUE_ROLE",
    "AlreadyRequeuedError",
    "DeadLetterEntry",
    "DeadLetterNotFoundError",
    "Mismatch",
    "ReplayReport",
    "RequeueRecord",
    "StatusUnavailableError",
    "ask_status",
    "list_dead_letters",
    "ping_status",
    "read_subject",
    "replay_stream",
    "requeue_dead_letter",
]
