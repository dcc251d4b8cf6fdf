"""The planner role: a git event becomes tasks, deterministically."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
import structlog

from ..clock import rfc3339, utc_now
from ..config import GIT_PUSH, MARKDOWN_COMPILE
from ..consumers import (
    Decision,
    Delivery,
    PublishFailedError,
    Settle,
    publish_confirmed,
    retry_delay_s,
)
from ..envelopes import (
    AuditDecision,
    ContentStore,
    EnvelopeError,
    FailureDiagnostic,
    GitEvent,
    Limits,
    MarkdownInput,
    Stage,
    Subjects,
    TaskRequest,
    canonical_json,
    decode,
    headers,
    resolve_blobs,
    sha256_digest,
    verify_blob,
)
from ..errors import GitStoreAgentsError
from ..guardrails import Outbound, PublishBoundary, PublishRefusedError
from ..telemetry import (
    PLANNED_REF,
    DecisionRecord,
    LogObserver,
    Observer,
    annotate,
    planned_ref,
)
from ._derive import derive_task

log = structlog.get_logger(__name__)


def plan_tasks(
    event: GitEvent,
    source_key: str,
    modules: Mapping[str, str],
    limits: Mapping[str, Limits] | None = None,
) -> list[TaskRequest]:
    """Derive the tasks for ``event``: one ``markdown.compile`` per changed ``*.md`` blob.

    The result depends only on its arguments, so a replayed or duplicated event
    derives byte-identical tasks with the same idempotency keys.

    Args:
        event: The decoded git event.
        source_key: The event's idempotency key (its ``event_id``).
        modules: Module digest to run for each task kind.
        limits: Limits each task kind asks for (default: the envelope defaults).

    Raises:
        EnvelopeError: a changed markdown file has no inline content.
        BlobMismatchError: inline content does not match its ``blob_oid``.
    """
    changed = set(event.changed_paths)
    module_digest = modules[MARKDOWN_COMPILE]
    task_limits = (limits or {}).get(MARKDOWN_COMPILE) or Limits()
    tasks: list[TaskRequest] = []
    for blob in sorted(event.blobs, key=lambda b: b.path):
        if blob.path not in changed or not blob.path.endswith(".md"):
            continue
        if blob.content is None:
            raise EnvelopeError(f"blobs[path={blob.path!r}].content is required for markdown files")
        verify_blob(blob.path, blob.blob_oid, blob.content.encode())
        task_input = msgspec.to_builtins(MarkdownInput(path=blob.path, content=blob.content))
        tasks.append(
            derive_task(
                source_key=source_key,
                kind=MARKDOWN_COMPILE,
                task_input=task_input,
                module_digest=module_digest,
                limits=task_limits,
                source_event_id=event.event_id,
                repository_id=event.repository_id,
                commit_sha=event.new_commit_sha,
                path=blob.path,
                logical_time=event.occurred_at,
            )
        )
    return tasks


class PlannerHandler:
    """Handles git events: decode, derive tasks, publish them; the worker settles.

    Args:
        subjects: Subject scheme to publish tasks under.
        modules: Module digest per task kind.
        boundary: The planner's publish boundary.
        limits: Limits per task kind.
        backoff_s: Retry delay after the n-th failed delivery.
        publish_timeout_s: Bound on waiting for PubAcks.
        observer: Receives every decision.
        role: Role name (for decision records).
        worker_id: This process's id (for decision records).
        content: Resolves blobs sent by ``ref`` (None: only inline content is accepted).
    """

    def __init__(
        self,
        subjects: Subjects,
        modules: Mapping[str, str],
        boundary: PublishBoundary,
        *,
        limits: Mapping[str, Limits] | None = None,
        backoff_s: tuple[float, ...] = (1.0, 5.0, 30.0),
        publish_timeout_s: float = 5.0,
        observer: Observer | None = None,
        role: str = "planner",
        worker_id: str = "",
        content: ContentStore | None = None,
    ) -> None:
        self._subjects = subjects
        self._modules = dict(modules)
        self._limits = dict(limits or {})
        self._boundary = boundary
        self._backoff_s = backoff_s
        self._publish_timeout_s = publish_timeout_s
        self._observer: Observer = observer or LogObserver()
        self._role = role
        self._worker_id = worker_id
        self._content = content

    async def plan(self, delivery: Delivery) -> tuple[GitEvent, list[TaskRequest]]:
        """Decode the event in ``delivery``, resolve blob refs, derive its tasks.

        The event's ``event_id`` is the source key, not the ``Nats-Msg-Id``
        header: the tasks are a function of the payload alone, so a requeued
        or re-published event derives the same task keys.

        Raises:
            GitStoreAgentsError: the event is malformed, its blobs do not verify,
                or (retryable) the content store is unreachable.
        """
        headers.check_headers(headers.read_headers(delivery.headers), "GitEvent")
        event = await resolve_blobs(decode(delivery.data, GitEvent), self._content)
        return event, plan_tasks(event, event.event_id, self._modules, self._limits)

    async def __call__(self, delivery: Delivery) -> Decision:
        """Plan the tasks of one git event delivery and publish them."""
        trail: list[Outbound] = []
        annotate(role=self._role)
        with self._observer.stage(Stage.DECODE, delivery.subject):
            try:
                event, tasks = await self.plan(delivery)
            except GitStoreAgentsError as exc:
                if exc.retryable:
                    # An unreachable content store may answer later; nothing else will.
                    return await self._retry(
                        delivery, _event_id(delivery.data), exc.code, exc.message, Stage.DECODE
                    )
                return await self._permanent(delivery, trail, exc)
        annotate(event_id=event.event_id)
        trail += self._decide(
            delivery,
            AuditDecision.EVENT_RECEIVED,
            event_id=event.event_id,
            refs={
                "repository_id": event.repository_id,
                "new_commit_sha": event.new_commit_sha,
                "changed_paths": str(len(event.changed_paths)),
                "blobs": str(len(event.blobs)),
            },
        )
        received = list(trail)
        # Decided before the publish and stored with the tasks: the record
        # lists every task, so `trace` and the status API know them before
        # they run.
        trail += self._decide(
            delivery,
            AuditDecision.TASKS_PLANNED,
            event_id=event.event_id,
            refs={
                "tasks": str(len(tasks)),
                **{
                    f"{PLANNED_REF}{t.task_id}": planned_ref(t.kind, t.idempotency_key, t.path)
                    for t in tasks
                },
            },
        )
        # The API request behind the push: the event's header, else its field.
        request_id = headers.passed_request_id(delivery.headers) or event.request_id
        outbound = [
            Outbound(
                subject=self._subjects.task(task.kind),
                payload=canonical_json(task),
                headers=headers.task_headers(task, request_id=request_id),
            )
            for task in tasks
        ]
        with self._observer.stage(Stage.PUBLISH, delivery.subject):
            try:
                await publish_confirmed(
                    self._boundary, [*outbound, *trail], timeout_s=self._publish_timeout_s
                )
            except PublishRefusedError as exc:
                # Refused by the boundary or the server: retrying cannot help. The
                # tasks-planned record was not stored, so it is not filed either.
                return await self._permanent(delivery, received, exc, stage=Stage.PUBLISH)
            except PublishFailedError as exc:
                return await self._retry(
                    delivery, event.event_id, exc.code, exc.message, Stage.PUBLISH
                )
        return Decision(settle=Settle.ACK, reason=f"{len(tasks)} tasks")

    async def _retry(
        self, delivery: Delivery, event_id: str | None, code: str, message: str, stage: Stage
    ) -> Decision:
        """Record the retry (best effort: NATS may be what failed) and nak with backoff."""
        delay = retry_delay_s(self._backoff_s, delivery.num_delivered)
        trail = self._decide(
            delivery,
            AuditDecision.RETRIED,
            event_id=event_id,
            code=code,
            reason=message,
            refs={"retry_in_s": f"{delay:g}"},
            stage=stage,
        )
        if trail:
            try:
                await publish_confirmed(
                    self._boundary, trail, timeout_s=self._publish_timeout_s, span=False
                )
            except (PublishFailedError, PublishRefusedError) as exc:
                log.warning("decision records not stored", error=str(exc))
        return Decision(settle=Settle.NAK, nak_delay_s=delay, code=code, reason=message)

    async def _permanent(
        self,
        delivery: Delivery,
        trail: list[Outbound],
        exc: GitStoreAgentsError,
        *,
        stage: Stage = Stage.DECODE,
    ) -> Decision:
        event_id = _event_id(delivery.data)
        annotate(event_id=event_id)
        trail += self._decide(
            delivery,
            AuditDecision.FAILED,
            event_id=event_id,
            code=exc.code,
            reason=exc.message,
            stage=stage,
        )
        diagnostic = FailureDiagnostic(
            kind=GIT_PUSH,
            stage=stage,
            code=exc.code,
            message=exc.message,
            attempt=delivery.num_delivered,
            retryable=False,
            source_event_id=event_id,
            occurred_at=rfc3339(utc_now()),
        )
        message = Outbound(
            subject=self._subjects.failure(GIT_PUSH),
            payload=canonical_json(diagnostic),
            headers={
                headers.MSG_ID: f"failure:{sha256_digest(delivery.data)[7:]}:{stage}:{exc.code}",
                headers.CONTENT_TYPE: headers.JSON,
            },
        )
        try:
            await publish_confirmed(
                self._boundary, [message, *trail], timeout_s=self._publish_timeout_s
            )
        except (PublishFailedError, PublishRefusedError) as failed:
            return await self._retry(delivery, event_id, failed.code, failed.message, Stage.PUBLISH)
        return Decision(settle=Settle.TERM, code=exc.code, reason=exc.message)

    def _decide(
        self,
        delivery: Delivery,
        decision: AuditDecision,
        *,
        event_id: str | None,
        code: str = "ok",
        reason: str = "",
        refs: dict[str, str] | None = None,
        stage: Stage | None = None,
    ) -> list[Outbound]:
        record = DecisionRecord(
            decision=decision,
            role=self._role,
            worker_id=self._worker_id,
            code=code,
            reason=reason,
            stream=delivery.stream,
            stream_seq=delivery.stream_seq,
            attempt=delivery.num_delivered,
            event_id=event_id,
            kind=GIT_PUSH,
            refs=refs or {},
            stage=stage,
            at=rfc3339(utc_now()),
        )
        return list(self._observer.decided(record))


class _EventId(msgspec.Struct):
    event_id: str | None = None


def _event_id(data: bytes) -> str | None:
    """The event id of a payload that failed to decode as a whole, if it has one."""
    try:
        return msgspec.json.decode(data, type=_EventId).event_id
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
