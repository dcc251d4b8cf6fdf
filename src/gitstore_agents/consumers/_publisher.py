"""Publish through a role's boundary and wait, bounded, for what the server says.

A publish ends in one of three ways, and the pipeline needs to tell them apart:

* **stored** — a PubAck with a stream sequence;
* **already stored** — the subject is a slot that holds a message already (the
  server refuses the second one with ``err_code`` 10077, "maximum messages per
  subject exceeded"), or the ``Nats-Msg-Id`` was seen inside the duplicate
  window (a PubAck marked ``duplicate``). Either way the work was done before:
  the input can be settled;
* **failed** — no PubAck within ``timeout_s``, a server refusal (a
  permissions violation), a payload over the server's limit, or another API
  error.

The slot refusal is a 503 API error answer (``err_code`` 10077); the 503
"no responders" of a stream that is between leaders is an empty reply with a
``Status: 503`` header, and is sent again until ``timeout_s``: an election
costs a short wait, not one of the input's deliveries. (nats-py raises both
as 503s, one as ``ServiceUnavailableError``, one as ``NoStreamResponseError``;
the publisher reads the answers itself, one subscription for all of them.)

Each confirmed batch is one ``send`` span; its trace context goes into every
message that does not carry one yet, so whoever consumes a task, a validation
request or a diagnostic continues the trace it came from. Every batch's
duration is recorded (``messaging.client.operation.duration``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any, Protocol

import msgspec
import nats.errors
from nats.aio.msg import Msg

from ..envelopes import headers as hdr
from ..errors import GitStoreAgentsError
from ..guardrails import Outbound, PublishBoundary, PublishDeniedError, PublishRefusedError
from ..telemetry import INSTRUMENTS, error_type, inject, send_span
from ._errors import PublishFailedError

SLOT_TAKEN = 10077
"""JetStream's ``err_code`` for "maximum messages per subject exceeded".

The server uses the same code for every refused store (a full stream too:
"maximum messages exceeded", "maximum bytes exceeded"), so ``slot_taken``
also reads the description: only the per-subject limit means "stored before".
"""


def slot_taken(err_code: int | None, description: str | None) -> bool:
    """Whether a refused publish means the subject's one message is already stored."""
    return err_code == SLOT_TAKEN and "per subject" in (description or "").lower()


# Pauses before re-sending a publish nobody answered (503 "no responders"):
# the stream has no leader for a moment (an election in a cluster, a node
# that is still catching up). Doubling from the first, capped at the last.
_NO_RESPONDERS_PAUSE_S = (0.05, 0.5)


class PayloadTooLargeError(GitStoreAgentsError):
    """A message is larger than the NATS server accepts (its ``max_payload``)."""

    code = "payload-too-large"
    retryable = False


# ``NATS/1.0\r\n`` before the headers and the blank line after them.
_HEADER_FRAME = len(b"NATS/1.0\r\n") + 2


def wire_size(message: Outbound) -> int:
    """Bytes ``message`` counts against the server's ``max_payload``: headers and payload.

    nats-py compares only the payload with ``max_payload``; the server counts
    both, and answers a message over the limit by closing the connection.
    """
    headers = message.headers
    size = len(message.payload)
    if headers:
        size += _HEADER_FRAME + sum(len(k) + len(v) + 4 for k, v in headers.items())
    return size


class Published(msgspec.Struct, frozen=True, kw_only=True):
    """What became of one published message.

    Attributes:
        subject: Where it was published.
        stream: Stream that stored it (None when the slot was taken).
        seq: Its stream sequence (None when the slot was taken).
        duplicate: The server had seen its ``Nats-Msg-Id`` inside the duplicate window.
        occupied: The subject is a slot that already holds a message.
    """

    subject: str
    stream: str | None = None
    seq: int | None = None
    duplicate: bool = False
    occupied: bool = False

    @property
    def stored_before(self) -> bool:
        """True when this message (or the one result its slot allows) was stored earlier."""
        return self.duplicate or self.occupied


class Publisher(Protocol):
    """How the pipeline publishes: confirmed, and told which slots were already taken."""

    @property
    def max_payload(self) -> int:
        """The largest message (headers and payload) the server accepts."""
        ...

    async def publish(self, messages: Sequence[Outbound], *, span: bool = True) -> list[Published]:
        """Publish ``messages``; one ``Published`` each, in order.

        Raises:
            PublishRefusedError: a subject is outside the role's boundary, or the
                server refused it (``PublishDeniedError``).
            PayloadTooLargeError: a message is over the server's payload limit.
            PublishFailedError: not confirmed within the publish timeout.
        """
        ...


