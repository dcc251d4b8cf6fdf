"""Failure diagnostics and dead letters: failure is data."""

from __future__ import annotations

import enum
from typing import Annotated

import msgspec

from ._catalog import FieldError
from ._types import (
    Code,
    Count,
    Digest,
    Kind,
    Name,
    Positive,
    SchemaVersion,
    Text,
    Timestamp,
)

SCHEMA_VERSION = "1.0"

Ref = Annotated[str, msgspec.Meta(max_length=1024)]


class Stage(enum.StrEnum):
    """Pipeline stage where a task (or event) failed."""

    DECODE = "decode"
    ADMISSION = "admission"
    LEDGER = "ledger"  # only in diagnostics written before the slot layout
    SANDBOX = "sandbox"
    OUTPUT_CHECK = "output-check"
    PUBLISH = "publish"
    DEAD_LETTER = "dead-letter"


class FailureDiagnostic(msgspec.Struct, frozen=True, kw_only=True):
    """Why one attempt of a task (or event) failed, stored in its failure slot.

    The slot is ``<prefix>.failures.<kind>.<token>``: the task's key, else the
    event id, else the input's ``<stream>-<seq>``.

    Attributes:
        schema_version: Contract version, ``1.0``.
        kind: Task kind (``git.push`` for an event the planner could not plan).
        stage: Where it failed.
        code: Stable error code (an ``Outcome`` value or a ``GitStoreAgentsError.code``).
        message: What failed, naming the field or limit.
        attempt: Delivery attempt (1-based) this diagnostic is about.
        retryable: Whether a retry could succeed (``false``: the input was terminated).
        idempotency_key: The task's key, when the failure is about a task.
        task_id: The task's id.
        source_event_id: The git event the work descends from.
        module_digest: The module that ran, if one did.
        input_digest: The input it read.
        stderr_tail: Last lines the module wrote to stderr, if it ran.
        errors: Field errors of a module that rejected its input (exit code 65).
        occurred_at: When the attempt failed (UTC).
        stream: Stream of the input the diagnostic answers.
        stream_seq: The input's sequence in that stream.
        msg_id: The input's ``Nats-Msg-Id``, when it had one (what its publisher knows it by).
    """

    schema_version: SchemaVersion = SCHEMA_VERSION
    kind: Kind
    stage: Stage
    code: Code
    message: Text
    attempt: Positive
    retryable: bool
    # References stay plain strings: a diagnostic may be about input whose ids
    # are themselves malformed, and it must still be publishable and readable.
    idempotency_key: Ref | None = None
    task_id: Ref | None = None
    source_event_id: Ref | None = None
    module_digest: Ref | None = None
    input_digest: Ref | None = None
    stderr_tail: list[Text] = msgspec.field(default_factory=list)
    errors: list[FieldError] = msgspec.field(default_factory=list)
    occurred_at: Timestamp
    stream: Ref | None = None
    stream_seq: Positive | None = None
    msg_id: Ref | None = None


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """A message JetStream stopped delivering, shaped like GitStore's poison items.

    Published to ``<prefix>.dlq.<kind>``. ``kind``/``namespace``/``name``
    identify the work item (task kind, repository, task id) as the control
    plane's controllers do; the stream coordinates make ``dlq requeue`` possible.

    Attributes:
        schema_version: Contract version, ``1.0``.
        id: Id of this dead letter.
        kind: Task kind of the work item.
        namespace: Repository of the work item.
        name: Task id of the work item.
        attempts: Deliveries made before giving up.
        last_error: The last attempt's error, ``code: message``.
        last_attempt_at: When the last attempt failed (UTC).
        quarantined_at: When the message was dead-lettered (UTC).
        stream: Stream holding the original message.
        stream_seq: Its sequence in that stream.
        subject: Its subject.
        idempotency_key: The task's key, when known.
    """

    schema_version: SchemaVersion = SCHEMA_VERSION
    id: Name
    kind: Kind
    namespace: Name
    name: Name
    attempts: Count
    last_error: Text
    last_attempt_at: Timestamp
    quarantined_at: Timestamp
    stream: Name
    stream_seq: Positive
    subject: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]
    idempotency_key: Digest | None = None
