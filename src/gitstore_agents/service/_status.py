"""The status API: a NATS micro service answering "what happened to event X / task K?".

Every worker process serves it (one queue group, so each request is answered
once), discoverable with ``nats micro ls`` / ``nats micro info
gitstore-agents-status``. Two endpoints, JSON in and out:

* ``<prefix>.status.event`` ``{"event_id": …}`` → ``EventStatus``: the event's
  tasks (from its audit records) with their state from their slots;
* ``<prefix>.status.key`` ``{"idempotency_key": …}`` (optionally
  ``"event_id"``) → ``KeyStatus``: one task's state and story.

Both answers carry the git event's trace id (the trace the control plane's
publish started), so the control plane can show it in its own API response.
Errors are micro-service errors (``Nats-Service-Error-Code`` 400 for a bad
request, 503 when the audit trail or a slot cannot be read).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import warnings
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import msgspec
import nats.micro
from nats.aio.client import Client
from nats.micro.request import Request
from nats.micro.service import Service
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags

from ..config import Topology
from ..consumers import ResultStore
from ..envelopes import ExtensionRef, headers, slot_token
from ..envelopes._types import UUID_PATTERN
from ..errors import GitStoreAgentsError
from ..telemetry import (
    EventStory,
    TaskStory,
    build_story,
    extract,
    message_ids,
    read_event_trail,
    tracer,
)

STATUS_SERVICE = "gitstore-agents-status"
"""Name of the micro service (``nats micro info gitstore-agents-status``)."""
STATUS_VERSION = "1.0.0"
"""Version of the status API (semver, as micro services require)."""
STATUS_QUEUE_GROUP = "gitstore-agents-status"
"""Queue group every worker's endpoints join."""
TRACE_ID_HEADER = "GitStore-Trace-Id"
"""Response header holding the git event's trace id (also in the body)."""

SCHEMA_VERSION = "1.0"
_UUID = re.compile(UUID_PATTERN)
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_TERMINAL = frozenset({"succeeded", "failed", "dead-lettered", "refused"})
_ENCODER = msgspec.json.Encoder(order="sorted")
_STOP_TIMEOUT_S = 2.0
_Request = TypeVar("_Request", bound=msgspec.Struct)


class StatusRequestError(GitStoreAgentsError):
    """A status request is malformed (names the field)."""

    code = "status-request-invalid"
    retryable = False


class TaskStatus(msgspec.Struct, frozen=True, kw_only=True):
    """One task's status.

    Attributes:
        idempotency_key: The task's key.
        task_id: Its id.
        kind: Its kind.
        path: Catalog file it is about.
        parent_key: Key of the task whose output it consumes (follow-ups).
        state: ``succeeded`` (its validation request is stored), ``failed`` or
            ``refused`` (its diagnostic is), else what the audit trail says
            (``planned``, ``running``, ``retrying``, ``dead-lettered``, ...).
        attempts: Deliveries recorded so far.
        module_digest: Module that produced the result (``succeeded``).
        extension: ``name@version`` of the extension an ``extension.run``
            result came from (``succeeded``).
        output_digest: Digest of the published output (``succeeded``).
        result_seq: Stream sequence of its validation request (``succeeded``).
        last_error: ``code: message`` of the last failed attempt.
        updated_at: When its last decision was made.
        trace_id: Trace id of the delivery that produced its state: the one
            its stored validation request or diagnostic carries (``traceparent``),
            else the trail's (``TaskStory.trace_id``), never a later duplicate skip's.
    """

    idempotency_key: str
    task_id: str | None = None
    kind: str | None = None
    path: str | None = None
    parent_key: str | None = None
    state: str
    attempts: int = 0
    module_digest: str | None = None
    extension: str | None = None
    output_digest: str | None = None
    result_seq: int | None = None
    last_error: str | None = None
    updated_at: str | None = None
    trace_id: str | None = None


