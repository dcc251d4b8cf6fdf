"""Upgrading a deployment in place: from one subject per kind to one slot per key.

Before the slot layout, tasks, validation requests, diagnostics and dead
letters shared one subject per kind (``<prefix>.tasks.<kind>``) and a KV
ledger said which tasks had run. A slot stream keeps one message per subject:
setting that limit on a stream that still holds the old layout would keep
only the last message of each kind. So provisioning first copies every
old-layout message into its slot (same payload and headers, plus
``GitStore-Migrated-From: <stream>:<seq>``), then sets the limit, which
leaves each old per-kind subject with its last message (nothing consumes those
subjects any more; provisioning never purges). History stays whole in the
slots; only stream sequences change, and dead letters are rewritten to point
at their original's new sequence.

A migrated task is delivered again to its role (the copy is new to the
durable); the worker looks its result up first (``TaskHandler``) and acks it
without running it when the result was migrated too. Migration refuses to
start while a worker is pulling from the tasks stream: stop the workers, run
``gitstore-agents provision``, start the new ones.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence
from typing import TypeVar

import msgspec
import nats.js.errors
import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy

from ..config import Topology
from ..envelopes import REQUEUED_TOKEN, DeadLetter
from ._errors import TopologyError
from ._publisher import slot_taken

log = structlog.get_logger(__name__)

MIGRATED_FROM = "GitStore-Migrated-From"
"""Header on a message copied into its slot by the migration: ``<stream>:<old seq>``."""

_SLOT = re.compile(r"^[0-9a-f]{64}(-rq[0-9]+)?$")
_READ_TIMEOUT_S = 5.0


class _Keyed(msgspec.Struct):
    idempotency_key: str | None = None


class _Identified(msgspec.Struct):
    id: str | None = None


class MigrationReport(msgspec.Struct, kw_only=True):
    """What a migration moved.

    Attributes:
        stream: The stream.
        copied: Old-layout messages copied into their slots.
        already: Old-layout messages whose slot was taken (migrated before).
        old_subjects: The per-kind subjects the copies came from.
    """

    stream: str
    copied: int = 0
    already: int = 0
    old_subjects: list[str] = msgspec.field(default_factory=list)


async def needs_migration(js: JetStreamContext, topology: Topology) -> list[str]:
    """The slot streams that exist without their per-subject limit and hold messages."""
    found = []
    for name in topology.slot_streams():
        try:
            info = await js.stream_info(name)
        except nats.js.errors.NotFoundError:
            continue
        if info.config.max_msgs_per_subject != 1 and info.state.messages:
            found.append(name)
    return found


async def migrate_to_slots(
    js: JetStreamContext, topology: Topology, *, durables: Sequence[tuple[str, str]]
) -> list[MigrationReport]:
    """Copy every old-layout message of the slot streams into its slot.

    Tasks first (dead letters point at their sequences), then validation
    requests, then diagnostics and dead letters.

    Args:
        durables: ``(stream, durable)`` of every role: none may be in use.

    Raises:
        TopologyError: a worker is consuming one of ``durables``.
    """
    streams = await needs_migration(js, topology)
    if not streams:
        return []
    await _refuse_while_consumed(js, durables)
    reports = []
    moved: dict[int, int] = {}
    for name in (topology.tasks_stream, topology.validation_stream, topology.failures_stream):
        if name in streams:
            reports.append(await _migrate(js, topology, name, moved))
    return reports


async def _refuse_while_consumed(js: JetStreamContext, durables: Sequence[tuple[str, str]]) -> None:
    # A worker of the old version publishes to the per-kind subjects, which
    # keep one message each once the stream becomes a slot stream: its
    # results would be lost. A durable is in use while a pull request waits
    # on it, or while it delivered within its ack wait and has unacknowledged
    # messages. Unacknowledged messages alone are not enough: a message out of
    # deliveries (a dead letter) stays unacknowledged for good.
    busy = []
    now = datetime.datetime.now(datetime.UTC)
    for stream, durable in durables:
        try:
            info = await js.consumer_info(stream, durable)
        except nats.js.errors.NotFoundError:
            continue
        last = info.delivered.last_active if info.delivered else None
        ack_wait = info.config.ack_wait or 30.0
        recent = last is not None and (now - last).total_seconds() < ack_wait
        if info.num_waiting or (info.num_ack_pending and recent):
            busy.append(
                f"{stream}/{durable} ({info.num_waiting} pull requests, "
                f"{info.num_ack_pending} unacknowledged)"
            )
    if busy:
        raise TopologyError(
            "the streams hold the old per-kind layout and must be migrated to slots, but "
            f"workers are consuming: {', '.join(busy)}. Stop the workers (scale them to 0), "
            "run `gitstore-agents provision` again, then start the new version",
            retryable=False,
        )


async def _migrate(
    js: JetStreamContext, topology: Topology, name: str, moved: dict[int, int]
) -> MigrationReport:
    report = MigrationReport(stream=name)
    old_subjects: set[str] = set()
    sub = await js.subscribe(
        f"{topology.prefix}.>", stream=name, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
    )
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=_READ_TIMEOUT_S)
            except TimeoutError:
                break
            meta = msg.metadata
            seq = meta.sequence.stream
            target, data = _slot(topology, name, msg, moved)
            if target is not None:
                old_subjects.add(msg.subject)
                headers = {
                    k: v
                    for k, v in (msg.headers or {}).items()
                    if not k.lower().startswith("nats-")
                }
                headers["Nats-Msg-Id"] = f"migrate:{name}:{seq}"
                headers[MIGRATED_FROM] = f"{name}:{seq}"
                try:
                    ack = await js.publish(target, data, headers=headers)
                except nats.js.errors.APIError as exc:
                    if not slot_taken(exc.err_code, exc.description):
                        raise
                    report.already += 1
                else:
                    report.copied += 1
                    if name == topology.tasks_stream:
                        moved[seq] = ack.seq
            if meta.num_pending == 0:
                break
    finally:
        await sub.unsubscribe()
    report.old_subjects = sorted(old_subjects)
    log.info("migrated to slots", stream=name, copied=report.copied, already=report.already)
    return report


def _slot(
    topology: Topology, stream: str, msg: Msg, moved: dict[int, int]
) -> tuple[str | None, bytes]:
    """The slot an old-layout message belongs in (None: it is in one already), and its bytes."""
    subject, data, seq = msg.subject, msg.data, msg.metadata.sequence.stream
    tokens = subject.split(".")
    if _SLOT.match(tokens[-1]) or (len(tokens) > 1 and tokens[-2] == REQUEUED_TOKEN):
        return None, data
    fallback = f"{stream}-{seq}"
    if tokens[-1] == REQUEUED_TOKEN:
        letter = _decode(data, _Identified)
        return f"{subject}.{_token(letter.id if letter else None) or fallback}", data
    prefix = f"{topology.prefix}.dlq."
    if subject.startswith(prefix):
        return _dead_letter(subject, data, topology, moved, fallback)
    keyed = _decode(data, _Keyed)
    key = keyed.idempotency_key if keyed is not None else None
    token = (
        key.removeprefix("sha256:") if key and _SLOT.match(key.removeprefix("sha256:")) else None
    )
    return f"{subject}.{token or fallback}", data


def _dead_letter(
    subject: str, data: bytes, topology: Topology, moved: dict[int, int], fallback: str
) -> tuple[str, bytes]:
    try:
        letter = msgspec.json.decode(data, type=DeadLetter)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return f"{subject}.{fallback}", data
    if letter.stream == topology.tasks_stream and letter.stream_seq in moved:
        # The original moved into its slot: the letter follows it, so a requeue finds it.
        letter = msgspec.structs.replace(letter, stream_seq=moved[letter.stream_seq])
        data = msgspec.json.encode(letter, order="sorted")
    return f"{subject}.{_token(letter.id) or fallback}", data


_S = TypeVar("_S", bound=msgspec.Struct)


def _decode(data: bytes, type_: type[_S]) -> _S | None:
    try:
        return msgspec.json.decode(data, type=type_)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None


def _token(value: str | None) -> str | None:
    if value and re.fullmatch(r"[A-Za-z0-9_-]{1,128}", value):
        return value
    return None
