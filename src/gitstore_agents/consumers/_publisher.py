"""Publish through the role's boundary and wait, bounded, for every PubAck.

Each batch is one ``send`` span; its trace context goes into every message
that does not carry one yet, so whoever consumes a task, a validation request
or a diagnostic continues the trace it came from.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import msgspec
import nats.js.errors
from nats.js.api import PubAck

from ..envelopes import headers as hdr
from ..guardrails import Outbound, PublishBoundary, PublishDeniedError, PublishRefusedError
from ..telemetry import coalesce_audit, inject, send_span
from ._errors import PublishFailedError

# Pauses before re-sending a publish nobody answered (503 "no responders"):
# the stream has no leader for a moment (an election in a cluster, a node
# that is still catching up). Doubling from the first, capped at the last.
_NO_RESPONDERS_PAUSE_S = (0.05, 0.5)


async def publish_confirmed(
    boundary: PublishBoundary,
    messages: Sequence[Outbound],
    *,
    timeout_s: float,
    span: bool = True,
) -> list[PubAck]:
    """Publish ``messages`` asynchronously, then wait once for all their PubAcks.

    nats-py's PubAck futures never time out on their own (a PubAck lost in a
    disconnect would wait forever), so the wait is bounded and a missing PubAck
    is a failed publish: the caller must not settle its input as done.

    Args:
        boundary: The role's publish boundary.
        messages: What to publish.
        timeout_s: Bound on waiting for the PubAcks.
        span: Publish inside a ``send`` span (False for audit records alone:
            they carry their decision's span ids, and the current context is
            still injected).

    A publish that no stream answered (JetStream's 503 "no responders": the
    stream is between leaders, or the node is catching up) was not stored, so
    it is sent again, with the same ``Nats-Msg-Id``, until ``timeout_s`` runs
    out: a leader election costs a short wait, not one of the input's deliveries.

    Returns:
        The PubAcks, in the order of ``messages`` as sent: consecutive audit
        records are sent as one message (``coalesce_audit``), so they share one.

    Raises:
        PublishRefusedError: a subject is outside the role's boundary (permanent).
        PublishDeniedError: the NATS server refused a subject (a permissions
            violation; permanent for this delivery).
        PublishFailedError: a publish failed or was not confirmed within ``timeout_s``.
    """
    if not messages:
        return []
    messages = coalesce_audit(messages)
    if not span:
        return await _publish(boundary, _traced(messages), timeout_s)
    # A failure propagating out of the span is recorded on it (error status).
    with send_span([m.subject for m in messages], [m.headers.get(hdr.MSG_ID) for m in messages]):
        return await _publish(boundary, _traced(messages), timeout_s)


def _traced(messages: Sequence[Outbound]) -> list[Outbound]:
    carrier = inject({})
    if not carrier:
        return list(messages)
    return [
        m
        if hdr.get_header(m.headers, hdr.TRACEPARENT)
        else msgspec.structs.replace(m, headers={**m.headers, **carrier})
        for m in messages
    ]


async def _publish(
    boundary: PublishBoundary, messages: Sequence[Outbound], timeout_s: float
) -> list[PubAck]:
    since = boundary.clock()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    acks: list[PubAck | None] = [None] * len(messages)
    waiting = list(range(len(messages)))
    pause = _NO_RESPONDERS_PAUSE_S[0]
    while True:
        futures = await _send(boundary, [messages[i] for i in waiting])
        _, late = await asyncio.wait(futures, timeout=max(deadline - loop.time(), 0.0))
        if late:
            # Cancelling releases nats-py's pending-publish slot for each future.
            _cancel(late)
            _retrieve(futures)
            # A refused publish gets no PubAck, only an asynchronous error: tell it
            # apart from a slow server, or it would be retried as a timeout forever.
            missing = [
                messages[i].subject for i, f in zip(waiting, futures, strict=True) if f in late
            ]
            denied = boundary.refused_by_server(missing, since)
            if denied:
                raise PublishDeniedError(
                    f"the NATS server refused publishing to {denied} (permissions violation): "
                    "its permissions for this role do not match the policy (policy nats-config)"
                )
            raise PublishFailedError(
                f"{len(late)} of {len(messages)} PubAcks missing after "
                f"publish_timeout_s={timeout_s:g}"
            )
        unanswered = []
        for index, future in zip(waiting, futures, strict=True):
            error = future.exception()
            if error is None:
                acks[index] = future.result()
            elif isinstance(error, nats.js.errors.NoStreamResponseError):
                unanswered.append(index)
            else:
                _retrieve(futures)
                raise PublishFailedError(
                    f"publish to {messages[index].subject} rejected: {error!r}"
                )
        if not unanswered:
            return [ack for ack in acks if ack is not None]
        if loop.time() + pause > deadline:
            raise PublishFailedError(
                f"publish to {messages[unanswered[0]].subject}: no stream answered "
                f"({len(unanswered)} of {len(messages)} messages) within "
                f"publish_timeout_s={timeout_s:g}"
            )
        await asyncio.sleep(pause)
        pause = min(pause * 2, _NO_RESPONDERS_PAUSE_S[1])
        waiting = unanswered


async def _send(
    boundary: PublishBoundary, messages: Sequence[Outbound]
) -> list[asyncio.Future[PubAck]]:
    futures: list[asyncio.Future[PubAck]] = []
    try:
        for message in messages:
            futures.append(await boundary.publish_async(message))
    except PublishRefusedError:
        _cancel(futures)
        raise
    except Exception as exc:
        _cancel(futures)
        raise PublishFailedError(f"publish to {message.subject} failed: {exc!r}") from None
    return futures


def _retrieve(futures: Sequence[asyncio.Future[PubAck]]) -> None:
    # Mark every failure as seen, so asyncio does not log "exception was never retrieved".
    for future in futures:
        if future.done() and not future.cancelled():
            future.exception()


def _cancel(futures: Sequence[asyncio.Future[PubAck]] | set[asyncio.Future[PubAck]]) -> None:
    for future in futures:
        future.cancel()