class _Answer(msgspec.Struct):
    """A PubAck, or the error JetStream answered instead."""

    stream: str = ""
    seq: int = 0
    duplicate: bool = False
    error: _ApiError | None = None


class _ApiError(msgspec.Struct):
    code: int = 0
    err_code: int = 0
    description: str = ""


_ANSWER = msgspec.json.Decoder(_Answer)
_NO_RESPONDERS = object()


class _Acks:
    """One inbox subscription for every PubAck a publisher waits for.

    nats-py's ``publish_async`` draws random bytes from the OS and takes a
    semaphore for every message; a counter and one dict are enough when the
    caller bounds how much is in flight (the worker's concurrency does).
    """

    def __init__(self, boundary: PublishBoundary) -> None:
        self._boundary = boundary
        self._prefix = ""
        self._pending: dict[str, asyncio.Future[Any]] = {}
        self._next = 0
        self._started: asyncio.Future[None] | None = None

    async def expect(self) -> tuple[str, asyncio.Future[Any]]:
        """A fresh reply subject and the future its answer will complete."""
        if self._started is None:
            self._started = asyncio.ensure_future(self._start())
        if not self._started.done():
            await asyncio.shield(self._started)
        self._next += 1
        reply = f"{self._prefix}{self._next}"
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[reply] = future
        return reply, future

    def forget(self, reply: str) -> None:
        """Stop waiting for ``reply`` (timed out or never sent)."""
        self._pending.pop(reply, None)

    async def _start(self) -> None:
        nc = self._boundary.connection
        inbox = nc.new_inbox()
        self._prefix = f"{inbox}."
        await nc.subscribe(f"{inbox}.*", cb=self._on_answer)

    async def _on_answer(self, msg: Msg) -> None:
        future = self._pending.pop(msg.subject, None)
        if future is None or future.done():
            return
        if not msg.data and msg.headers and msg.headers.get("Status") == "503":
            future.set_result(_NO_RESPONDERS)
        else:
            future.set_result(msg.data)


