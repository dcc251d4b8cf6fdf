"""The one report path: every failure of every role becomes one decision, classified once.

``classify`` turns any exception into a ``Failure`` (stage, stable code,
message, retryable); ``Reporter.failed`` then either files a
``FailureDiagnostic`` in the input's failure slot and terminates the input
(permanent), or records the retry and naks it with the role's backoff
(transient). The planner, the task roles and the dead-letter writer all end
here, so every diagnostic carries the same headers (``Nats-Msg-Id``,
``Content-Type``, ``GitStore-Schema-Version``, ``X-Request-ID``,
``traceparent``) and names the input it answers (stream, sequence,
``Nats-Msg-Id``).

A diagnostic's subject is a slot (``<prefix>.failures.<kind>.<token>``: the
task's key, the event's id, or the input's stream and sequence), so however
often the same input fails, one diagnostic is stored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
import structlog

from .. import codes
from ..clock import rfc3339, utc_now
from ..consumers import Decision, Delivery, Publisher, Settle, retry_delay_s
from ..envelopes import (
    AuditDecision,
    FailureDiagnostic,
    FieldError,
    GitEvent,
    Stage,
    Subjects,
    TaskRequest,
    headers,
    input_token,
    slot_token,
)
from ..errors import GitStoreAgentsError
from ..guardrails import Outbound
from ..telemetry import DecisionRecord, Observer, current_ids
from ._audit import AuditLog

log = structlog.get_logger(__name__)

MAX_MESSAGE_CHARS = 4096
"""Diagnostics and records carry at most this much of a message."""
MAX_FIELD_ERRORS = 100
"""A diagnostic carries at most this many of a module's field errors."""
_STDERR_TAIL_LINES = 20
_STDERR_LINE_CHARS = 500
_ENCODER = msgspec.json.Encoder(order="sorted")


class Failure(msgspec.Struct, frozen=True, kw_only=True):
    """What went wrong with one delivery, classified.

    Attributes:
        stage: Where it went wrong.
        code: Stable code (``codes.CODES``).
        message: What failed, naming the field or limit.
        retryable: Whether another delivery could succeed.
        errors: A module's field errors (it exited 65).
        stderr: The module's stderr, when it ran.
    """

    stage: Stage
    code: str
    message: str
    retryable: bool
    errors: tuple[FieldError, ...] = ()
    stderr: bytes = b""


def classify(exc: BaseException, stage: Stage) -> Failure:
    """The failure ``exc`` means at ``stage``: the one place exceptions are classified.

    Our own errors carry their code and whether a retry could help. Anything
    else is a bug in the runtime: worth a retry (it may have been a passing
    state), and its type and message are kept, so the dead letter it may end
    in says what it was.
    """
    if isinstance(exc, GitStoreAgentsError):
        return Failure(stage=stage, code=exc.code, message=exc.message, retryable=exc.retryable)
    if isinstance(exc, RecursionError):
        return Failure(
            stage=stage,
            code="envelope-too-deep",
            message="nested too deeply to read",
            retryable=False,
        )
    return Failure(
        stage=stage,
        code="handler-error",
        message=f"{type(exc).__name__}: {_text(str(exc), 1024)}",
        retryable=True,
    )


