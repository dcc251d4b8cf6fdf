"""What a handler decides about one message: what to publish, how to settle it."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable

import msgspec
from nats.aio.msg import Msg

from ..guardrails import Outbound


class Settle(enum.StrEnum):
    """JetStream's ways to settle a delivered message."""

    ACK = "ack"
    TERM = "term"
    NAK = "nak"


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """A handler's verdict on one message.

    The worker publishes ``outbound`` first and settles the message only after
    every PubAck arrived; a failed publish turns any settle into a ``nak``.

    Attributes:
        settle: How to settle the input once ``outbound`` is stored.
        outbound: Messages to publish (through the role's publish boundary).
        nak_delay_s: Redelivery delay when ``settle`` is ``nak``.
        reason: Why, for logs (codes and digests, never payloads).
    """

    settle: Settle
    outbound: tuple[Outbound, ...] = ()
    nak_delay_s: float | None = None
    reason: str = ""


Handler = Callable[[Msg], Awaitable[Decision]]
