"""Dead letters for operators: list them with their requeues, and put one back.

``gitstore-agents dlq requeue ID`` republishes the original message (fetched
by stream sequence) and records the requeue in its slot,
``<prefix>.dlq._requeued.<id>``: a dead letter is requeued once (if its copy
fails again, that is a new dead letter). A requeued task goes to a slot of its
own (``<key>-rq<seq>``), so the original stays where it was and keeps its
idempotency key; a requeued git event goes back to its own subject. The
decision joins the original message's trace and is audited under its git
event.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime

import msgspec
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy, RawStreamMsg

from ..clock import rfc3339, utc_now
from ..config import GIT_PUSH, Topology
from ..consumers import slot_taken
from ..envelopes import (
    REQUEUED_TOKEN,
    AuditDecision,
    DeadLetter,
    TaskRequest,
    canonical_json,
    decode,
    headers,
    slot_of,
    slot_token,
)
from ..errors import GitStoreAgentsError
from ..guardrails import OPERATOR
from ..telemetry import (
    DecisionRecord,
    audit_message,
    continue_trace,
    current_ids,
    inject,
    message_ids,
)

REQUEUED_FROM = "GitStore-Requeued-From"
"""Header on a requeued message: the dead letter it came from."""


class RequeueRecord(msgspec.Struct, frozen=True, kw_only=True):
    """That (and how) a dead letter was put back.

    Attributes:
        id: The dead letter's id.
        requeued_at: When.
        by: Who (operator or tool).
        subject: Subject the original was republished on.
        stream: Stream it landed in.
        stream_seq: Its new sequence.
        msg_id: ``Nats-Msg-Id`` of the republished copy.
    """

    schema_version: str = "1.0"
    id: str
    requeued_at: str
    by: str
    subject: str
    stream: str
    stream_seq: int
    msg_id: str


class DeadLetterNotFoundError(GitStoreAgentsError):
    """No dead letter has the requested id."""

    code = "dead-letter-not-found"


class AlreadyRequeuedError(GitStoreAgentsError):
    """The dead letter was requeued before (a dead letter is requeued once)."""

    code = "already-requeued"


class DeadLetterEntry(msgspec.Struct, frozen=True, kw_only=True):
    """A dead letter and what happened to it since.

    Attributes:
        letter: The dead letter.
        failures_seq: Its sequence in the failures stream.
        requeues: Requeue records, oldest first.
    """

    letter: DeadLetter
    failures_seq: int
    requeues: list[RequeueRecord] = msgspec.field(default_factory=list)


async def read_subject(
    js: JetStreamContext, stream: str, subject: str, *, timeout_s: float = 5.0
) -> list[tuple[int, str, bytes, dict[str, str]]]:
    """Every message of ``stream`` on ``subject`` (wildcards allowed), oldest first.

    Returns:
        ``(stream sequence, subject, data, headers)`` per message.
    """
    info = await js.stream_info(stream, subjects_filter=subject)
    if not info.state.subjects:
        return []
    sub = await js.subscribe(
        subject, stream=stream, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
    )
    found: list[tuple[int, str, bytes, dict[str, str]]] = []
    try:
        while True:
            msg = await sub.next_msg(timeout=timeout_s)
            meta = msg.metadata
            found.append((meta.sequence.stream, msg.subject, msg.data, dict(msg.headers or {})))
            if meta.num_pending == 0:
                return found
    finally:
        await sub.unsubscribe()


async def list_dead_letters(js: JetStreamContext, topology: Topology) -> list[DeadLetterEntry]:
    """Every dead letter in the failures stream, with its requeues."""
    subjects = topology.subjects
    letters: dict[str, DeadLetterEntry] = {}
    requeues: dict[str, list[RequeueRecord]] = {}
    for seq, subject, data, _ in await read_subject(
        js, topology.failures_stream, subjects.dead_letters_all()
    ):
        if subject.split(".")[-2:-1] == [REQUEUED_TOKEN]:
            with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
                record = msgspec.json.decode(data, type=RequeueRecord)
                requeues.setdefault(record.id, []).append(record)
            continue
        try:
            letter = msgspec.json.decode(data, type=DeadLetter)
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue
        letters.setdefault(letter.id, DeadLetterEntry(letter=letter, failures_seq=seq))
    return [
        msgspec.structs.replace(entry, requeues=requeues.get(entry.letter.id, []))
        for entry in letters.values()
    ]


async def requeue_dead_letter(
    js: JetStreamContext,
    topology: Topology,
    letter_id: str,
    *,
    by: str,
    now: Callable[[], datetime] = utc_now,
) -> RequeueRecord:
    """Republish the original message of dead letter ``letter_id`` and record it.

    The copy gets a ``Nats-Msg-Id`` derived from the dead letter and a
    ``GitStore-Requeued-From`` header. The payload is untouched, so the task
    keeps its idempotency key: it runs again, and its result is stored
    unless one was stored meanwhile.

    Raises:
        DeadLetterNotFoundError: no dead letter has this id.
        AlreadyRequeuedError: it was requeued before.
        nats.js.errors.NotFoundError: the original is gone from its stream.
    """
    entries = {e.letter.id: e for e in await list_dead_letters(js, topology)}
    entry = entries.get(letter_id)
    if entry is None:
        raise DeadLetterNotFoundError(
            f"no dead letter with id {letter_id!r} (see `gitstore-agents dlq list`)"
        )
    if entry.requeues:
        done = entry.requeues[0]
        raise AlreadyRequeuedError(
            f"dead letter {letter_id} was requeued at {done.requeued_at} by {done.by} "
            f"(to {done.subject}, seq {done.stream_seq}); if that copy failed again it "
            "has a dead letter of its own"
        )
    letter = entry.letter
    original = await js.get_msg(letter.stream, letter.stream_seq)
    original_headers = {
        k: v
        for k, v in (original.headers or {}).items()
        if not k.lower().startswith("nats-") and k.lower() not in ("status", "description")
    }
    original_id = headers.get_header(original.headers, headers.MSG_ID) or letter.id
    msg_id = f"{original_id}/requeue/{letter.id}"
    subject = original.subject or letter.subject
    if letter.stream == topology.tasks_stream:
        # The original's slot is taken by the original: the copy gets its own.
        slot = slot_of(subject)
        if letter.idempotency_key is not None:
            slot = slot_token(letter.idempotency_key)
        subject = f"{subject.rsplit('.', 1)[0]}.{slot}-rq{letter.stream_seq}"
    try:
        ack = await js.publish(
            subject,
            original.data or b"",
            headers={**original_headers, headers.MSG_ID: msg_id, REQUEUED_FROM: letter.id},
        )
        stream, seq = ack.stream, ack.seq
    except nats.js.errors.APIError as exc:
        if not slot_taken(exc.err_code, exc.description):
            raise
        # Copied by an earlier requeue that could not record itself: record it now.
        stored = await js.get_last_msg(letter.stream, subject)
        stream, seq = letter.stream, stored.seq or 0
    record = RequeueRecord(
        id=letter.id,
        requeued_at=rfc3339(now()),
        by=by,
        subject=subject,
        stream=stream,
        stream_seq=seq,
        msg_id=msg_id,
    )
    try:
        await js.publish(
            topology.subjects.requeue_record(letter.id),
            canonical_json(record),
            headers={
                headers.MSG_ID: f"requeued:{letter.id}",
                headers.CONTENT_TYPE: headers.JSON,
                headers.SCHEMA_VERSION: record.schema_version,
            },
        )
    except nats.js.errors.APIError as exc:
        if not slot_taken(exc.err_code, exc.description):
            raise
        raise AlreadyRequeuedError(
            f"dead letter {letter_id} was requeued meanwhile by someone else"
        ) from None
    await _audit_requeue(js, topology, letter, original, record)
    return record


REQUEUE_ROLE = OPERATOR
"""Role of ``requeued`` audit records (a person or tool, not a worker role)."""


async def _audit_requeue(
    js: JetStreamContext,
    topology: Topology,
    letter: DeadLetter,
    original: RawStreamMsg,
    record: RequeueRecord,
) -> None:
    """Audit the requeue under the original's git event, in the original's trace."""
    event_id: str | None = letter.name if letter.kind == GIT_PUSH else None
    task: TaskRequest | None = None
    with contextlib.suppress(GitStoreAgentsError):
        task = decode(original.data or b"", TaskRequest)
        event_id = task.source_event_id
    decision = DecisionRecord(
        decision=AuditDecision.REQUEUED,
        role=REQUEUE_ROLE,
        worker_id=record.by,
        reason=f"dead letter {letter.id} requeued by {record.by}",
        stream=letter.stream,
        stream_seq=letter.stream_seq,
        event_id=event_id,
        idempotency_key=letter.idempotency_key,
        task_id=task.task_id if task is not None else None,
        kind=letter.kind,
        refs={
            "dead_letter": letter.id,
            "requeued_stream": record.stream,
            "requeued_seq": str(record.stream_seq),
            "msg_id": record.msg_id,
        },
        at=record.requeued_at,
    )
    with continue_trace(original.headers, f"requeue {letter.kind}"):
        trace_id, span_id = current_ids()
        if trace_id is None:
            # No SDK in this process (a CLI run): the original's own ids will do.
            trace_id, span_id = message_ids(original.headers)
        message = audit_message(
            decision,
            topology.subjects,
            trace_id=trace_id,
            span_id=span_id,
            msg_id=f"audit:requeued:{letter.id}:{record.stream_seq}",
        )
        if message is not None:
            await js.publish(
                message.subject,
                message.payload,
                headers=inject(dict(message.headers)),
            )
