"""The planner role: a git event becomes tasks, deterministically.

Each task goes to its slot, ``<prefix>.tasks.<kind>.<key>``: an event
replayed or published again derives the same tasks with the same keys, finds
their slots taken and stores nothing new.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import msgspec

from .. import codes
from ..config import GIT_PUSH, MARKDOWN_COMPILE, LimitsConfig
from ..consumers import Decision, Delivery, Publisher, Settle
from ..envelopes import (
    AuditDecision,
    ContentStore,
    EnvelopeError,
    GitEvent,
    MarkdownInput,
    Stage,
    Subjects,
    decode,
    event_token,
    headers,
    resolve_blobs,
    slot_of,
    slot_token,
    verify_blob,
)
from ..errors import GitStoreAgentsError
from ..guardrails import Outbound
from ..telemetry import PLANNED_REF, annotate, planned_ref
from ._carry import Carrier
from ._derive import Derived, derive_task
from ._report import About, Reporter, classify, envelope_headers

_ENCODER = msgspec.json.Encoder(order="sorted")


def plan_tasks(
    event: GitEvent,
    source_key: str,
    modules: Mapping[str, str],
    limits: Mapping[str, LimitsConfig] | None = None,
) -> list[Derived]:
    """Derive the tasks for ``event``: one ``markdown.compile`` per changed ``*.md`` blob.

    The result depends only on its arguments, so a replayed or duplicated event
    derives byte-identical tasks with the same idempotency keys.

    Args:
        event: The decoded git event.
        source_key: The event's idempotency key (its ``event_id``).
        modules: Module digest to run for each task kind.
        limits: Limits of each task kind, scaled to each input (default: the
            envelope defaults).

    Raises:
        EnvelopeError: a changed markdown file has no inline content.
        BlobMismatchError: inline content does not match its ``blob_oid``.
    """
    changed = set(event.changed_paths)
    module_digest = modules[MARKDOWN_COMPILE]
    task_limits = (limits or {}).get(MARKDOWN_COMPILE) or LimitsConfig()
    tasks: list[Derived] = []
    for blob in sorted(event.blobs, key=lambda b: b.path):
        if blob.path not in changed or not blob.path.endswith(".md"):
            continue
        if blob.content is None:
            raise EnvelopeError(f"blobs[path={blob.path!r}].content is required for markdown files")
        verify_blob(blob.path, blob.blob_oid, blob.content.encode())
        tasks.append(
            derive_task(
                source_key=source_key,
                kind=MARKDOWN_COMPILE,
                # Decoded strings, sorted keys: the encoder writes the canonical form.
                input_bytes=_ENCODER.encode(MarkdownInput(path=blob.path, content=blob.content)),
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
    """Handles git events: decode, derive tasks, store them; the worker settles.

    Args:
        subjects: Subject scheme to publish tasks under.
        modules: Module digest per task kind.
        publisher: The planner's publisher.
        reporter: The planner's report path.
        limits: Limits per task kind.
        content: Resolves blobs sent by ``ref`` (None: only inline content is accepted).
    """

    def __init__(
        self,
        subjects: Subjects,
        modules: Mapping[str, str],
        publisher: Publisher,
        reporter: Reporter,
        *,
        limits: Mapping[str, LimitsConfig] | None = None,
        content: ContentStore | None = None,
    ) -> None:
        self._subjects = subjects
        self._modules = dict(modules)
        self._limits = dict(limits or {})
        self._publisher = publisher
        self._report = reporter
        self._content = content
        self._carrier = Carrier(publisher, content)

    async def plan(self, delivery: Delivery) -> tuple[GitEvent, list[Derived]]:
        """Decode the event in ``delivery``, resolve blob refs, derive its tasks.

        The event's ``event_id`` is the source key, not the ``Nats-Msg-Id``
        header: the tasks are a function of the payload alone, so a requeued
        or re-published event derives the same task keys.

        Raises:
            GitStoreAgentsError: the event is malformed, its subject names
                another repository, its blobs do not verify, or (retryable) the
                content store is unreachable.
        """
        headers.check_headers(headers.read_headers(delivery.headers), "GitEvent")
        event = decode(delivery.data, GitEvent)
        if slot_of(delivery.subject) != event.repository_id:
            raise EnvelopeError(
                f"GitEvent: subject {delivery.subject!r} is not the repository's subject "
                f"(repository_id={event.repository_id}; events go to "
                "<prefix>.events.git.push.<repository_id>)",
                field="$.repository_id",
                code="subject-mismatch",
            )
        event = await resolve_blobs(event, self._content)
        return event, plan_tasks(event, event.event_id, self._modules, self._limits)

    async def __call__(self, delivery: Delivery) -> Decision:
        """Plan the tasks of one git event delivery and store them."""
        report = self._report
        about = About.unread(delivery, GIT_PUSH)
        annotate(role=report.role)
        try:
            event, tasks = await self.plan(delivery)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            about = about.event(event_id=_event_id(delivery.data))
            annotate(event_id=about.event_id)
            return await report.failed(about, classify(exc, Stage.DECODE))
        about = about.event(event)
        annotate(event_id=event.event_id)
        try:
            # An input too large for one message goes by ref (same key).
            tasks = [await self._carrier.task(t) for t in tasks]
        except Exception as exc:
            return await report.failed(about, classify(exc, Stage.PUBLISH))
        messages = [
            Outbound(
                subject=self._subjects.task(t.task.kind, slot_token(t.task.idempotency_key)),
                payload=t.payload,
                headers=envelope_headers(
                    t.task.idempotency_key, t.task.schema_version, about.request_id
                ),
            )
            for t in tasks
        ]
        try:
            published = await self._publisher.publish(messages)
        except Exception as exc:
            return await report.failed(about, classify(exc, Stage.PUBLISH))
        new = sum(1 for p in published if not p.stored_before)
        record = report.record(
            about,
            # Every task stored before: a replay or a second copy of the event.
            AuditDecision.DUPLICATE_SKIPPED if tasks and not new else AuditDecision.TASKS_PLANNED,
            code=codes.PLANNED if tasks and not new else codes.OK,
            refs={
                "repository_id": event.repository_id,
                "new_commit_sha": event.new_commit_sha,
                "changed_paths": str(len(event.changed_paths)),
                "blobs": str(len(event.blobs)),
                "tasks": str(len(tasks)),
                "tasks_new": str(new),
                # The tasks by id, so `trace` and the status API know them before they run.
                **{
                    f"{PLANNED_REF}{t.task.task_id}": planned_ref(
                        t.task.kind, t.task.idempotency_key, t.task.path
                    )
                    for t in tasks
                },
            },
        )
        decision = Decision(
            settle=Settle.ACK,
            code=codes.OK if new or not tasks else codes.DUPLICATE,
            reason=f"{len(tasks)} tasks, {new} new",
        )
        return await report.settle([record], decision, about)


class _EventId(msgspec.Struct):
    event_id: str | None = None


_EVENT_ID = msgspec.json.Decoder(_EventId)


def _event_id(data: bytes) -> str | None:
    """The event id of a payload that failed to decode as a whole, if it has a valid one.

    Whatever the payload is (nested too deep, not JSON, a number where the id
    should be), this only ever returns an id or None: it runs on the failure
    path, which must not fail.
    """
    try:
        found = _EVENT_ID.decode(data).event_id
        return event_token(found) if found is not None else None
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError, GitStoreAgentsError):
        return None
    except Exception:
        return None
