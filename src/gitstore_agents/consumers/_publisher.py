"""Publish through the role's boundary and wait, bounded, for every PubAck."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from nats.js.api import PubAck

from ..guardrails import Outbound, PublishBoundary, PublishDeniedError, PublishRefusedError
from ._errors import PublishFailedError


async def publish_confirmed(
    boundary: PublishBoundary, messages: Sequence[Outbound], *, timeout_s: float
) -> list[PubAck]:
    """Publish ``messages`` asynchronously, then wait once for all their PubAcks.

    nats-py's PubAck futures never time out on their own (a PubAck lost in a
    disconnect would wait forever), so the wait is bounded and a missing PubAck
    is a failed publish: the caller must not settle its input as done.

    Returns:
        The PubAcks, in the order of ``messages``.

    Raises:
        PublishRefusedError: a subject is outside the role's boundary (permanent).
        PublishDeniedError: the NATS server refused a subject (a permissions
            violation; permanent for this delivery).
        PublishFailedError: a publish failed or was not confirmed within ``timeout_s``.
    """
    if not messages:
        return []
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
