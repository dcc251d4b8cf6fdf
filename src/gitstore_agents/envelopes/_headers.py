"""NATS header names this package reads and writes."""

from __future__ import annotations

from collections.abc import Mapping

MSG_ID = "Nats-Msg-Id"
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
REQUEST_ID = "X-Request-ID"
CONTENT_TYPE = "Content-Type"
SCHEMA_VERSION = "GitStore-Schema-Version"

JSON = "application/json"


def get_header(headers: Mapping[str, str] | None, name: str) -> str | None:
    """Case-insensitive header lookup (nats-py headers are a plain dict)."""
    if not headers:
        return None
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, candidate in headers.items():
        if key.lower() == lowered:
            return candidate
    return None