class About(msgspec.Struct, frozen=True, kw_only=True):
    """What a delivery is about, as far as it could be read.

    Attributes:
        delivery: The delivery.
        kind: The kind its diagnostics are filed under (one of the role's).
        token: Its failure slot's token.
        event_id: The git event it descends from (a valid event id, or None).
        idempotency_key: The task's key.
        task_id: The task's id.
        module_digest: The task's module.
        input_digest: The task's input digest.
        request_id: The API request behind it (``X-Request-ID``), passed along.
    """

    delivery: Delivery
    kind: str
    token: str
    event_id: str | None = None
    idempotency_key: str | None = None
    task_id: str | None = None
    module_digest: str | None = None
    input_digest: str | None = None
    request_id: str | None = None

    @classmethod
    def unread(cls, delivery: Delivery, kind: str) -> About:
        """A delivery nothing could be read from yet: filed under its stream and sequence."""
        return cls(
            delivery=delivery,
            kind=kind,
            token=input_token(delivery.stream or "stream", max(delivery.stream_seq, 1)),
            request_id=headers.passed_request_id(delivery.headers),
        )

    def task(self, task: TaskRequest, kinds: Sequence[str]) -> About:
        """About ``task``; its own slot when the role runs its kind."""
        own = task.kind in kinds
        return msgspec.structs.replace(
            self,
            kind=task.kind if own else self.kind,
            token=slot_token(task.idempotency_key) if own else self.token,
            event_id=task.source_event_id,
            idempotency_key=task.idempotency_key,
            task_id=task.task_id,
            module_digest=task.module_digest,
            input_digest=task.input_digest,
        )

    def event(self, event: GitEvent | None = None, *, event_id: str | None = None) -> About:
        """About a git event (decoded, or only its id when the rest did not decode)."""
        found = event.event_id if event is not None else event_id
        if found is None:
            return self
        request_id = self.request_id or (event.request_id if event is not None else None)
        return msgspec.structs.replace(self, token=found, event_id=found, request_id=request_id)


