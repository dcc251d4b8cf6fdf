"""Decisions become audit records: small, digest-referencing, carrying their trace ids.

``audit_record`` turns one decision into an ``AuditRecord`` (leaving out any
value the contract would refuse, so a record always decodes on the reading
side); ``audit_msg_id`` names it after where the decision was made: the
input's stream and sequence, the delivery attempt, the decision and its code.
Records are stored in ``AuditBatch`` messages on
``<prefix>.audit.<role>.<event_id>`` (``pipeline.AuditLog`` groups them;
``encode_batch`` splices encoded records without re-encoding them). A batch
sent twice by the same attempt is dropped by JetStream; a redelivery is a new
attempt, so what really happened twice is recorded twice.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import msgspec

from ..envelopes import AuditRecord, Stage, Subjects, headers
from ..envelopes._audit import SCHEMA_VERSION as AUDIT_SCHEMA_VERSION
from ..envelopes._types import CODE_PATTERN, KIND_PATTERN, TOKEN_PATTERN, UUID_PATTERN
from ..guardrails import Outbound
from ._decisions import DecisionRecord

_ENCODER = msgspec.json.Encoder(order="sorted")
_UUID = re.compile(UUID_PATTERN)
_CODE = re.compile(CODE_PATTERN)
_TOKEN = re.compile(TOKEN_PATTERN)
_KIND = re.compile(KIND_PATTERN)
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_STAGES = frozenset(Stage)
# Reasons are for humans; a record stays small whatever an error message holds.
MAX_REASON_CHARS = 4096
MAX_STDERR_LINES = 20

RECORDS_HEADER = "GitStore-Audit-Records"
"""Header of an audit message: how many records its batch holds."""

# An AuditBatch's JSON around its records (keys sorted, like every envelope).
_HEAD = b'{"records":['
_TAIL = b'],"schema_version":"' + AUDIT_SCHEMA_VERSION.encode() + b'"}'


def _valid(value: str | None, pattern: re.Pattern[str]) -> str | None:
    return value if value is not None and pattern.fullmatch(value) else None


def audit_record(
    record: DecisionRecord, *, trace_id: str | None = None, span_id: str | None = None
) -> AuditRecord | None:
    """The audit record of ``record`` (None when it is about no known git event).

    Values the contract would refuse (a code that is not kebab-case, a task id
    that is not a token) are left out rather than written: a record must
    always decode on the reading side.
    """
    event_id = _valid(record.event_id, _UUID)
    if event_id is None:
        return None
    code = _valid(record.code, _CODE)
    reason = record.reason if code is not None else f"{record.code}: {record.reason}"
    return AuditRecord(
        event_id=event_id,
        decision=record.decision,
        role=_valid(record.role, _TOKEN) or "unknown",
        worker_id=(record.worker_id or "unknown")[:1024],
        reason=reason[:MAX_REASON_CHARS],
        code=code,
        stage=Stage(record.stage) if record.stage in _STAGES else None,
        stderr_tail=list(record.stderr_tail[-MAX_STDERR_LINES:]),
        idempotency_key=_valid(record.idempotency_key, _DIGEST),
        task_id=_valid(record.task_id, _TOKEN),
        kind=_valid(record.kind, _KIND),
        attempt=record.attempt if record.attempt and record.attempt > 0 else None,
        refs=dict(record.refs),
        trace_id=trace_id or record.trace_id,
        span_id=span_id or record.span_id,
        at=record.at,
    )


def audit_msg_id(record: DecisionRecord) -> str:
    """The ``Nats-Msg-Id`` of ``record``'s audit record (see the module docstring)."""
    if record.stream and record.stream_seq:
        where = f"{record.stream}:{record.stream_seq}:{record.attempt or 0}"
    else:
        # Not about a stream message (a tool's decision): unique by time.
        where = f"{record.event_id}:{record.idempotency_key or '-'}:{record.at}"
    return f"audit:{where}:{record.decision}:{record.code}"


def encode_record(record: AuditRecord) -> bytes:
    """JSON bytes of one record (sorted keys, compact): a piece of an ``AuditBatch``."""
    return _ENCODER.encode(record)


def encode_batch(records: Sequence[bytes]) -> bytes:
    """An ``AuditBatch`` holding already encoded records (spliced, not re-encoded)."""
    return _HEAD + b",".join(records) + _TAIL


def audit_message(
    record: DecisionRecord,
    subjects: Subjects,
    *,
    trace_id: str | None = None,
    span_id: str | None = None,
    msg_id: str | None = None,
) -> Outbound | None:
    """The message that stores ``record``'s audit record (None: no git event to file it under)."""
    audit = audit_record(record, trace_id=trace_id, span_id=span_id)
    if audit is None:
        return None
    return Outbound(
        subject=subjects.audit(audit.role, audit.event_id),
        payload=encode_batch([encode_record(audit)]),
        headers={
            headers.MSG_ID: msg_id or audit_msg_id(record),
            headers.CONTENT_TYPE: headers.JSON,
            RECORDS_HEADER: "1",
        },
    )
