"""Read one git event's audit records: batched direct gets, subject-filtered.

The audit stream allows direct gets, so the records on
``<prefix>.audit.*.<event_id>`` come back in stream order from one request per
``batch`` records (``$JS.API.DIRECT.GET.<stream>`` with ``next_by_subj`` and
``batch``; nats-server 2.11 or later): no consumer is created, which keeps a
status query cheap and lets a role read the trail with nothing more than
permission to publish that one API subject.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg

from ..config import Topology
from ..envelopes import AuditBatch, AuditRecord
from ..errors import GitStoreAgentsError

_DECODER = msgspec.json.Decoder(AuditBatch)
_API_PREFIX = "$JS.API"
DEFAULT_BATCH = 256


class AuditTrailUnavailableError(GitStoreAgentsError):
    """The audit stream did not answer (missing, no permission, or NATS unavailable)."""

    code = "audit-unavailable"
    retryable = True


class TrailEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One stored audit record.

    Attributes:
        seq: Sequence of its message in the audit stream (the order decisions
            were stored in; the records of one message share it).
        record: The record. Its ``role`` is the writer's when the subject
            names one: the server lets an identity publish only under its own
            role token, so that token, not the record's text, says who wrote it.
        writer: The role token of the subject the record was stored on
            (``<prefix>.audit.<writer>.<event_id>``); None for a record of the
            layout before role tokens (``<prefix>.audit.<event_id>``).
        claimed_role: The role the record itself named, when it is not its
            writer's (a forgery, or a tool such as ``replay`` deciding as a role
            while writing in the operator's name); None when they agree.
    """

    seq: int
    record: AuditRecord
    writer: str | None = None
    claimed_role: str | None = None


def trail_entry(seq: int, record: AuditRecord, subject: str | None) -> TrailEntry:
    """The entry of ``record`` (message ``seq``, on ``subject``): its role is the writer's."""
    tokens = (subject or "").split(".")
    writer = tokens[-2] if len(tokens) >= 4 and tokens[-3] == "audit" else None
    if writer is None or writer == record.role:
        return TrailEntry(seq=seq, record=record, writer=writer)
    return TrailEntry(
        seq=seq,
        record=msgspec.structs.replace(record, role=writer),
        writer=writer,
        claimed_role=record.role,
    )


async def read_event_trail(
    nc: Client, topology: Topology, event_id: str, *, timeout_s: float = 5.0
) -> list[TrailEntry]:
    """Every audit record about git event ``event_id``, by every role, in stream order.

    Records are on ``<prefix>.audit.<role>.<event_id>``; a deployment upgraded
    from the layout before role tokens also has ``<prefix>.audit.<event_id>``,
    read as well.
    """
    subjects = topology.subjects
    found = await read_trail(
        nc, topology.audit_stream, subjects.audit_of_event(event_id), timeout_s=timeout_s
    )
    found += await read_trail(
        nc, topology.audit_stream, f"{subjects.prefix}.audit.{event_id}", timeout_s=timeout_s
    )
    return sorted(found, key=lambda entry: entry.seq)


async def read_trail(
    nc: Client,
    stream: str,
    subject: str,
    *,
    timeout_s: float = 5.0,
    batch: int = DEFAULT_BATCH,
) -> list[TrailEntry]:
    """Every audit record stored on ``subject`` in ``stream``, oldest first.

    Records that do not decode (written by something else) are skipped.

    Raises:
        AuditTrailUnavailableError: the stream did not answer within ``timeout_s``
            or refused the request.
    """
    entries: list[TrailEntry] = []
    inbox = nc.new_inbox()
    replies: asyncio.Queue[Msg] = asyncio.Queue()

    async def collect(msg: Msg) -> None:
        await replies.put(msg)

    sub = await nc.subscribe(inbox, cb=collect)
    try:
        start = 1
        while True:
            request = {"seq": start, "next_by_subj": subject, "batch": batch}
            await nc.publish(
                f"{_API_PREFIX}.DIRECT.GET.{stream}", json.dumps(request).encode(), reply=inbox
            )
            last, more = await _receive_batch(replies, entries, timeout_s, stream)
            if not more or last is None:
                return entries
            start = last + 1
    finally:
        await sub.unsubscribe()


async def _receive_batch(
    replies: asyncio.Queue[Msg], entries: list[TrailEntry], timeout_s: float, stream: str
) -> tuple[int | None, bool]:
    """Take one batch's replies; (last sequence seen, whether more records are pending)."""
    last: int | None = None
    while True:
        try:
            msg = await asyncio.wait_for(replies.get(), timeout=timeout_s)
        except TimeoutError:
            raise AuditTrailUnavailableError(
                f"audit stream {stream} did not answer a direct get within {timeout_s:g}s "
                "(does it exist, with allow_direct, and may this user read it?)"
            ) from None
        headers = msg.headers or {}
        status = headers.get("Status")
        if status is None:
            seq = int(headers.get("Nats-Sequence", "0"))
            last = seq
            subject = headers.get("Nats-Subject")
            # A record something else wrote is skipped, not fatal.
            with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
                batch = _DECODER.decode(msg.data)
                entries.extend(trail_entry(seq, r, subject) for r in batch.records)
            continue
        if status == "204":  # end of batch
            return last, int(headers.get("Nats-Num-Pending", "0")) > 0
        if status == "404":  # nothing (more) on the subject
            return last, False
        if status == "503":
            raise AuditTrailUnavailableError(f"audit stream {stream}: no responders (missing?)")
        description = headers.get("Description", "")
        raise AuditTrailUnavailableError(f"audit stream {stream}: {status} {description}".strip())
