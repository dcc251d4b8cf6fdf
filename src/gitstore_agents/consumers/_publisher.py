"""Publish through the role's boundary and wait, bounded, for every PubAck.

Each batch is one ``send`` span; its trace context goes into every message
that does not carry one yet, so whoever consumes a task, a validation request
or a diagnostic continues the trace it came from.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import msgspec
from nats.js.api import PubAck

from ..envelopes import headers as hdr
from ..guardrails import Outbound, PublishBoundary, PublishDeniedError, PublishRefusedError
from ..telemetry import coalesce_audit, inject, send_span
from ._errors import PublishFailedError


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
    _, late = await asyncio.wait(futures, timeout=timeout_s)
    if late:
        # Cancelling releases nats-py's pending-publish slot for each future.
        _cancel(late)
        # A refused publish gets no PubAck, only an asynchronous error: tell it
        # apart from a slow server, or it would be retried as a timeout forever.
        missing = [m.subject for m, f in zip(messages, futures, strict=True) if f in late]
        denied = boundary.refused_by_server(missing, since)
        if denied:
            raise PublishDeniedError(
                f"the NATS server refused publishing to {denied} (permissions violation): "
                "its permissions for this role do not match the policy (policy nats-config)"
            )
        raise PublishFailedError(
            f"{len(late)} of {len(futures)} PubAcks missing after publish_timeout_s={timeout_s:g}"
        )
    for message, future in zip(messages, futures, strict=True):
        error = future.exception()
        if error is not None:
            raise PublishFailedError(f"publish to {message.subject} rejected: {error!r}")
    return [future.result() for future in futures]


def _cancel(futures: Sequence[asyncio.Future[PubAck]] | set[asyncio.Future[PubAck]]) -> None:
    for future in futures:
        future.cancel()
