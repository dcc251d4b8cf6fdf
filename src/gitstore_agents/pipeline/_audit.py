"""The audit trail's write side: group commit, so a busy worker stores one write per flush.

Every delivery ends with its decision records committed before it is
settled: a worker that dies after the ack cannot lose the record of what it
did. Committing them one delivery at a time would cost a stored write (an
fsync, with ``sync_interval: always``) per delivery; instead every role has
one ``AuditLog`` and deliveries that finish while a flush is in flight wait
for the next one, which takes all of them. Under load a flush carries the
records of a whole fetch batch; idle, a delivery waits for its own flush
only.

A flush is one message per git event (``<prefix>.audit.<role>.<event_id>``,
an ``AuditBatch``), so the trail stays readable by event with direct gets:
a flush of a busy worker whose deliveries came from one push is one write.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence

import structlog

from ..consumers import Publisher
from ..envelopes import Subjects, headers
from ..errors import GitStoreAgentsError
from ..guardrails import Outbound
from ..telemetry import (
    RECORDS_HEADER,
    DecisionRecord,
    audit_msg_id,
    audit_record,
    encode_batch,
    encode_record,
)

log = structlog.get_logger(__name__)

# One message holds at most this many records; a flush with more for one
# event splits them (a message must stay far below the server's max_payload).
_MAX_RECORDS_PER_MESSAGE = 256


class _Entry:
    __slots__ = ("encoded", "event_id", "msg_id")

    def __init__(self, event_id: str, encoded: bytes, msg_id: str) -> None:
        self.event_id = event_id
        self.encoded = encoded
        self.msg_id = msg_id


class AuditLog:
    """Stores a role's decision records, one flush at a time.

    Args:
        publisher: The role's publisher (its boundary allows ``<prefix>.audit.<role>.*``).
        subjects: The subject scheme.
        role: The role whose records these are (the subject's role token).
    """

    def __init__(self, publisher: Publisher, subjects: Subjects, role: str) -> None:
        self._publisher = publisher
        self._subjects = subjects
        self._role = role
        self._pending: list[tuple[list[_Entry], asyncio.Future[bool]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.flushes = 0
        self.records = 0

    async def commit(self, records: Sequence[DecisionRecord]) -> bool:
        """Store ``records`` (with whatever else is waiting); True once they are stored.

        Records about no known git event are not stored (the diagnostic the
        pipeline published is their record). False when the flush failed: the
        caller hands its delivery back rather than settle it unrecorded.
        """
        entries = []
        for record in records:
            audit = audit_record(record)
            if audit is not None:
                entries.append(_Entry(audit.event_id, encode_record(audit), audit_msg_id(record)))
        if not entries:
            return True
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((entries, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_all(), name=f"audit:{self._role}")
        return await asyncio.shield(done)

    async def _flush_all(self) -> None:
        # Runs while anything waits: each round takes everything pending, so
        # deliveries finishing during a flush share the next one.
        while self._pending:
            batch, self._pending = self._pending, []
            messages = self._messages([e for entries, _ in batch for e in entries])
            try:
                await self._publisher.publish(messages, span=False)
                stored = True
            except GitStoreAgentsError as exc:
                log.warning(
                    "audit records not stored; their deliveries are retried",
                    role=self._role,
                    records=sum(len(entries) for entries, _ in batch),
                    error=str(exc),
                )
                stored = False
            self.flushes += 1
            for entries, done in batch:
                self.records += len(entries) if stored else 0
                if not done.done():
                    done.set_result(stored)

    def _messages(self, entries: list[_Entry]) -> list[Outbound]:
        by_event: dict[str, list[_Entry]] = {}
        for entry in entries:
            by_event.setdefault(entry.event_id, []).append(entry)
        messages = []
        for event_id, group in by_event.items():
            subject = self._subjects.audit(self._role, event_id)
            for start in range(0, len(group), _MAX_RECORDS_PER_MESSAGE):
                part = group[start : start + _MAX_RECORDS_PER_MESSAGE]
                ids = "\n".join(e.msg_id for e in part)
                messages.append(
                    Outbound(
                        subject=subject,
                        payload=encode_batch([e.encoded for e in part]),
                        headers={
                            # Derived from the records' own ids: the same records
                            # sent again (a flush retried by the server) are one message.
                            headers.MSG_ID: "audit:"
                            + hashlib.sha256(ids.encode()).hexdigest()[:40],
                            headers.CONTENT_TYPE: headers.JSON,
                            RECORDS_HEADER: str(len(part)),
                        },
                    )
                )
        return messages
