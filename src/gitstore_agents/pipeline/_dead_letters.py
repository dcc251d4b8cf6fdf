"""Dead letters: messages JetStream stopped delivering, recorded and requeueable.

When a message runs out of deliveries the server publishes a max-deliveries
advisory. A stream (``GITSTORE_ADVISORIES``) captures those advisories, so none
is lost while no worker runs; each role's dead-letter writer consumes the
advisories of its own durable and stores a ``DeadLetter`` (shaped like
GitStore's poison items) in its slot, ``<prefix>.dlq.<kind>.<stream>-<seq>``:
two replicas handling the same advisory store one dead letter.

The letter carries the last failure's code and message, read back from the
audit trail (every retry was recorded before its nak), and goes through the
role's report path like every diagnostic. The decision joins the original
message's trace and is audited under its git event. ``gitstore-agents dlq``
lists and requeues dead letters (``ops``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec
import nats.errors
import nats.js.errors
import structlog
from nats.js.api import RawStreamMsg

from ..config import GIT_PUSH, Topology
from ..consumers import Decision, Delivery, Settle
from ..envelopes import (
    AuditDecision,
    DeadLetter,
    GitEvent,
    Stage,
    Subjects,
    TaskRequest,
    decode,
    slot_of,
    subject_token,
    task_kind,
)
from ..errors import GitStoreAgentsError
from ..telemetry import TrailEntry, annotate, continue_trace
from ._report import About, Reporter

log = structlog.get_logger(__name__)

# The writer retries an advisory it could not handle (NATS briefly down).
_RETRY_DELAY_S = 2.0

StreamReader = Callable[[str, int], Awaitable[RawStreamMsg]]
"""Reads one stream message by (stream, sequence)."""
TrailReader = Callable[[str], Awaitable[list[TrailEntry]]]
"""Reads the audit records of one git event, in stream order."""


class MaxDeliveriesAdvisory(msgspec.Struct, frozen=True, kw_only=True):
    """``io.nats.jetstream.advisory.v1.max_deliver``, as the server publishes it."""

    type: str = ""
    id: str = ""
    timestamp: str
    stream: str
    consumer: str
    stream_seq: int
    deliveries: int


def dead_letter_id(stream: str, stream_seq: int) -> str:
    """The id of the dead letter for message ``stream_seq`` of ``stream``."""
    return f"{stream}-{stream_seq}"


class DeadLetterWriter:
    """Turns max-deliveries advisories of one role's durable into dead letters.

    Args:
        read: Reads the original message by stream sequence.
        trail: Reads the audit records of a git event (the last failure is there).
        reporter: The role's report path (publisher, audit log, headers).
        topology: Stream names and subjects.
        kinds: Kinds the role may file dead letters under (the first is the
            fallback for messages whose kind cannot be read).
    """

    def __init__(
        self,
        *,
        read: StreamReader,
        trail: TrailReader,
        reporter: Reporter,
        topology: Topology,
        kinds: tuple[str, ...],
    ) -> None:
        self._read = read
        self._trail = trail
        self._report = reporter
        self._topology = topology
        self._kinds = kinds

    async def __call__(self, delivery: Delivery) -> Decision:
        """Write the dead letter one advisory asks for."""
        try:
            advisory = _ADVISORY.decode(delivery.data)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
            log.warning("unreadable max-deliveries advisory", error=str(exc)[:500])
            return Decision(settle=Settle.TERM, code="advisory-invalid", reason=str(exc)[:500])
        try:
            original: RawStreamMsg | None = await self._read(advisory.stream, advisory.stream_seq)
        except nats.js.errors.NotFoundError:
            original = None  # gone by the stream's limits; still worth a record
        except (nats.errors.Error, TimeoutError) as exc:
            return Decision(
                settle=Settle.NAK,
                nak_delay_s=_RETRY_DELAY_S,
                code="stream-unavailable",
                reason=repr(exc),
            )
        # The advisory carries no trace; the message it is about does.
        original_headers = dict(original.headers or {}) if original is not None else {}
        about, letter_kind, namespace, name = self._identify(advisory, original)
        with continue_trace(original_headers, f"dead-letter {letter_kind}"):
            annotate(role=self._report.role, event_id=about.event_id)
            last_error, last_at = await self._last_failure(about)
            letter = DeadLetter(
                id=about.token,
                kind=letter_kind,
                namespace=namespace,
                name=name,
                attempts=advisory.deliveries,
                last_error=last_error,
                last_attempt_at=last_at or advisory.timestamp,
                # The advisory's time, not ours: replicas writing the same dead
                # letter produce the same bytes.
                quarantined_at=advisory.timestamp,
                stream=advisory.stream,
                stream_seq=advisory.stream_seq,
                subject=_bounded((original.subject or "") if original is not None else "")
                or "unknown",
                idempotency_key=about.idempotency_key,
            )
            report = self._report
            try:
                published = await report.publisher.publish(
                    [
                        report.outbound(
                            self._topology.subjects.dead_letter(letter_kind, letter.id),
                            letter,
                            about,
                            msg_id=f"dlq:{letter.id}",
                        )
                    ]
                )
            except GitStoreAgentsError as exc:
                return Decision(
                    settle=Settle.NAK, nak_delay_s=_RETRY_DELAY_S, code=exc.code, reason=exc.message
                )
            record = report.record(
                about,
                AuditDecision.DEAD_LETTERED,
                code="deliveries-exhausted",
                reason=last_error,
                refs={"dead_letter": letter.id}
                | ({"stored": "before"} if published[0].stored_before else {}),
                stage=Stage.DEAD_LETTER,
            )
            decision = Decision(settle=Settle.ACK, code="deliveries-exhausted", reason=letter.id)
            settled = await report.settle([record], decision, about)
        if settled.settle is Settle.NAK:
            return msgspec.structs.replace(settled, nak_delay_s=_RETRY_DELAY_S)
        return settled

    def _identify(
        self, advisory: MaxDeliveriesAdvisory, original: RawStreamMsg | None
    ) -> tuple[About, str, str, str]:
        """(what the message is about, its kind, namespace and name for the letter)."""
        subject = (original.subject or "") if original is not None else ""
        data = (original.data or b"") if original is not None else b""
        delivery = Delivery(
            subject=subject,
            data=b"",
            headers=dict(original.headers or {}) if original is not None else {},
            stream=advisory.stream,
            stream_seq=advisory.stream_seq,
            num_delivered=max(advisory.deliveries, 1),
        )
        letter_id = dead_letter_id(advisory.stream, advisory.stream_seq)
        fallback = _kind_from_subject(subject, self._topology.subjects) or self._kinds[0]
        kind = fallback if fallback in self._kinds else self._kinds[0]
        about = msgspec.structs.replace(About.unread(delivery, kind), token=letter_id)
        namespace = _token(slot_of(subject)) if subject else "unknown"
        name = letter_id
        try:
            if advisory.stream == self._topology.events_stream:
                event = decode(data, GitEvent)
                about = msgspec.structs.replace(about.event(event), token=letter_id)
                namespace, name = event.repository_id, event.event_id
            else:
                task = decode(data, TaskRequest)
                about = msgspec.structs.replace(about.task(task, self._kinds), token=letter_id)
                namespace, name = task.repository_id, task.task_id
        except Exception:  # unreadable originals are dead-lettered all the same
            pass
        return about, about.kind, namespace, name

    async def _last_failure(self, about: About) -> tuple[str, str | None]:
        """``code: message`` of the last failure recorded for ``about``, and when."""
        if about.event_id is not None:
            try:
                entries = await self._trail(about.event_id)
            except Exception as exc:
                log.warning("audit trail unreadable for a dead letter", error=str(exc))
                entries = []
            found = None
            for entry in entries:
                record = entry.record
                if record.decision not in _FAILURE_DECISIONS:
                    continue
                if record.idempotency_key == about.idempotency_key:
                    found = record
            if found is not None:
                return _bounded(f"{found.code}: {found.reason}"), found.at
        return (
            "deliveries exhausted: no failure was recorded for its deliveries (the worker "
            "stopped, crashed or could not reach NATS while handling it)",
            None,
        )


_ADVISORY = msgspec.json.Decoder(MaxDeliveriesAdvisory)
_FAILURE_DECISIONS = frozenset({AuditDecision.RETRIED, AuditDecision.FAILED, AuditDecision.REFUSED})


def _kind_from_subject(subject: str, subjects: Subjects) -> str | None:
    """The task kind a subject is about (``git.push`` for events), if it names one."""
    if subject.startswith(f"{subjects.prefix}.events.git.push."):
        return GIT_PUSH
    prefix = f"{subjects.prefix}.tasks."
    if subject.startswith(prefix):
        kind = subject.removeprefix(prefix).rsplit(".", 1)[0]
        try:
            return task_kind(kind)
        except GitStoreAgentsError:
            return None
    return None


def _token(value: str) -> str:
    try:
        return subject_token(value, field="namespace")
    except GitStoreAgentsError:
        return "unknown"


def _bounded(text: str, limit: int = 4096) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
