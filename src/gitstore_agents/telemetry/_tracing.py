"""Spans for NATS messaging, following the OpenTelemetry messaging semantic conventions.

One trace links a git event to everything it causes: the W3C ``traceparent``
of each delivery is extracted (header names are matched case-insensitively:
nats-py hands headers over as a plain dict) and becomes the parent of its
``process`` span; every publish runs inside a ``send`` span whose context is
injected into each message it sends, so the next consumer's ``process`` span
is its child. Span names are ``"{operation} {destination}"`` with a
low-cardinality destination (``gitstore.events.git.push.{repository_id}``).

Spans (kind, operation type):

* ``receive <durable>`` (consumer, ``receive``): one per pull request that
  delivered messages, linked to each message's context;
* ``process <subject>`` (consumer, ``process``): one per delivery, child of the
  context the message carries;
* ``gitstore.sandbox`` (internal): the module run, its usage as attributes;
* ``send <destination>`` (producer, ``send``): one per confirmed publish batch,
  its context injected into every message of the batch; named after what the
  batch's subjects have in common (``batch_destination``);
* ``nak|term <subject>`` (client, ``settle``): handing a delivery back or
  terminating it; an ack gets no span (``gitstore.settle=ack`` on the process
  span says it), which keeps the common path one span cheaper.

Only the OpenTelemetry *API* is used here: without a configured SDK every span
is a no-op (``setup_telemetry`` installs the SDK from ``OTEL_*`` variables).

When spans go nowhere (no exporter configured: ``use_light_spans``), each of
these is a *light* span instead: a non-recording span with fresh ids in the
parent's trace, keeping the parent's sampled flag. Trace ids still reach log
lines, audit records and every message's ``traceparent``, so one trace still
links a git event to its results; what is skipped is building span objects
nobody reads, which costs more than the rest of a no-op task's bookkeeping.
"""

from __future__ import annotations

import contextlib
import contextvars
import random
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import structlog
from nats.aio.client import Client
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)

from ..envelopes import headers as hdr
from ._metrics import INSTRUMENTS

TRACER_NAME = "gitstore_agents"

SYSTEM = "messaging.system"
OPERATION_TYPE = "messaging.operation.type"
OPERATION_NAME = "messaging.operation.name"
DESTINATION = "messaging.destination.name"
DESTINATION_TEMPLATE = "messaging.destination.template"
SUBSCRIPTION = "messaging.destination.subscription.name"
CONSUMER_GROUP = "messaging.consumer.group.name"
MESSAGE_ID = "messaging.message.id"
BODY_SIZE = "messaging.message.body.size"
BATCH_COUNT = "messaging.batch.message_count"
ERROR_TYPE = "error.type"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
NATS = "nats"

_tracer = trace.get_tracer(TRACER_NAME)

# The span of the delivery being processed, so ``annotate`` reaches it from
# inside a stage span.
_DELIVERY_SPAN: contextvars.ContextVar[Span | None] = contextvars.ContextVar(
    "gitstore_delivery_span", default=None
)
# The task kind of the delivery being processed (``annotate``), so a module
# run is counted by kind without the pipeline passing it down again.
_DELIVERY_KIND: contextvars.ContextVar[str] = contextvars.ContextVar(
    "gitstore_delivery_kind", default=""
)


# Spans go nowhere: make light ones (see the module docstring).
_light = False


def tracer() -> trace.Tracer:
    """The package's tracer (resolved through the global tracer provider)."""
    return _tracer


def use_light_spans(light: bool) -> None:
    """Make ids-only spans (True: nothing exports spans) or real ones (False)."""
    global _light  # noqa: PLW0603 - one switch per process, set once at setup
    _light = light


def light_spans() -> bool:
    """True while spans are ids only (nothing exports them)."""
    return _light


@contextlib.contextmanager
def _light_span(parent: otel_context.Context | None = None) -> Iterator[Span]:
    """A non-recording span with fresh ids, child of ``parent`` (default: the current span)."""
    above = trace.get_current_span(parent).get_span_context()
    if above.is_valid:
        trace_id, flags, state = above.trace_id, above.trace_flags, above.trace_state
    else:
        # A new trace, marked sampled as the SDK's default sampler would:
        # whoever consumes our messages decides for themselves.
        trace_id, flags, state = random.getrandbits(128) or 1, TraceFlags(1), None
    span = NonRecordingSpan(
        SpanContext(
            trace_id,
            random.getrandbits(64) or 1,
            is_remote=False,
            trace_flags=flags,
            trace_state=state,
        )
    )
    token = otel_context.attach(trace.set_span_in_context(span, parent))
    try:
        yield span
    finally:
        otel_context.detach(token)