class EventStatus(msgspec.Struct, frozen=True, kw_only=True):
    """A git event's status (the ``<prefix>.status.event`` answer).

    Attributes:
        schema_version: Version of this answer.
        event_id: The event.
        found: False when nothing is recorded about it (yet).
        state: ``unknown``, ``in-progress``, ``succeeded`` (every task
            succeeded), ``failed`` (everything settled, something failed, was
            refused or dead-lettered) or the event's own failure
            (``failed``/``dead-lettered`` when it could not be planned).
        trace_id: The event's trace id.
        tasks: Every task, parents before follow-ups.
        counts: Number of tasks per state.
        decisions: Audit records read.
    """

    schema_version: str = SCHEMA_VERSION
    event_id: str
    found: bool
    state: str
    trace_id: str | None = None
    tasks: list[TaskStatus] = msgspec.field(default_factory=list)
    counts: dict[str, int] = msgspec.field(default_factory=dict)
    decisions: int = 0


class KeyStatus(msgspec.Struct, frozen=True, kw_only=True):
    """One task's status (the ``<prefix>.status.key`` answer).

    Attributes:
        schema_version: Version of this answer.
        idempotency_key: The task's key.
        found: False when neither the slots nor the trail know it.
        event_id: The git event it descends from.
        trace_id: The git event's trace id.
        task: The task's status.
    """

    schema_version: str = SCHEMA_VERSION
    idempotency_key: str
    found: bool
    event_id: str | None = None
    trace_id: str | None = None
    task: TaskStatus | None = None


class _EventRequest(msgspec.Struct, frozen=True):
    event_id: str


class _KeyRequest(msgspec.Struct, frozen=True):
    idempotency_key: str
    event_id: str | None = None


class _StoredValidation(msgspec.Struct):
    """Just what a status needs of a stored validation request (not its output)."""

    output_digest: str | None = None
    module_digest: str | None = None
    extension: ExtensionRef | None = None


class _StoredFailure(msgspec.Struct):
    code: str = ""
    message: str = ""
    occurred_at: str | None = None


class _StoredTask(msgspec.Struct):
    source_event_id: str | None = None


_VALIDATION = msgspec.json.Decoder(_StoredValidation)
_FAILURE = msgspec.json.Decoder(_StoredFailure)
_TASK = msgspec.json.Decoder(_StoredTask)
# Lookups of one status answer in flight at once (an event may have many tasks).
_LOOKUPS = 32


