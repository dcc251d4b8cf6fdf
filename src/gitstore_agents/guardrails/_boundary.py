"""The publish boundary: the only way out of a worker.

Task code never holds a JetStream context; it returns ``Outbound`` messages and
the worker hands them to a ``PublishBoundary``, which refuses any subject the
role is not allowed to reach.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import msgspec
from nats.js import JetStreamContext
from nats.js.api import PubAck

from ..errors import GitStoreAgentsError
from ._subject_match import subject_matches


class Outbound(msgspec.Struct, frozen=True, kw_only=True):
    """A message a handler wants published; nothing is sent until the boundary allows it."""

    subject: str
    payload: bytes
    headers: dict[str, str] = msgspec.field(default_factory=dict)


class PublishRefusedError(GitStoreAgentsError):
    """A handler asked to publish on a subject its role may not reach."""

    code = "publish-refused"
    retryable = False


class PublishBoundary:
    """Publishes ``Outbound`` messages whose subject matches an allowed pattern.

    Args:
        js: The JetStream context (held here, never by task code).
        allowed: Subject patterns (NATS wildcards) this role may publish to.
    """

    def __init__(self, js: JetStreamContext, allowed: Iterable[str]) -> None:
        self._js = js
        self.allowed = tuple(allowed)

    def check(self, subject: str) -> None:
        """Raise ``PublishRefusedError`` unless ``subject`` is allowed."""
        if not any(subject_matches(p, subject) for p in self.allowed):
            raise PublishRefusedError(
                f"subject {subject!r} is outside this role's allowed subjects {list(self.allowed)}"
            )

    async def publish_async(self, message: Outbound) -> asyncio.Future[PubAck]:
        """Send ``message`` and return a future for its PubAck."""
        self.check(message.subject)
        return await self._js.publish_async(
            message.subject, message.payload, headers=dict(message.headers) or None
        )