class _HeaderGetter(Getter[Mapping[str, str] | None]):
    """Reads propagation headers case-insensitively (``Traceparent`` works too)."""

    def get(self, carrier: Mapping[str, str] | None, key: str) -> list[str] | None:
        value = hdr.get_header(carrier, key)
        return None if value is None else [value]

    def keys(self, carrier: Mapping[str, str] | None) -> list[str]:
        return list(carrier or ())


_GETTER = _HeaderGetter()


def extract(headers: Mapping[str, str] | None) -> otel_context.Context:
    """The trace context a message carries (an empty context when it carries none)."""
    return propagate.extract(headers, getter=_GETTER, context=otel_context.Context())


def inject(carrier: dict[str, str]) -> dict[str, str]:
    """Write the current trace context (``traceparent``, ``tracestate``) into ``carrier``."""
    propagate.inject(carrier)
    return carrier


def current_ids() -> tuple[str | None, str | None]:
    """``(trace id, span id)`` of the current span as lower-case hex, or Nones."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None, None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def message_ids(headers: Mapping[str, str] | None) -> tuple[str | None, str | None]:
    """``(trace id, span id)`` a message's ``traceparent`` carries, or Nones."""
    context = trace.get_current_span(extract(headers)).get_span_context()
    if not context.is_valid:
        return None, None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def destination(subject: str) -> str:
    """The low-cardinality form of ``subject`` used in span names.

    Git event subjects end in a repository id, audit subjects in an event id,
    slots in a task's key (or an input's stream and sequence): each becomes a
    placeholder, so a span name says which kind of work it is, not which task.
    """
    tokens = subject.split(".")
    if len(tokens) >= 5 and tokens[-4:-1] == ["events", "git", "push"]:
        return ".".join([*tokens[:-1], "{repository_id}"])
    if (len(tokens) >= 4 and tokens[-3] == "audit") or (len(tokens) >= 3 and tokens[-2] == "audit"):
        return ".".join([*tokens[:-1], "{event_id}"])
    last = tokens[-1]
    if _SLOT.fullmatch(last):
        return ".".join([*tokens[:-1], "{key}"])
    if _INPUT.fullmatch(last) or _UUID.fullmatch(last):
        return ".".join([*tokens[:-1], "{input}"])
    return subject


