"""NATS headers: the one place envelope fields become headers and headers become fields.

| header | value |
|---|---|
| ``Nats-Msg-Id`` | a git event's ``event_id``; a task's or result's ``idempotency_key`` |
| ``traceparent`` / ``tracestate`` | W3C trace context, passed along unchanged |
| ``X-Request-ID`` | the API request that caused the push (``GitEvent.request_id``) |
| ``Content-Type`` | ``application/json`` |
| ``GitStore-Schema-Version`` | the envelope's ``schema_version`` |

nats-py hands headers over as a plain dict with the sender's spelling, so
reading is case-insensitive. Writing refuses values a header cannot carry
(CR, LF, non-ASCII): a request id copied from a payload must not inject headers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import msgspec

from ..errors import GitStoreAgentsError
from ._codec import EnvelopeError, check_schema_version
from ._git_event import GitEvent
from ._task import TaskRequest, ValidationRequest

MSG_ID = "Nats-Msg-Id"
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
REQUEST_ID = "X-Request-ID"
CONTENT_TYPE = "Content-Type"
SCHEMA_VERSION = "GitStore-Schema-Version"

JSON = "application/json"

# W3C Trace Context: version-traceid-parentid-flags; later versions may append
# fields after a '-', and version ff is invalid.
_TRACEPARENT = re.compile(
    r"(?P<version>[0-9a-f]{2})-(?P<trace_id>[0-9a-f]{32})-(?P<span_id>[0-9a-f]{16})"
    r"-(?P<flags>[0-9a-f]{2})(?P<rest>-.*)?"
)
_HEADER_VALUE = re.compile(r"[!-~]([ -~]*[!-~])?")
MAX_HEADER_VALUE = 4096


class HeaderError(GitStoreAgentsError):
    """A header value cannot be written (control characters, non-ASCII, too long)."""

    code = "header-invalid"
    retryable = False


class TraceContext(msgspec.Struct, frozen=True, kw_only=True):
    """A validated W3C trace context, as carried in ``traceparent``/``tracestate``.

    Attributes:
        traceparent: ``00-<trace id>-<parent span id>-<flags>``.
        tracestate: Vendor entries, passed along unchanged.
    """

    traceparent: str
    tracestate: str | None = None

    @property
    def trace_id(self) -> str:
        """The 32-hex trace id."""
        return self.traceparent.split("-")[1]

    @property
    def span_id(self) -> str:
        """The 16-hex id of the sender's span (our parent)."""
        return self.traceparent.split("-")[2]


class MessageHeaders(msgspec.Struct, frozen=True, kw_only=True):
    """The headers this package knows, read from one message.

    Attributes:
        msg_id: ``Nats-Msg-Id``.
        trace: The trace context, or None when absent or malformed (W3C says:
            start a new trace rather than fail).
        request_id: ``X-Request-ID``.
        content_type: ``Content-Type``.
        schema_version: ``GitStore-Schema-Version``.
    """

    msg_id: str | None = None
    trace: TraceContext | None = None
    request_id: str | None = None
    content_type: str | None = None
    schema_version: str | None = None


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


def parse_traceparent(value: str | None, tracestate: str | None = None) -> TraceContext | None:
    """The trace context in ``value``, or None when it is not a valid ``traceparent``."""
    if value is None:
        return None
    match = _TRACEPARENT.fullmatch(value.strip())
    if match is None:
        return None
    version = match["version"]
    if version == "ff" or (version == "00" and match["rest"] is not None):
        return None
    if set(match["trace_id"]) == {"0"} or set(match["span_id"]) == {"0"}:
        return None
    parent = f"{version}-{match['trace_id']}-{match['span_id']}-{match['flags']}"
    return TraceContext(traceparent=parent, tracestate=tracestate or None)


