"""The publish boundary: the only way out of a worker.

Task code never holds a JetStream context; it returns ``Outbound`` messages and
the worker hands them to a ``PublishBoundary``, which refuses any subject the
role is not allowed to reach. The NATS server enforces the same list
(``nats_permissions``), and when it refuses a publish the boundary can tell
(``refused_by_server``), so the pipeline reports ``publish-permission-denied``
instead of retrying a timeout forever.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

import msgspec
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import PubAck

from ..errors import GitStoreAgentsError
from ._subject_match import subject_matches
from ._violations import PermissionViolations


class Outbound(msgspec.Struct, frozen=True, kw_only=True):
    """A message a handler wants published; nothing is sent until the boundary allows it."""

    subject: str
    payload: bytes
    headers: dict[str, str] = msgspec.field(default_factory=dict)


class PublishRefusedError(GitStoreAgentsError):
    """A handler asked to publish on a subject its role may not reach."""

    code = "publish-refused"
    retryable = False


class PublishDeniedError(PublishRefusedError):
    """The NATS server refused a publish (a permissions violation): the deployment's
    server permissions do not grant this role the subject."""

    code = "publish-permission-denied"
    retryable = False


class PublishBoundary:
    """Publishes ``Outbound`` messages whose subject matches an allowed pattern.

    Args:
        js: The JetStream context (held here, never by task code).
        allowed: Subject patterns (NATS wildcards) this role may publish to.
        violations: The connection's permission violations (from its error
            callback), to recognise publishes the server refused.
    """

    def __init__(
        self,
        js: JetStreamContext,
        allowed: Iterable[str],
        *,
        violations: PermissionViolations | None = None,
    ) -> None:
        self._js = js
        self.allowed = tuple(allowed)
        self._violations = violations
        self._matchers = [_matcher(p) for p in self.allowed]

    @property
    def connection(self) -> Client:
        """The connection under the JetStream context."""
        nc: Client = self._js._nc
        return nc

    def check(self, subject: str) -> None:
        """Raise ``PublishRefusedError`` unless ``subject`` is allowed."""
        if not any(match(subject) for match in self._matchers):
            raise PublishRefusedError(
                f"subject {subject!r} is outside this role's allowed subjects {list(self.allowed)}"
            )

    async def send(self, message: Outbound, reply: str) -> None:
        """Send ``message`` (its PubAck comes to ``reply``), if its subject is allowed."""
        self.check(message.subject)
        await self.connection.publish(
            message.subject, message.payload, reply=reply, headers=message.headers or None
        )

    async def publish_async(self, message: Outbound) -> asyncio.Future[PubAck]:
        """Send ``message`` and return a future for its PubAck (nats-py's own bookkeeping)."""
        self.check(message.subject)
        return await self._js.publish_async(
            message.subject, message.payload, headers=dict(message.headers) or None
        )

    @staticmethod
    def clock() -> float:
        """The clock ``refused_by_server`` compares with (monotonic seconds)."""
        return time.monotonic()

    def refused_by_server(self, subjects: Iterable[str], since: float) -> list[str]:
        """Which of ``subjects`` the server refused (permissions violation) since ``since``."""
        if self._violations is None:
            return []
        return self._violations.refused(subjects, since)


def _matcher(pattern: str) -> Callable[[str], bool]:
    """A fast test for one pattern: a literal, ``<prefix>.*`` (one more token) or general."""
    if "*" not in pattern and ">" not in pattern:
        return pattern.__eq__
    if pattern.endswith(".*") and "*" not in pattern[:-2] and ">" not in pattern:
        prefix = pattern[:-1]

        def one_more_token(subject: str) -> bool:
            return (
                subject.startswith(prefix)
                and "." not in subject[len(prefix) :]
                and (len(subject) > len(prefix))
            )

        return one_more_token
    return lambda subject: subject_matches(pattern, subject)
