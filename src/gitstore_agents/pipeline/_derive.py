"""One rule for every task we derive: key, id and seed come from the same digest.

The planner derives ``markdown.compile`` tasks from git events and the compile
role derives follow-ups from compile results; both go through ``derive_task``
so a task's ``task_id`` and sandbox ``seed`` are always the same function of
its idempotency key (docs/contracts.md), which is itself a function of
(source key, kind, input digest, module digest).
"""

from __future__ import annotations

from typing import Any

from ..envelopes import Limits, TaskRequest, canonical_digest, derive_idempotency_key


def derive_task(
    *,
    source_key: str,
    kind: str,
    task_input: dict[str, Any],
    module_digest: str,
    limits: Limits,
    source_event_id: str,
    repository_id: str,
    commit_sha: str,
    path: str,
    logical_time: str,
    parent_key: str | None = None,
) -> TaskRequest:
    """The task that runs ``module_digest`` on ``task_input``, keyed under ``source_key``.

    A pure function of its arguments: a replayed or duplicated source derives
    a byte-identical task with the same idempotency key.
    """
    input_digest = canonical_digest(task_input)
    key = derive_idempotency_key(source_key, kind, input_digest, module_digest)
    hex_key = key.removeprefix("sha256:")
    return TaskRequest(
        task_id=hex_key[:32],
        kind=kind,
        idempotency_key=key,
        source_event_id=source_event_id,
        repository_id=repository_id,
        commit_sha=commit_sha,
        path=path,
        module_digest=module_digest,
        input=task_input,
        input_digest=input_digest,
        limits=limits,
        logical_time=logical_time,
        seed=int(hex_key[:16], 16),
        parent_key=parent_key,
    )
