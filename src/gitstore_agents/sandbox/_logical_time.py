"""A task's logical time, as the nanoseconds the guest's clock reads."""

from __future__ import annotations

from datetime import UTC, datetime

from ._errors import SandboxError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def logical_time_ns(value: str) -> int:
    """Nanoseconds since the Unix epoch of an ISO 8601 timestamp (``...Z`` or offset).

    A timestamp without an offset is taken as UTC, so the result never
    depends on the worker's time zone.

    Raises:
        SandboxError: ``value`` is not an ISO 8601 timestamp.
    """
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise SandboxError(f"logical_time={value!r} is not an ISO 8601 timestamp") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
