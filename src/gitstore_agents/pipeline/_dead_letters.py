"""Dead letters: messages JetStream stopped delivering, recorded and requeueable.

When a message runs out of deliveries the server publishes a max-deliveries
advisory. A stream (``GITSTORE_ADVISORIES``) captures those advisories, so none
is lost while no worker runs; each role's dead-letter writer consumes the
advisories of its own durable and publishes a ``DeadLetter`` (shaped like
GitStore's poison items) to ``<prefix>.dlq.<kind>``. Its ``Nats-Msg-Id`` is
derived from the stream and sequence, so two replicas handling the same
advisory store one dead letter.

``gitstore-agents dlq requeue ID`` republishes the original message (fetched by
stream sequence) and records the requeue on ``<prefix>.dlq._requeued``.

Both decisions (``dead-lettered``, ``requeued``) join the original message's
trace and are audited under its git event.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

import msgspec
import nats.errors
import nats.js.errors
from nats.js.api import RawStreamMsg

from ..clock import rfc3339, utc_now
from ..config import GIT_PUSH, Topology
from ..consumers import (
    Decision,
    Delivery,
    Ledger,
    LedgerUnavailableError,
    PublishFailedError,
    Settle,
    publish_confirmed,
)
from ..envelopes import (
    AuditDecision,
    DeadLetter,
    GitEvent,
    Stage,
    Subjects,
    TaskRequest,
    canonical_json,
    decode,
    headers,
    task_kind,
)
from ..errors import GitStoreAgentsError
from ..guardrails import Outbound, PublishBoundary, PublishRefusedError
from ..telemetry import (
    DecisionRecord,
    Observer,
    annotate,
    continue_trace,
)

# The writer retries an advisory it could not handle (NATS briefly down).
_RETRY_DELAY_S = 2.0

StreamReader = Callable[[str, int], Awaitable[RawStreamMsg]]
"""Reads one stream message by (stream, sequence)."""


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
        ledger: Supplies the last error and attempts; records the dead letter.
        boundary: The role's publish boundary (allows ``<prefix>.dlq.>``).
        topology: Stream names and subjects.
        observer: Receives the decision.
        role: Role name (for decision records).
        worker_id: This process's id.
        publish_timeout_s: Bound on waiting for the PubAck.
        kinds: Kinds the role may file dead letters under (the first is the
            fallback for messages whose kind cannot be read).
    """

    def __init__(
        self,
        *,
        read: StreamReader,
        ledger: Ledger,
        boundary: PublishBoundary,
        topology: Topology,
        observer: Observer,
        role: str,
        worker_id: str,
        publish_timeout_s: float,
        kinds: tuple[str, ...],
    ) -> None:
        self._kinds = kinds
        self._read = read
        self._ledger = ledger
        self._boundary = boundary
        self._topology = topology
        self._observer = observer
        self._role = role
        self._worker_id = worker_id
        self._publish_timeout_s = publish_timeout_s

    async def __call__(self, delivery: Delivery) -> Decision:
        """Write the dead letter one advisory asks for."""
        try:
            advisory = msgspec.json.decode(delivery.data, type=MaxDeliveriesAdvisory)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return Decision(settle=Settle.TERM, code="advisory-invalid", reason=str(exc))
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
        try:
            letter, event_id = await self._dead_letter(advisory, original)
        except LedgerUnavailableError as exc:
            return Decision(
                settle=Settle.NAK, nak_delay_s=_RETRY_DELAY_S, code=exc.code, reason=exc.message
            )
        annotate(role=self._role, event_id=event_id, idempotency_key=letter.idempotency_key)
        message = Outbound(
            subject=self._topology.subjects.dead_letter(letter.kind),
            payload=canonical_json(letter),
            headers={
                headers.MSG_ID: f"dlq:{advisory.stream}:{advisory.stream_seq}",
                headers.CONTENT_TYPE: headers.JSON,
            },
        )
        # The advisory carries no trace; the message it is about does.
        original_headers = original.headers if original is not None else None
        with continue_trace(original_headers, f"dead-letter {letter.kind}"):
            trail = list(self._observer.decided(self._record(advisory, letter, event_id)))
            try:
                await publish_confirmed(
                    self._boundary, [message, *trail], timeout_s=self._publish_timeout_s
                )
            except (PublishFailedError, PublishRefusedError) as exc:
                return Decision(
                    settle=Settle.NAK,
                    nak_delay_s=_RETRY_DELAY_S,
                    code=exc.code,
                    reason=exc.message,
                )
        if letter.idempotency_key is not None:
            # The dead letter is stored; the ledger state is only informational.
            with contextlib.suppress(LedgerUnavailableError):
                await self._ledger.mark_dead_lettered(
                    letter.idempotency_key, error=letter.last_error
                )
        return Decision(settle=Settle.ACK, code="dead-lettered", reason=letter.id)

    async def _dead_letter(
        self, advisory: MaxDeliveriesAdvisory, original: RawStreamMsg | None
    ) -> tuple[DeadLetter, str | None]:
        """The dead letter for ``advisory`` and the git event its message descends from."""
        kind, namespace, key, event_id = self._kinds[0], "", None, None
        name = dead_letter_id(advisory.stream, advisory.stream_seq)
        subject = (original.subject or "") if original is not None else ""
        data = (original.data or b"") if original is not None else b""
        last_error = "deliveries exhausted"
        last_attempt_at = advisory.timestamp
        try:
            if advisory.stream == self._topology.events_stream:
                event = decode(data, GitEvent)
                kind, namespace, name = GIT_PUSH, event.repository_id, event.event_id
                event_id = event.event_id
            else:
                task = decode(data, TaskRequest)
                kind, namespace, name, key = (
                    task_kind(task.kind),
                    task.repository_id,
                    task.task_id,
                    task.idempotency_key,
                )
                event_id = task.source_event_id
        except GitStoreAgentsError:
            kind = _kind_from_subject(subject, self._topology.subjects) or kind
        if kind not in self._kinds:
            kind = self._kinds[0]
        if key is not None:
            found = await self._ledger.get(key)
            if found is not None:
                record = found[0]
                last_error = record.last_error or (
                    f"no result after {record.attempts} claim(s); last claimed by "
                    f"{record.worker_id} (lease until {record.lease_until})"
                )
                last_attempt_at = record.started_at or last_attempt_at
        letter = DeadLetter(
            id=dead_letter_id(advisory.stream, advisory.stream_seq),
            kind=kind,
            namespace=namespace,
            name=name,
            attempts=advisory.deliveries,
            last_error=last_error,
            last_attempt_at=last_attempt_at,
            # The advisory's time, not ours: replicas writing the same dead
            # letter produce the same bytes.
            quarantined_at=advisory.timestamp,
            stream=advisory.stream,
            stream_seq=advisory.stream_seq,
            subject=subject,
            idempotency_key=key,
        )
        return letter, event_id

    def _record(
        self, advisory: MaxDeliveriesAdvisory, letter: DeadLetter, event_id: str | None
    ) -> DecisionRecord:
        return DecisionRecord(
            decision=AuditDecision.DEAD_LETTERED,
            role=self._role,
            worker_id=self._worker_id,
            code="deliveries-exhausted",
            reason=letter.last_error,
            stream=advisory.stream,
            stream_seq=advisory.stream_seq,
            attempt=advisory.deliveries,
            event_id=event_id,
            idempotency_key=letter.idempotency_key,
            task_id=letter.name if letter.kind != GIT_PUSH else None,
            kind=letter.kind,
            refs={"dead_letter": letter.id},
            stage=Stage.DEAD_LETTER,
            at=rfc3339(utc_now()),
        )


def _kind_from_subject(subject: str, subjects: Subjects) -> str | None:
    for prefix in (f"{subjects.prefix}.tasks.", f"{subjects.prefix}.events.git.push."):
        if subject.startswith(prefix):
            if prefix.endswith("git.push."):
                return GIT_PUSH
            try:
                return task_kind(subject.removeprefix(prefix))
            except GitStoreAgentsError:
                return None
    return None
