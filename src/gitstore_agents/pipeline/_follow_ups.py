"""Follow-up tasks: work that needs a compiled resource, derived from its compile task.

When a ``markdown.compile`` task succeeds, its role publishes (with the
validation request, before acking) one ``catalog.enrich`` task and one
``extension.run`` task per configured extension. Their keys descend from the
compile task's key, so a replay derives the same follow-ups and a new module
(of either task) derives new ones.

A follow-up's input embeds the compile output, which is already canonical:
its bytes are spliced between the other (sorted) keys instead of being
decoded, walked and encoded again.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from ..config import EXTENSION_RUN, ExtensionConfig, LimitsConfig
from ..envelopes import TaskRequest, canonical_json
from ._derive import Derived, derive_task


class FollowUpSpec(msgspec.Struct, frozen=True, kw_only=True):
    """How to derive follow-ups of one kind.

    Attributes:
        kind: Follow-up task kind.
        module_digest: Module the follow-up runs (for ``extension.run``: the
            default for extensions without their own module).
        limits: The follow-up kind's limits (scaled to each input's size).
        extensions: For ``extension.run``: (extension, its module digest).
    """

    kind: str
    module_digest: str
    limits: LimitsConfig
    extensions: tuple[tuple[ExtensionConfig, str], ...] = ()


class _Extension(msgspec.Struct, frozen=True):
    name: str
    version: str


def follow_up_tasks(
    parent: TaskRequest, output: bytes, specs: Sequence[FollowUpSpec]
) -> list[Derived]:
    """The follow-up tasks of ``parent`` given its canonical output bytes.

    A pure function of its arguments: redelivered, replayed or duplicated
    parents derive byte-identical follow-ups with the same idempotency keys.

    Raises:
        CanonicalFormError: an extension's configured parameters have no
            canonical form (a float in the YAML).
    """
    tasks: list[Derived] = []
    compiled = b'{"compiled":' + output
    for spec in specs:
        if spec.kind == EXTENSION_RUN:
            for extension, digest in spec.extensions:
                # Keys in canonical (sorted) order: compiled, extension, parameters.
                task_input = (
                    compiled
                    + b',"extension":'
                    + canonical_json(_Extension(extension.name, extension.version))
                    + b',"parameters":'
                    + canonical_json(extension.parameters)
                    + b"}"
                )
                tasks.append(_derive(parent, spec.kind, task_input, digest, spec.limits))
        else:
            task_input = compiled + b',"parameters":{}}'
            tasks.append(_derive(parent, spec.kind, task_input, spec.module_digest, spec.limits))
    return tasks


def _derive(
    parent: TaskRequest, kind: str, task_input: bytes, module: str, limits: LimitsConfig
) -> Derived:
    return derive_task(
        source_key=parent.idempotency_key,
        kind=kind,
        input_bytes=task_input,
        module_digest=module,
        limits=limits,
        source_event_id=parent.source_event_id,
        repository_id=parent.repository_id,
        commit_sha=parent.commit_sha,
        path=parent.path,
        logical_time=parent.logical_time,
        parent_key=parent.idempotency_key,
    )