def read_headers(headers: Mapping[str, str] | None) -> MessageHeaders:
    """Every known header of a message, looked up case-insensitively."""
    return MessageHeaders(
        msg_id=get_header(headers, MSG_ID),
        trace=parse_traceparent(get_header(headers, TRACEPARENT), get_header(headers, TRACESTATE)),
        request_id=get_header(headers, REQUEST_ID),
        content_type=get_header(headers, CONTENT_TYPE),
        schema_version=get_header(headers, SCHEMA_VERSION),
    )


def envelope_headers(
    *,
    msg_id: str,
    schema_version: str,
    trace: TraceContext | None = None,
    request_id: str | None = None,
) -> dict[str, str]:
    """Headers of an outgoing envelope.

    Raises:
        HeaderError: a value holds characters a header cannot carry.
    """
    out = {
        MSG_ID: msg_id,
        CONTENT_TYPE: JSON,
        SCHEMA_VERSION: schema_version,
    }
    if trace is not None:
        out[TRACEPARENT] = trace.traceparent
        if trace.tracestate:
            out[TRACESTATE] = trace.tracestate
    if request_id is not None:
        out[REQUEST_ID] = request_id
    for name, value in out.items():
        _check_value(name, value)
    return out


def git_event_headers(event: GitEvent, *, trace: TraceContext | None = None) -> dict[str, str]:
    """Headers the control plane sends with a git event (``Nats-Msg-Id`` = ``event_id``)."""
    return envelope_headers(
        msg_id=event.event_id,
        schema_version=event.schema_version,
        trace=trace,
        request_id=event.request_id,
    )


def task_headers(
    task: TaskRequest, *, trace: TraceContext | None = None, request_id: str | None = None
) -> dict[str, str]:
    """Headers of a task request (``Nats-Msg-Id`` = ``idempotency_key``)."""
    return envelope_headers(
        msg_id=task.idempotency_key,
        schema_version=task.schema_version,
        trace=trace,
        request_id=request_id,
    )


def validation_headers(
    request: ValidationRequest,
    *,
    trace: TraceContext | None = None,
    request_id: str | None = None,
) -> dict[str, str]:
    """Headers of a validation request (``Nats-Msg-Id`` = ``idempotency_key``)."""
    return envelope_headers(
        msg_id=request.idempotency_key,
        schema_version=request.schema_version,
        trace=trace,
        request_id=request_id,
    )


def check_headers(received: MessageHeaders, envelope: str) -> None:
    """Refuse a message whose headers announce something this worker cannot read.

    Absent headers are fine (the payload is authoritative); a ``Content-Type``
    other than JSON, or a ``GitStore-Schema-Version`` with another major, is not.

    Raises:
        EnvelopeError: ``Content-Type`` is not ``application/json``.
        SchemaVersionError: the announced major version is not supported.
    """
    if received.content_type is not None:
        media_type = received.content_type.split(";", 1)[0].strip().lower()
        if media_type != JSON:
            raise EnvelopeError(
                f"{envelope}: header {CONTENT_TYPE}={received.content_type!r}, expected {JSON}",
                field=CONTENT_TYPE,
                code="content-type-unsupported",
            )
    if received.schema_version is not None:
        check_schema_version(received.schema_version, envelope, field=SCHEMA_VERSION)


def passed_request_id(received: Mapping[str, str] | None) -> str | None:
    """The ``X-Request-ID`` to pass along from a received message (None if absent or unsafe).

    Workers copy it onto everything they publish for that message, so the control
    plane's API request id reaches the validation request.
    """
    value = get_header(received, REQUEST_ID)
    if value is None:
        return None
    if len(value) > MAX_HEADER_VALUE or _HEADER_VALUE.fullmatch(value) is None:
        return None
    return value


def _check_value(name: str, value: str) -> None:
    if len(value) > MAX_HEADER_VALUE or _HEADER_VALUE.fullmatch(value) is None:
        raise HeaderError(
            f"header {name}={value[:64]!r} must be 1-{MAX_HEADER_VALUE} visible ASCII "
            "characters (inner spaces allowed, no CR/LF)"
        )
