"""What a handler decides about one delivery: how the worker settles it."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable

import msgspec

from ._delivery import Delivery


class Settle(enum.StrEnum):
    """JetStream's ways to settle a delivered message."""

    ACK = "ack"
    TERM = "term"
    NAK = "nak"


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """A handler's verdict on one delivery.

    A handler returns only after everything the message produced (results,
    follow-up tasks, diagnostics) has a PubAck; the worker then settles.

    Attributes:
        settle: ``ack`` (done), ``term`` (permanent failure, diagnostic stored)
            or ``nak`` (retry).
        nak_delay_s: For ``nak``: the redelivery delay the handler wants; the
            worker translates it for the consumer's backoff (0 = at once).
        code: Stable code of the outcome (``ok``, an error or outcome code).
        reason: Why, for logs (codes and digests, never payloads).
    """

    settle: Settle
    nak_delay_s: float = 0.0
    code: str = "ok"
    reason: str = ""


Handler = Callable[[Delivery], Awaitable[Decision]]
"""Decides (and publishes) for one delivery; the worker settles by the result."""