_SLOT = re.compile(r"[0-9a-f]{64}(-rq[0-9]+)*")
_INPUT = re.compile(r"[A-Za-z0-9_-]+-[0-9]+")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def batch_destination(subjects: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """The destination a batch sent to ``subjects`` is named after, and its attributes.

    One subject: that subject's template (``destination``), with the subject as
    ``messaging.destination.name``. Several subjects of one template: the
    template, and no destination name (there is none). Templates that differ
    (a validation request with its follow-up tasks): the tokens they share
    followed by ``>``, the NATS wildcard matching every subject of the batch
    (``gitstore.>``), or nothing when they share none (the span is then just
    ``send``); ``gitstore.destination.templates`` lists the templates.
    """
    unique = sorted(set(subjects))
    if len(unique) == 1:
        return destination(unique[0]), _destination_attributes(unique[0])
    templates = sorted({destination(subject) for subject in unique})
    attributes: dict[str, Any] = {SYSTEM: NATS}
    if len(templates) == 1:
        attributes[DESTINATION_TEMPLATE] = templates[0]
        return templates[0], attributes
    # Shared leading tokens, leaving at least one token of every template for
    # ``>`` to match (it matches one or more).
    common: list[str] = []
    for tokens in zip(*(t.split(".")[:-1] for t in templates), strict=False):
        if len(set(tokens)) != 1:
            break
        common.append(tokens[0])
    attributes["gitstore.destination.templates"] = templates
    if not common:
        return "", attributes
    wildcard = ".".join([*common, ">"])
    attributes[DESTINATION_TEMPLATE] = wildcard
    return wildcard, attributes


def _destination_attributes(subject: str) -> dict[str, Any]:
    template = destination(subject)
    attributes: dict[str, Any] = {SYSTEM: NATS, DESTINATION: subject}
    if template != subject:
        attributes[DESTINATION_TEMPLATE] = template
    return attributes


def server_attributes(connection: Client | None) -> dict[str, Any]:
    """``server.address`` and ``server.port`` of the server ``connection`` is connected to."""
    url = connection.connected_url if connection is not None else None
    if url is None or not url.hostname:
        return {}
    attributes: dict[str, Any] = {SERVER_ADDRESS: url.hostname}
    if url.port is not None:
        attributes[SERVER_PORT] = url.port
    return attributes


def error_type(error: BaseException) -> str:
    """``error.type`` of ``error``: its stable code when it has one, else its class name."""
    code = getattr(error, "code", None)
    return code if isinstance(code, str) and code else type(error).__qualname__


@contextlib.contextmanager
def process_span(
    *,
    subject: str,
    headers: Mapping[str, str] | None,
    durable: str,
    stream_seq: int,
    attempt: int,
    size: int,
    connection: Client | None = None,
) -> Iterator[Span]:
    """The ``process`` span of one delivery, child of the context the message carries.

    Log context variables are cleared first (each delivery runs in its own
    asyncio task, whose context this clears) so nothing bound for another
    message leaks into this one's lines. ``connection`` (the one the message
    came on) gives ``server.address`` and ``server.port``.
    """
    structlog.contextvars.clear_contextvars()
    _DELIVERY_KIND.set("")
    if _light:
        with _light_span(extract(headers)) as light:
            token = _DELIVERY_SPAN.set(light)
            try:
                yield light
            finally:
                _DELIVERY_SPAN.reset(token)
        return
    attributes = _destination_attributes(subject)
    attributes.update(
        {
            OPERATION_TYPE: "process",
            OPERATION_NAME: "process",
            CONSUMER_GROUP: durable,
            BODY_SIZE: size,
            "gitstore.stream_seq": stream_seq,
            "gitstore.attempt": attempt,
            **server_attributes(connection),
        }
    )
    message_id = hdr.get_header(headers, hdr.MSG_ID)
    if message_id is not None:
        attributes[MESSAGE_ID] = message_id
    with _tracer.start_as_current_span(
        f"process {destination(subject)}",
        context=extract(headers),
        kind=SpanKind.CONSUMER,
        attributes=attributes,
    ) as span:
        token = _DELIVERY_SPAN.set(span)
        try:
            yield span
        finally:
            _DELIVERY_SPAN.reset(token)


def annotate(**fields: str | int | None) -> None:
    """Bind ``fields`` to the log lines of the current delivery and to its span.

    Handlers call this once they know what the delivery is about
    (``event_id``, ``idempotency_key``, ``role``, ...); ``None`` values are
    skipped. Span attributes are prefixed ``gitstore.``.
    """
    values = {name: value for name, value in fields.items() if value is not None}
    if not values:
        return
    kind = values.get("kind")
    if isinstance(kind, str):
        _DELIVERY_KIND.set(kind)
    structlog.contextvars.bind_contextvars(**values)
    span = _DELIVERY_SPAN.get() or trace.get_current_span()
    if span.is_recording():
        span.set_attributes({f"gitstore.{name}": value for name, value in values.items()})


def record_run(outcome: str, *, fuel: int, wall_time_us: int, peak_memory_bytes: int) -> None:
    """Count a module run by kind and outcome; put its usage on the current span.

    The span is the ``gitstore.sandbox`` one; the kind is the delivery's
    (``annotate(kind=...)``).
    """
    INSTRUMENTS.sandbox_outcomes.add(_DELIVERY_KIND.get(), outcome)
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes(
            {
                "gitstore.sandbox.outcome": outcome,
                "gitstore.sandbox.fuel": fuel,
                "gitstore.sandbox.wall_time_us": wall_time_us,
                "gitstore.sandbox.peak_memory_bytes": peak_memory_bytes,
            }
        )
        if outcome != "ok":
            span.set_attribute(ERROR_TYPE, outcome)
            span.set_status(Status(StatusCode.ERROR, outcome))


def record_outcome(span: Span, *, settle: str, code: str, reason: str = "") -> None:
    """Put a delivery's outcome on its ``process`` span (error status unless acked).

    A delivery that is not acked failed: its code is the span's ``error.type``.
    """
    if not span.is_recording():
        return
    span.set_attributes({"gitstore.settle": settle, "gitstore.outcome": code})
    if settle != "ack":
        span.set_attribute(ERROR_TYPE, code)
        span.set_status(Status(StatusCode.ERROR, f"{code}: {reason}"[:512]))


@contextlib.contextmanager
def settle_span(
    subject: str, operation: str, durable: str, connection: Client | None = None
) -> Iterator[Span]:
    """The ``settle`` span of one ack, nak or term (``operation``, its operation name)."""
    if _light:
        with _light_span() as light:
            yield light
        return
    attributes = _destination_attributes(subject)
    attributes.update(
        {
            OPERATION_TYPE: "settle",
            OPERATION_NAME: operation,
            CONSUMER_GROUP: durable,
            **server_attributes(connection),
        }
    )
    with _tracer.start_as_current_span(
        f"{operation} {destination(subject)}", kind=SpanKind.CLIENT, attributes=attributes
    ) as span:
        yield span


@contextlib.contextmanager
def send_span(
    subjects: Sequence[str],
    message_ids: Sequence[str | None],
    connection: Client | None = None,
) -> Iterator[Span]:
    """The ``send`` span of one publish batch, named after its destination.

    A batch holds a result and what goes with it (follow-up tasks); the span
    is named after what all its subjects have in common (``batch_destination``),
    never after one of them only, and counts its messages. Its context is what
    gets injected into every message of the batch. A failure propagating out
    of it sets ``error.type``. Light spans skip it: the messages carry the
    delivery's own context, a parent as good as a send span that records nothing.
    """
    if _light:
        yield trace.get_current_span()
        return
    where, attributes = batch_destination(subjects)
    attributes.update({OPERATION_TYPE: "send", OPERATION_NAME: "send"})
    attributes.update(server_attributes(connection))
    if len(subjects) > 1:
        attributes[BATCH_COUNT] = len(subjects)
    elif message_ids and message_ids[0] is not None:
        attributes[MESSAGE_ID] = message_ids[0]
    with _tracer.start_as_current_span(
        f"send {where}" if where else "send", kind=SpanKind.PRODUCER, attributes=attributes
    ) as span:
        try:
            yield span
        except Exception as exc:
            span.set_attribute(ERROR_TYPE, error_type(exc))
            raise


@contextlib.contextmanager
def stage_span(name: str, subject: str) -> Iterator[None]:
    """An internal span around one pipeline stage (``gitstore.sandbox``, ...)."""
    if _light:
        yield  # nothing would record it, and nothing is published from inside it
        return
    with _tracer.start_as_current_span(
        f"gitstore.{name}",
        attributes={"gitstore.stage": name, DESTINATION: subject},
    ):
        yield


@contextlib.contextmanager
def continue_trace(headers: Mapping[str, str] | None, name: str) -> Iterator[Span]:
    """A span in the trace ``headers`` carry, for work done about an older message.

    The dead-letter writer handles an advisory (which carries no trace) about
    a message that does: its dead letter and audit record join that message's
    trace, linked to the advisory's own span.
    """
    if _light:
        with _light_span(extract(headers)) as light:
            yield light
        return
    current = trace.get_current_span().get_span_context()
    links = [Link(current)] if current.is_valid else []
    with _tracer.start_as_current_span(
        name, context=extract(headers), kind=SpanKind.INTERNAL, links=links
    ) as span:
        yield span


class ReceiveBatch:
    """The ``receive`` span of one pull request: when it was sent, what it delivered.

    A pull request is answered by up to ``batch`` messages over time. The span
    starts when the request is sent, gets a link to each delivered message's
    context, and ends when the request is done (fulfilled, expired, lost). A
    request that delivered nothing leaves no span (idle pulls would drown the
    traces). The number of messages goes to the fetch batch size histogram.

    Args:
        stream: Stream of the durable.
        durable: Durable consumer name.
        connection: The connection the pull requests go out on (``server.*``).
    """

    def __init__(self, stream: str, durable: str, connection: Client | None = None) -> None:
        self._stream = stream
        self._durable = durable
        self._connection = connection
        self._requested_ns = 0
        self._span: Span | None = None
        self._count = 0

    def requested(self) -> None:
        """A new pull request was sent (the previous one, if open, is done)."""
        self.done()
        self._requested_ns = time.time_ns()

    def received(self, headers: Mapping[str, str] | None) -> None:
        """One message of the open request arrived."""
        self._count += 1
        if _light:
            return  # no span to link it to
        message = trace.get_current_span(extract(headers)).get_span_context()
        if self._span is None:
            self._span = _tracer.start_span(
                f"receive {self._durable}",
                context=otel_context.Context(),
                kind=SpanKind.CONSUMER,
                attributes={
                    SYSTEM: NATS,
                    OPERATION_TYPE: "receive",
                    OPERATION_NAME: "receive",
                    CONSUMER_GROUP: self._durable,
                    SUBSCRIPTION: self._durable,
                    "gitstore.stream": self._stream,
                    **server_attributes(self._connection),
                },
                links=[Link(message)] if message.is_valid else (),
                start_time=self._requested_ns or None,
            )
        elif message.is_valid:
            self._span.add_link(message)

    def done(self) -> None:
        """The open request is over: end its span, record its size."""
        if self._count:
            INSTRUMENTS.batch_size.record(self._count, self._durable)
        if self._span is not None:
            self._span.set_attribute(BATCH_COUNT, self._count)
            self._span.end()
            self._span = None
        self._count = 0