class Reporter:
    """Files diagnostics, records decisions and decides how a delivery is settled.

    Args:
        role: The reporting role.
        worker_id: This process.
        subjects: The subject scheme.
        publisher: The role's publisher.
        audit: The role's audit log.
        observer: Receives every decision (logs, metrics, spans).
        backoff_s: Retry delay after the n-th failed delivery.
    """

    def __init__(
        self,
        *,
        role: str,
        worker_id: str,
        subjects: Subjects,
        publisher: Publisher,
        audit: AuditLog,
        observer: Observer,
        backoff_s: Sequence[float],
    ) -> None:
        self.role = role
        self.worker_id = worker_id
        self.subjects = subjects
        self.publisher = publisher
        self.audit = audit
        self.observer = observer
        self.backoff_s = tuple(backoff_s)

    def record(
        self,
        about: About,
        decision: AuditDecision,
        *,
        code: str = codes.OK,
        reason: str = "",
        refs: Mapping[str, str] | None = None,
        stage: Stage | None = None,
        stderr_tail: Sequence[str] = (),
    ) -> DecisionRecord:
        """The record of one decision about ``about`` (reported to the observer)."""
        d = about.delivery
        trace_id, span_id = current_ids()
        record = DecisionRecord(
            decision=decision,
            role=self.role,
            worker_id=self.worker_id,
            code=code,
            reason=reason,
            stream=d.stream,
            stream_seq=d.stream_seq,
            attempt=d.num_delivered,
            event_id=about.event_id,
            idempotency_key=about.idempotency_key,
            task_id=about.task_id,
            kind=about.kind,
            refs=dict(refs or {}),
            stage=stage,
            stderr_tail=tuple(stderr_tail),
            at=rfc3339(utc_now()),
            trace_id=trace_id,
            span_id=span_id,
        )
        self.observer.decided(record)
        return record

    async def settle(
        self, records: Sequence[DecisionRecord], decision: Decision, about: About
    ) -> Decision:
        """Store ``records``, then settle as ``decision`` (a nak if they could not be stored)."""
        if await self.audit.commit(records) or decision.settle is Settle.NAK:
            return decision
        # Unrecorded, the delivery must not be settled as done: the next
        # delivery finds its result stored and records that instead.
        return Decision(
            settle=Settle.NAK, nak_delay_s=self.backoff(about), code="audit-failed", reason=""
        )

    async def failed(self, about: About, failure: Failure) -> Decision:
        """Settle a failed delivery: a retry if one could help, else a diagnostic and ``term``."""
        if failure.retryable:
            return await self.retry(about, failure)
        return await self.permanent(about, failure)

    async def retry(self, about: About, failure: Failure) -> Decision:
        """Record the retry and hand the delivery back with the role's backoff."""
        delay = self.backoff(about)
        record = self.record(
            about,
            AuditDecision.RETRIED,
            code=failure.code,
            reason=_text(failure.message),
            refs={"retry_in_s": f"{delay:g}"},
            stage=failure.stage,
        )
        decision = Decision(
            settle=Settle.NAK, nak_delay_s=delay, code=failure.code, reason=failure.message
        )
        return await self.settle([record], decision, about)

    async def permanent(self, about: About, failure: Failure) -> Decision:
        """File the diagnostic in the input's failure slot, record it, ``term`` the delivery.

        A diagnostic that cannot be stored turns the failure into a retry: an
        input is never terminated without its diagnostic.
        """
        diagnostic = self.diagnostic(about, failure)
        subject = self.subjects.failure(about.kind, about.token)
        try:
            published = await self.publisher.publish(
                [
                    self.outbound(
                        subject, diagnostic, about, msg_id=f"failure:{about.kind}:{about.token}"
                    )
                ]
            )
        except GitStoreAgentsError as exc:
            log.warning(
                "diagnostic not stored; the input is retried",
                code=failure.code,
                error=str(exc),
            )
            return await self.retry(about, classify(exc, Stage.PUBLISH))
        refs = {"diagnostic": "stored before"} if published[0].stored_before else {}
        refused = failure.stage in (Stage.ADMISSION, Stage.OUTPUT_CHECK)
        record = self.record(
            about,
            AuditDecision.REFUSED if refused else AuditDecision.FAILED,
            code=failure.code,
            reason=_text(failure.message),
            refs=refs,
            stage=failure.stage,
            stderr_tail=diagnostic.stderr_tail,
        )
        decision = Decision(settle=Settle.TERM, code=failure.code, reason=failure.message)
        return await self.settle([record], decision, about)

    def diagnostic(self, about: About, failure: Failure) -> FailureDiagnostic:
        """The ``FailureDiagnostic`` of ``failure`` about ``about``."""
        d = about.delivery
        errors = list(failure.errors[:MAX_FIELD_ERRORS])
        return FailureDiagnostic(
            kind=about.kind,
            stage=failure.stage,
            code=failure.code,
            message=_text(failure.message)
            + (
                f" (first {MAX_FIELD_ERRORS} of {len(failure.errors)} field errors kept)"
                if len(failure.errors) > MAX_FIELD_ERRORS
                else ""
            ),
            attempt=max(d.num_delivered, 1),
            retryable=False,
            idempotency_key=about.idempotency_key,
            task_id=about.task_id,
            source_event_id=about.event_id,
            module_digest=about.module_digest,
            input_digest=about.input_digest,
            stderr_tail=stderr_tail(failure.stderr),
            errors=errors,
            occurred_at=rfc3339(utc_now()),
            stream=d.stream or None,
            stream_seq=d.stream_seq or None,
            msg_id=_text(headers.get_header(d.headers, headers.MSG_ID) or "", 1024) or None,
        )

    def outbound(self, subject: str, envelope: Any, about: About, *, msg_id: str) -> Outbound:
        """``envelope`` as a message on ``subject`` with the contract's headers."""
        return Outbound(
            subject=subject,
            payload=_ENCODER.encode(envelope),
            headers=envelope_headers(msg_id, envelope.schema_version, about.request_id),
        )

    def backoff(self, about: About) -> float:
        """The delay before the next delivery of ``about``'s input."""
        return retry_delay_s(self.backoff_s, about.delivery.num_delivered)


def envelope_headers(msg_id: str, schema_version: str, request_id: str | None) -> dict[str, str]:
    """Headers of an envelope the runtime publishes (values built by the runtime: safe)."""
    out = {
        headers.MSG_ID: msg_id,
        headers.CONTENT_TYPE: headers.JSON,
        headers.SCHEMA_VERSION: schema_version,
    }
    if request_id is not None:
        out[headers.REQUEST_ID] = request_id
    return out


def stderr_tail(stderr: bytes) -> list[str]:
    """The last lines of a module's stderr, each cut to a readable length."""
    if not stderr:
        return []
    lines = stderr.decode("utf-8", "replace").splitlines()[-_STDERR_TAIL_LINES:]
    return [line[:_STDERR_LINE_CHARS] for line in lines]


def _text(message: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    return message if len(message) <= limit else message[: limit - 3] + "..."
