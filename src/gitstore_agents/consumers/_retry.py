"""Retry timing: the role's backoff schedule, and what to send in a NAK to get it.

JetStream times redeliveries in two ways. After an ack-wait expiry (a crash),
the n-th redelivery waits ``consumer.backoff[n-1]``. After a NAK with a delay,
a consumer that has a backoff waits ``delay + backoff[dc] - backoff[0]`` (``dc``
= deliveries so far minus one, capped at the last entry), because the server
backdates the pending entry by ``ack_wait`` (= ``backoff[0]``) but measures it
against ``backoff[dc]`` (``server/consumer.go``, measured on nats-server 2.15).
A plain NAK without a delay is redelivered at once either way.
"""

from __future__ import annotations

from collections.abc import Sequence

# A NAK with a zero delay is a plain NAK (immediate); when the consumer's own
# backoff already covers the wanted delay we still want "not immediate".
_MIN_DELAY_S = 0.001


def retry_delay_s(backoff_s: Sequence[float], attempt: int) -> float:
    """Delay before retrying after delivery ``attempt`` (1-based) failed; the last entry repeats."""
    if not backoff_s:
        return 0.0
    return float(backoff_s[min(max(attempt, 1), len(backoff_s)) - 1])


def nak_delay_for(
    wanted_s: float, consumer_backoff_s: Sequence[float], num_delivered: int
) -> float:
    """The delay to put in a NAK so JetStream redelivers after ``wanted_s``.

    Args:
        wanted_s: Delay the role's policy asks for (0 = redeliver at once).
        consumer_backoff_s: The consumer's ``backoff`` (empty when it has none).
        num_delivered: The delivery being nak'd (1-based).

    Returns:
        Seconds to send; 0 means a plain NAK.
    """
    if wanted_s <= 0:
        return 0.0
    if not consumer_backoff_s:
        return wanted_s
    dc = min(max(num_delivered - 1, 0), len(consumer_backoff_s) - 1)
    added_by_server = consumer_backoff_s[dc] - consumer_backoff_s[0]
    return max(wanted_s - added_by_server, _MIN_DELAY_S)