class StatusReader:
    """Builds statuses from the audit trail and the slots that hold the results.

    A task's state is what its slots hold (a validation request: ``succeeded``;
    a diagnostic: ``failed``), else what its audit records say (``planned``,
    ``running``, ``retrying``, ``dead-lettered``...).

    Args:
        nc: The connection (audit records are read with direct gets).
        topology: Stream and subject names.
        results: Reads slots.
        kinds: The task kinds a key may belong to (a key alone does not say).
        timeout_s: Bound on reading the audit stream.
    """

    def __init__(
        self,
        nc: Client,
        topology: Topology,
        results: ResultStore,
        *,
        kinds: Sequence[str],
        timeout_s: float = 5.0,
    ) -> None:
        self._nc = nc
        self._topology = topology
        self._results = results
        self._kinds = tuple(kinds)
        self._timeout_s = timeout_s

    async def story(self, event_id: str) -> EventStory:
        """The event's story from its audit records."""
        entries = await read_event_trail(
            self._nc, self._topology, event_id, timeout_s=self._timeout_s
        )
        return build_story(event_id, entries)

    async def event(self, event_id: str) -> EventStatus:
        """The status of git event ``event_id``."""
        if not _UUID.fullmatch(event_id):
            raise StatusRequestError(f"event_id={event_id!r} is not a lower-case UUID")
        story = await self.story(event_id)
        limit = asyncio.Semaphore(_LOOKUPS)

        async def status(task: TaskStory) -> TaskStatus:
            async with limit:
                return await self._task_status(task)

        tasks = list(await asyncio.gather(*(status(t) for t in story.all_tasks())))
        counts: dict[str, int] = {}
        for task in tasks:
            counts[task.state] = counts.get(task.state, 0) + 1
        return EventStatus(
            event_id=event_id,
            found=story.records > 0,
            state=_event_state(story, tasks),
            trace_id=story.trace_id,
            tasks=tasks,
            counts=counts,
            decisions=story.records,
        )

    async def key(self, idempotency_key: str, event_id: str | None = None) -> KeyStatus:
        """The status of the task with ``idempotency_key``."""
        if not _DIGEST.fullmatch(idempotency_key):
            raise StatusRequestError(
                f"idempotency_key={idempotency_key!r} is not sha256:<64 lower-case hex>"
            )
        if event_id is not None and not _UUID.fullmatch(event_id):
            raise StatusRequestError(f"event_id={event_id!r} is not a lower-case UUID")
        event_id = event_id or await self._event_of(idempotency_key)
        if event_id is None:
            return KeyStatus(idempotency_key=idempotency_key, found=False)
        story = await self.story(event_id)
        task = next(
            (t for t in story.all_tasks() if t.idempotency_key == idempotency_key),
            TaskStory(idempotency_key=idempotency_key, outcome="unknown"),
        )
        status = await self._task_status(task)
        return KeyStatus(
            idempotency_key=idempotency_key,
            found=status.state != "unknown" or bool(task.attempts) or task.kind is not None,
            event_id=event_id,
            trace_id=story.trace_id,
            task=status,
        )

    async def _event_of(self, idempotency_key: str) -> str | None:
        """The git event a task descends from, read from the task's own slot."""
        slot = slot_token(idempotency_key)
        subjects = self._topology.subjects
        for kind in self._kinds:
            stored = await self._results.last(
                self._topology.tasks_stream, subjects.task(kind, slot)
            )
            if stored is not None:
                with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
                    return _TASK.decode(stored.data).source_event_id
        return None

    async def _task_status(self, task: TaskStory) -> TaskStatus:
        status = TaskStatus(
            idempotency_key=task.idempotency_key,
            task_id=task.task_id,
            kind=task.kind,
            path=task.path,
            parent_key=task.parent_key,
            state=task.outcome,
            attempts=len(task.attempts),
            last_error=task.last_error,
            updated_at=task.updated_at,
            trace_id=task.trace_id,
        )
        if task.kind is None:
            return status
        topology, subjects = self._topology, self._topology.subjects
        done = await self._results.last(
            topology.validation_stream, subjects.validation(task.kind, task.idempotency_key)
        )
        if done is not None:
            with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
                result = _VALIDATION.decode(done.data)
                return msgspec.structs.replace(
                    status,
                    state="succeeded",
                    module_digest=result.module_digest,
                    extension=(
                        result.extension.label
                        if isinstance(result.extension, ExtensionRef)
                        else None
                    ),
                    output_digest=result.output_digest,
                    result_seq=done.seq,
                    trace_id=_producer_trace(done.headers) or status.trace_id,
                )
        failed = await self._results.last(
            topology.failures_stream,
            subjects.failure(task.kind, slot_token(task.idempotency_key)),
        )
        if failed is not None:
            with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
                diagnostic = _FAILURE.decode(failed.data)
                return msgspec.structs.replace(
                    status,
                    state="refused" if task.outcome == "refused" else "failed",
                    last_error=f"{diagnostic.code}: {diagnostic.message}",
                    updated_at=diagnostic.occurred_at or status.updated_at,
                    trace_id=_producer_trace(failed.headers) or status.trace_id,
                )
        return status


def _producer_trace(stored_headers: dict[str, str]) -> str | None:
    # The publisher put the producing delivery's context into the message it
    # stored: that trace made the result, whatever the trail recorded later
    # (or lost: a delivery whose audit flush failed is recorded by the next
    # one, as a duplicate skip).
    return message_ids(stored_headers)[0]


def _event_state(story: EventStory, tasks: Sequence[TaskStatus]) -> str:
    if not story.records:
        return "unknown"
    if story.outcome in ("failed", "dead-lettered"):
        return story.outcome
    if story.outcome != "planned" or any(t.state not in _TERMINAL for t in tasks):
        return "in-progress"
    return "succeeded" if all(t.state == "succeeded" for t in tasks) else "failed"


