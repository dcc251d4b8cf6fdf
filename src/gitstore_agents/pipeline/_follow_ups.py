"""Follow-up tasks: work that needs a compiled resource, derived from its compile task.

When a ``markdown.compile`` task succeeds, its role publishes (with the
validation request, before acking) one ``catalog.enrich`` task and one
``extension.run`` task per configured extension. Their keys descend from the
compile task's key, so a replay derives the same follow-ups and a new module
(of either task) derives new ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from ..config import EXTENSION_RUN, ExtensionConfig
from ..envelopes import Limits, TaskRequest
from ._derive import derive_task


class FollowUpSpec(msgspec.Struct, frozen=True, kw_only=True):
    """How to derive follow-ups of one kind.

    Attributes:
        kind: Follow-up task kind.
        module_digest: Module the follow-up runs (for ``extension.run``: the
            default for extensions without their own module).
        limits: Limits the follow-up asks for.
        extensions: For ``extension.run``: (extension, its module digest).
    """

    kind: str
    module_digest: str
    limits: Limits
    extensions: tuple[tuple[ExtensionConfig, str], ...] = ()


def follow_up_tasks(
    parent: TaskRequest, output: Mapping[str, Any], specs: Sequence[FollowUpSpec]
) -> list[TaskRequest]:
    """The follow-up tasks of ``parent`` given its (decoded) output.

    A pure function of its arguments: redelivered, replayed or duplicated
    parents derive byte-identical follow-ups with the same idempotency keys.
    """
    tasks: list[TaskRequest] = []
    for spec in specs:
        if spec.kind == EXTENSION_RUN:
            for extension, digest in spec.extensions:
                task_input = {
                    "extension": {"name": extension.name, "version": extension.version},
                    "compiled": output,
                    "parameters": extension.parameters,
                }
                tasks.append(_derive(parent, spec.kind, task_input, digest, spec.limits))
        else:
            task_input = {"compiled": output, "parameters": {}}
            tasks.append(_derive(parent, spec.kind, task_input, spec.module_digest, spec.limits))
    return tasks


def _derive(
    parent: TaskRequest, kind: str, task_input: dict[str, Any], module: str, limits: Limits
) -> TaskRequest:
    return derive_task(
        source_key=parent.idempotency_key,
        kind=kind,
        task_input=task_input,
        module_digest=module,
        limits=limits,
        source_event_id=parent.source_event_id,
        repository_id=parent.repository_id,
        commit_sha=parent.commit_sha,
        path=parent.path,
        logical_time=parent.logical_time,
        parent_key=parent.idempotency_key,
    )
