"""One rule for every task we derive: key, id and seed come from the same digest.

The planner derives ``markdown.compile`` tasks from git events and the compile
role derives follow-ups from compile results; both go through ``derive_task``
so a task's ``task_id`` and sandbox ``seed`` are always the same function of
its idempotency key (docs/contracts.md), which is itself a function of
(source key, kind, input digest, module digest).

Inputs are passed as their canonical bytes, not as values: a follow-up's
input embeds its parent's output, already canonical, so it is spliced in
rather than walked and encoded again.
"""

from __future__ import annotations

from typing import Any, cast

import msgspec

from ..config import LimitsConfig
from ..envelopes import TaskRequest, derive_idempotency_key, sha256_digest

_ENCODER = msgspec.json.Encoder(order="sorted")


class Derived(msgspec.Struct, frozen=True, kw_only=True):
    """A derived task and its bytes.

    Attributes:
        task: The task (its ``input`` is the canonical input, embedded verbatim).
        stdin: The canonical input bytes (what the module reads).
        payload: The task's canonical JSON (what is published).
    """

    task: TaskRequest
    stdin: bytes
    payload: bytes


def derive_task(
    *,
    source_key: str,
    kind: str,
    input_bytes: bytes,
    module_digest: str,
    limits: LimitsConfig,
    source_event_id: str,
    repository_id: str,
    commit_sha: str,
    path: str,
    logical_time: str,
    parent_key: str | None = None,
) -> Derived:
    """The task that runs ``module_digest`` on ``input_bytes``, keyed under ``source_key``.

    A pure function of its arguments: a replayed or duplicated source derives
    a byte-identical task with the same idempotency key.

    Args:
        input_bytes: The canonical JSON of the task input (the caller built it
            canonically: from validated values or already canonical pieces).
        limits: The kind's limits; the task gets them scaled to its input's size.
    """
    input_digest = sha256_digest(input_bytes)
    key = derive_idempotency_key(source_key, kind, input_digest, module_digest)
    hex_key = key.removeprefix("sha256:")
    task = TaskRequest(
        task_id=hex_key[:32],
        kind=kind,
        idempotency_key=key,
        source_event_id=source_event_id,
        repository_id=repository_id,
        commit_sha=commit_sha,
        path=path,
        module_digest=module_digest,
        # Embedded verbatim when the task is encoded: the input is already canonical.
        input=cast(Any, msgspec.Raw(input_bytes)),
        input_digest=input_digest,
        limits=limits.task_limits(len(input_bytes)),
        logical_time=logical_time,
        seed=int(hex_key[:16], 16),
        parent_key=parent_key,
    )
    return Derived(task=task, stdin=input_bytes, payload=_ENCODER.encode(task))


def with_module(derived: Derived, module_digest: str) -> Derived:
    """``derived`` as it would be with ``module_digest``: same input, its own key.

    The key, id and seed follow from the new module exactly as ``derive_task``
    derives them (a candidate module's preview runs what its tasks would be).
    """
    task = derived.task
    source_key = task.parent_key or task.source_event_id
    key = derive_idempotency_key(source_key, task.kind, task.input_digest, module_digest)
    hex_key = key.removeprefix("sha256:")
    task = msgspec.structs.replace(
        task,
        task_id=hex_key[:32],
        idempotency_key=key,
        module_digest=module_digest,
        seed=int(hex_key[:16], 16),
    )
    return Derived(task=task, stdin=derived.stdin, payload=_ENCODER.encode(task))
