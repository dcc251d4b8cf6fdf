"""The planner role: a git event becomes tasks, deterministically."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
import structlog
from nats.aio.msg import Msg

from ..envelopes import (
    ContentStore,
    EnvelopeError,
    GitEvent,
    MarkdownInput,
    Subjects,
    TaskRequest,
    canonical_digest,
    canonical_json,
    decode,
    derive_idempotency_key,
    headers,
    resolve_blobs,
    verify_blob,
)
from ..errors import GitStoreAgentsError
from ..guardrails import Outbound
from ._decision import Decision, Settle

log = structlog.get_logger(__name__)

MARKDOWN_COMPILE = "markdown.compile"


def plan_tasks(event: GitEvent, source_key: str, modules: Mapping[str, str]) -> list[TaskRequest]:
    """Derive the tasks for ``event``: one ``markdown.compile`` per changed ``*.md`` blob.

    The result depends only on its arguments, so a replayed or duplicated event
    derives byte-identical tasks with the same idempotency keys.

    Args:
        event: The decoded git event.
        source_key: The event's idempotency key (its ``Nats-Msg-Id``).
        modules: Module digest to run for each task kind.

    Raises:
        EnvelopeError: a changed markdown file has no inline content.
        BlobMismatchError: inline content does not match its ``blob_oid``.
    """
    changed = set(event.changed_paths)
    module_digest = modules[MARKDOWN_COMPILE]
    tasks: list[TaskRequest] = []
    for blob in sorted(event.blobs, key=lambda b: b.path):
        if blob.path not in changed or not blob.path.endswith(".md"):
            continue
        if blob.content is None:
            raise EnvelopeError(f"blobs[path={blob.path!r}].content is required for markdown files")
        verify_blob(blob.path, blob.blob_oid, blob.content.encode())
        task_input = msgspec.to_builtins(MarkdownInput(path=blob.path, content=blob.content))
        input_digest = canonical_digest(task_input)
        key = derive_idempotency_key(source_key, MARKDOWN_COMPILE, input_digest, module_digest)
        tasks.append(
            TaskRequest(
                task_id=key.removeprefix("sha256:")[:32],
                kind=MARKDOWN_COMPILE,
                idempotency_key=key,
                source_event_id=event.event_id,
                repository_id=event.repository_id,
                commit_sha=event.new_commit_sha,
                path=blob.path,
                module_digest=module_digest,
                input=task_input,
                input_digest=input_digest,
                logical_time=event.occurred_at,
                seed=int(key.removeprefix("sha256:")[:16], 16),
            )
        )
    return tasks


class PlannerHandler:
    """Handles git events: decode, derive tasks, hand them to the worker to publish.

    Args:
        subjects: Subject scheme to publish tasks under.
        modules: Module digest per task kind.
        content: Resolves blobs sent by ``ref`` (None: only inline content is accepted).
    """

    def __init__(
        self,
        subjects: Subjects,
        modules: Mapping[str, str],
        content: ContentStore | None = None,
    ) -> None:
        self._subjects = subjects
        self._modules = dict(modules)
        self._content = content

    async def __call__(self, msg: Msg) -> Decision:
        """Plan the tasks of one git event message."""
        try:
            headers.check_headers(headers.read_headers(msg.headers), "GitEvent")
            event = await resolve_blobs(decode(msg.data, GitEvent), self._content)
            source_key = headers.get_header(msg.headers, headers.MSG_ID) or event.event_id
            tasks = plan_tasks(event, source_key, self._modules)
        except GitStoreAgentsError as exc:
            # An unreachable content store may answer later; anything else never will.
            settle = Settle.NAK if exc.retryable else Settle.TERM
            return Decision(settle=settle, nak_delay_s=1.0, reason=str(exc))
        outbound = tuple(
            Outbound(
                subject=self._subjects.task(task.kind),
                payload=canonical_json(task),
                headers={headers.MSG_ID: task.idempotency_key, headers.CONTENT_TYPE: headers.JSON},
            )
            for task in tasks
        )
        log.info("planned", event_id=event.event_id, tasks=len(outbound))
        return Decision(settle=Settle.ACK, outbound=outbound)
