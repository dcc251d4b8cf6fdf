"""Failure diagnostics and dead letters: failure is data."""

from __future__ import annotations

import enum

import msgspec

SCHEMA_VERSION = "1.0"


class Stage(enum.StrEnum):
    """Pipeline stage where a task failed."""

    DECODE = "decode"
    ADMISSION = "admission"
    LEDGER = "ledger"
    SANDBOX = "sandbox"
    OUTPUT_CHECK = "output-check"
    PUBLISH = "publish"
    DEAD_LETTER = "dead-letter"


class FieldError(msgspec.Struct, frozen=True, kw_only=True):
    """One reason a module rejected its input (exit code 65), in the control plane's shape.

    Attributes:
        file_path: Catalog file the error is about.
        field: Path of the offending field (e.g. ``spec.price.amount``).
        constraint: Which rule failed (e.g. ``required``, ``pattern``).
        message: What a human should fix.
    """

    file_path: str = ""
    field: str = ""
    constraint: str = ""
    message: str = ""


class FailureDiagnostic(msgspec.Struct, frozen=True, kw_only=True):
    """Why one attempt of a task (or event) failed, published to ``<prefix>.failures.<kind>``.

    Attributes:
        stage: Where it failed.
        code: Stable error code (an ``Outcome`` value or a ``GitStoreAgentsError.code``).
        message: What failed, naming the field or limit.
        attempt: Delivery attempt (1-based) this diagnostic is about.
        retryable: Whether a retry could succeed (``False`` ⇒ the input was terminated).
        stderr_tail: Last lines the module wrote to stderr, if it ran.
        errors: Field errors of a module that rejected its input (exit code 65).
    """

    schema_version: str = SCHEMA_VERSION
    kind: str
    stage: Stage
    code: str
    message: str
    attempt: int
    retryable: bool
    idempotency_key: str | None = None
    task_id: str | None = None
    source_event_id: str | None = None
    module_digest: str | None = None
    input_digest: str | None = None
    stderr_tail: list[str] = msgspec.field(default_factory=list)
    errors: list[FieldError] = msgspec.field(default_factory=list)
    occurred_at: str


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """A message JetStream stopped delivering, shaped like GitStore's poison items.

    ``kind``/``namespace``/``name`` identify the work item (task kind, repository,
    task id) as the control plane's controllers do; the stream coordinates make
    ``dlq requeue`` possible.
    """

    schema_version: str = SCHEMA_VERSION
    id: str
    kind: str
    namespace: str
    name: str
    attempts: int
    last_error: str
    last_attempt_at: str
    quarantined_at: str
    stream: str
    stream_seq: int
    subject: str
    idempotency_key: str | None = None
