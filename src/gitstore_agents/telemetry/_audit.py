"""Decisions become audit records: small, digest-referencing, carrying their trace ids.

``audit_message`` turns one decision into a message for
``<prefix>.audit.<event_id>`` (an ``AuditBatch`` of one record) with a
deterministic ``Nats-Msg-Id`` built from where the decision was made: the
input's stream and sequence, the delivery attempt, the decision and its code.
``coalesce_audit`` then merges the consecutive audit messages of one publish
into one message (their payloads are spliced, not re-encoded), whose id is
derived from its records' ids. A batch republished by the same attempt (one
that failed half-way and was sent again) is dropped by JetStream; a
redelivery is a new attempt, so what really happened twice is recorded twice.
"""

from __future__ import annotations

import hashlib
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
        trace_id=trace_id,
        span_id=span_id,
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


def encode_audit(record: AuditRecord) -> bytes:
    """JSON bytes of an audit batch holding ``record`` (sorted keys, compact)."""
    return _HEAD + _ENCODER.encode(record) + _TAIL


def coalesce_audit(messages: Sequence[Outbound]) -> list[Outbound]:
    """``messages`` with each run of consecutive audit messages on one subject merged.

    Every other message keeps its place. The merged message's id is derived
    from its parts' ids, so the same run published again is deduplicated.
    """
    out: list[Outbound] = []
    run: list[Outbound] = []
    for message in messages:
        if RECORDS_HEADER in message.headers and (not run or run[0].subject == message.subject):
            run.append(message)
            continue
        _flush(run, out)
        if RECORDS_HEADER in message.headers:
            run.append(message)
        else:
            out.append(message)
    _flush(run, out)
    return out


def _flush(run: list[Outbound], out: list[Outbound]) -> None:
    if len(run) == 1:
        out.append(run[0])
    elif run:
        ids = "\n".join(m.headers[headers.MSG_ID] for m in run)
        records = b",".join(m.payload[len(_HEAD) : -len(_TAIL)] for m in run)
        count = sum(int(m.headers[RECORDS_HEADER]) for m in run)
        out.append(
            Outbound(
                subject=run[0].subject,
                payload=_HEAD + records + _TAIL,
                headers={
                    headers.MSG_ID: "audit:" + hashlib.sha256(ids.encode()).hexdigest()[:40],
                    headers.CONTENT_TYPE: headers.JSON,
                    RECORDS_HEADER: str(count),
                },
            )
        )
    run.clear()


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
        subject=subjects.audit(audit.event_id),
        payload=encode_audit(audit),
        headers={
            headers.MSG_ID: msg_id or audit_msg_id(record),
            headers.CONTENT_TYPE: headers.JSON,
            RECORDS_HEADER: "1",
        },
    )