class JetStreamPublisher:
    """Publishes through a role's ``PublishBoundary`` and waits for the server.

    Args:
        boundary: The role's publish boundary (the only way out).
        timeout_s: Bound on waiting for PubAcks (nats-py's futures have none).
    """

    def __init__(self, boundary: PublishBoundary, *, timeout_s: float) -> None:
        self.boundary = boundary
        self.timeout_s = timeout_s
        self._acks = _Acks(boundary)

    @property
    def max_payload(self) -> int:
        """The largest message (headers and payload) the connected server accepts."""
        return int(self.boundary.connection.max_payload)

    async def publish(self, messages: Sequence[Outbound], *, span: bool = True) -> list[Published]:
        """Publish ``messages`` asynchronously, then wait once for all their answers.

        The current trace context goes into the headers of every message that
        does not carry one yet (each message's header dict is completed in place).
        """
        if not messages:
            return []
        started = time.perf_counter()
        try:
            if not span:
                _trace(messages)
                published = await self._publish(messages)
            else:
                # A failure propagating out of the span is recorded on it (error status).
                ids = [m.headers.get(hdr.MSG_ID) for m in messages]
                with send_span([m.subject for m in messages], ids, self.boundary.connection):
                    _trace(messages)
                    published = await self._publish(messages)
        except Exception as exc:
            INSTRUMENTS.send_duration.record(time.perf_counter() - started, error_type(exc))
            raise
        INSTRUMENTS.send_duration.record(time.perf_counter() - started, "")
        return published

    async def _publish(self, messages: Sequence[Outbound]) -> list[Published]:
        limit = self.max_payload
        for message in messages:
            size = wire_size(message)
            if size > limit:
                # Checked before anything of the batch is sent: all or nothing.
                raise PayloadTooLargeError(
                    f"publish to {message.subject}: the message is {size} bytes (payload "
                    f"{len(message.payload)}), over the NATS server's max_payload={limit}"
                )
        boundary = self.boundary
        since = boundary.clock()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        results: list[Published | None] = [None] * len(messages)
        waiting = list(range(len(messages)))
        pause = _NO_RESPONDERS_PAUSE_S[0]
        while True:
            sent = await self._send([messages[i] for i in waiting])
            late = await _await_all([f for _, f in sent], deadline - loop.time())
            for reply, _ in sent:
                self._acks.forget(reply)
            if late:
                # A refused publish gets no PubAck, only an asynchronous error: tell it
                # apart from a slow server, or it would be retried as a timeout forever.
                missing = [
                    messages[i].subject
                    for i, (_, f) in zip(waiting, sent, strict=True)
                    if f in late
                ]
                denied = boundary.refused_by_server(missing, since)
                if denied:
                    raise PublishDeniedError(
                        f"the NATS server refused publishing to {denied} (permissions "
                        "violation): its permissions for this role do not match the policy "
                        "(policy nats-config)"
                    )
                raise PublishFailedError(
                    f"{len(late)} of {len(messages)} PubAcks missing after "
                    f"publish_timeout_s={self.timeout_s:g}"
                )
            unanswered = []
            for index, (_, future) in zip(waiting, sent, strict=True):
                answer = future.result()
                subject = messages[index].subject
                if answer is _NO_RESPONDERS:
                    unanswered.append(index)
                    continue
                results[index] = _published(subject, answer)
            if not unanswered:
                return [r for r in results if r is not None]
            if loop.time() + pause > deadline:
                raise PublishFailedError(
                    f"publish to {messages[unanswered[0]].subject}: no stream answered "
                    f"({len(unanswered)} of {len(messages)} messages) within "
                    f"publish_timeout_s={self.timeout_s:g}"
                )
            await asyncio.sleep(pause)
            pause = min(pause * 2, _NO_RESPONDERS_PAUSE_S[1])
            waiting = unanswered

    async def _send(self, messages: Sequence[Outbound]) -> list[tuple[str, asyncio.Future[Any]]]:
        sent: list[tuple[str, asyncio.Future[Any]]] = []
        message = messages[0]
        try:
            for message in messages:
                reply, future = await self._acks.expect()
                sent.append((reply, future))
                await self.boundary.send(message, reply)
        except BaseException as exc:
            for reply, future in sent:
                self._acks.forget(reply)
                future.cancel()
            if isinstance(exc, PublishRefusedError):
                raise
            if isinstance(exc, nats.errors.MaxPayloadError):
                raise PayloadTooLargeError(
                    f"publish to {message.subject}: {len(message.payload)} bytes: {exc}"
                ) from None
            if isinstance(exc, Exception):
                raise PublishFailedError(f"publish to {message.subject} failed: {exc!r}") from None
            raise
        return sent


def _published(subject: str, answer: bytes) -> Published:
    """What one answer says about one message."""
    try:
        ack = _ANSWER.decode(answer)
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise PublishFailedError(
            f"publish to {subject}: unreadable answer {answer[:200]!r}"
        ) from None
    if ack.error is None:
        return Published(subject=subject, stream=ack.stream, seq=ack.seq, duplicate=ack.duplicate)
    if slot_taken(ack.error.err_code, ack.error.description):
        return Published(subject=subject, occupied=True)
    raise PublishFailedError(
        f"publish to {subject} rejected: {ack.error.description} (code {ack.error.code}, "
        f"err_code {ack.error.err_code})"
    )


async def _await_all(
    futures: Sequence[asyncio.Future[Any]], timeout_s: float
) -> set[asyncio.Future[Any]]:
    """Wait for ``futures`` for at most ``timeout_s``; the ones that never completed.

    One timer for the whole batch, no ``asyncio.wait`` machinery per call:
    this runs once per result on the hot path.
    """
    pending = [f for f in futures if not f.done()]
    if not pending:
        return set()
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        for future in pending:
            future.cancel()

    timer = asyncio.get_running_loop().call_later(max(timeout_s, 0.0), expire)
    try:
        for future in pending:
            try:
                await future
            except asyncio.CancelledError:
                if not expired:
                    raise  # this task was cancelled, not the wait
                break
    finally:
        timer.cancel()
    return {f for f in pending if f.cancelled()}


def _trace(messages: Sequence[Outbound]) -> None:
    """Put the current trace context into each message that carries none."""
    carrier = inject({})
    if not carrier:
        return
    for message in messages:
        if hdr.TRACEPARENT not in message.headers:
            message.headers.update(carrier)