class StatusService:
    """Serves the status API from one worker process.

    Args:
        nc: The connection to serve on.
        reader: Builds the answers.
        topology: The subject prefix.
        worker_id: This process (in the service's metadata).
    """

    def __init__(self, nc: Client, reader: StatusReader, topology: Topology, worker_id: str):
        self._nc = nc
        self._reader = reader
        self._prefix = topology.prefix
        self._worker_id = worker_id
        self._service: Service | None = None

    @property
    def id(self) -> str | None:
        """The micro service instance id (after ``start``)."""
        return self._service.id if self._service is not None else None

    async def start(self) -> None:
        """Register the service and its two endpoints."""
        with warnings.catch_warnings():
            # nats-py's micro module stamps start times with datetime.utcnow().
            warnings.simplefilter("ignore", DeprecationWarning)
            service = await nats.micro.add_service(
                self._nc,
                name=STATUS_SERVICE,
                version=STATUS_VERSION,
                description="Status of git events and tasks (gitstore-agents)",
                metadata={"prefix": self._prefix, "worker_id": self._worker_id},
                queue_group=STATUS_QUEUE_GROUP,
            )
        await service.add_endpoint(
            name="event", subject=status_subject(self._prefix, "event"), handler=self._event
        )
        await service.add_endpoint(
            name="key", subject=status_subject(self._prefix, "key"), handler=self._key
        )
        # The server has every subscription once this returns (nats-py's own
        # flush in add_service does not reliably cover them: 5% of requests
        # right after start found no responders without this one).
        await self._nc.flush()
        self._service = service

    async def stop(self) -> None:
        """Unregister (in-flight requests are answered; bounded if NATS is gone)."""
        if self._service is not None and not self._nc.is_closed:
            # Each subscription's drain is a round trip: without a server it
            # would wait for nats-py's flush timeout, once per subscription.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._service.stop(), timeout=_STOP_TIMEOUT_S)
        self._service = None

    async def _event(self, request: Request) -> None:
        async def answer() -> EventStatus | KeyStatus:
            parsed = _parse(request.data, _EventRequest)
            return await self._reader.event(parsed.event_id)

        await _serve(request, answer)

    async def _key(self, request: Request) -> None:
        async def answer() -> EventStatus | KeyStatus:
            parsed = _parse(request.data, _KeyRequest)
            return await self._reader.key(parsed.idempotency_key, parsed.event_id)

        await _serve(request, answer)


def status_subject(prefix: str, endpoint: str) -> str:
    """``<prefix>.status.<endpoint>`` (``event`` or ``key``)."""
    return f"{prefix}.status.{endpoint}"


def _parse(data: bytes, kind: type[_Request]) -> _Request:
    try:
        return msgspec.json.decode(data, type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise StatusRequestError(f"request body: {exc}") from None


async def _serve(
    request: Request, answer: Callable[[], Awaitable[EventStatus | KeyStatus]]
) -> None:
    """Answer one request inside a server span linked to the event's trace."""
    with tracer().start_as_current_span(
        f"process {request.subject}",
        context=extract(request.headers),
        kind=SpanKind.SERVER,
        attributes={"messaging.system": "nats", "messaging.destination.name": request.subject},
    ) as span:
        try:
            result = await answer()
        except StatusRequestError as exc:
            await request.respond_error("400", exc.message)
            return
        except GitStoreAgentsError as exc:
            await request.respond_error("503", exc.message)
            return
        trace_id = result.trace_id
        reply_headers = {headers.CONTENT_TYPE: headers.JSON}
        if trace_id:
            reply_headers[TRACE_ID_HEADER] = trace_id
            span.set_attribute("gitstore.event_trace_id", trace_id)
            span.add_link(_event_trace(trace_id))
        await request.respond(_ENCODER.encode(result), headers=reply_headers)


def _event_trace(trace_id: str) -> SpanContext:
    # A link needs a span id; the trace id is what matters, any non-zero span id will do.
    return SpanContext(int(trace_id, 16), 1, is_remote=True, trace_flags=TraceFlags(1))
