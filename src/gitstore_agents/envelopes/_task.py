"""Tasks derived from git events, and the results they produce."""

from __future__ import annotations

from typing import Any

import msgspec

from ._canonical import canonical_json, sha256_digest

SCHEMA_VERSION = "1.0"


class MarkdownInput(msgspec.Struct, frozen=True, kw_only=True):
    """stdin document of a ``markdown.compile`` task.

    Attributes:
        path: The catalog file the task is about.
        content: The file's text.
        parameters: Task-kind specific settings; part of the input digest.
    """

    path: str
    content: str
    parameters: dict[str, Any] = msgspec.field(default_factory=dict)


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    """Resource limits one task run asks for (within the role's ceilings).

    Attributes:
        fuel: Deterministic CPU budget in wasmtime fuel units.
        timeout_ms: Wall-clock deadline for one run.
        memory_bytes: Cap on the module's linear memory.
    """

    fuel: int = 200_000_000
    timeout_ms: int = 2_000
    memory_bytes: int = 64 * 1024 * 1024


class TaskRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One unit of work: run ``module_digest`` with ``input`` on stdin.

    Every field is a pure function of the source event and the module, so a
    replayed event derives byte-identical tasks (and the same idempotency key).

    Attributes:
        path: The catalog file this task is about (for diagnostics and policy).
        input: The module's stdin document, inline.
        input_ref: Instead of ``input``: ``sha256:<hex>`` of the canonical input
            stored in the content object store (large inputs).
        input_digest: ``sha256`` of the canonical JSON of the input document.
        parent_key: Idempotency key of the task whose output this task consumes.
    """

    schema_version: str = SCHEMA_VERSION
    task_id: str
    kind: str
    idempotency_key: str
    source_event_id: str
    repository_id: str
    commit_sha: str
    path: str
    module_digest: str
    input: dict[str, Any] | None = None
    input_ref: str | None = None
    input_digest: str
    limits: Limits = msgspec.field(default_factory=Limits)
    logical_time: str
    seed: int
    parent_key: str | None = None


class Usage(msgspec.Struct, frozen=True, kw_only=True):
    """Resources one sandbox run consumed."""

    fuel: int
    wall_time_us: int
    peak_memory_bytes: int


class ValidationRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A proposed change handed to the control plane's validation pipeline.

    ``output`` is the module's output in canonical JSON; ``output_digest`` is its
    sha256, the value ``replay --verify`` compares.
    """

    schema_version: str = SCHEMA_VERSION
    idempotency_key: str
    task_id: str
    kind: str
    source_event_id: str
    repository_id: str
    commit_sha: str
    path: str
    module_digest: str
    input_digest: str
    output: msgspec.Raw
    output_digest: str
    usage: Usage


def derive_idempotency_key(
    source_key: str, kind: str, input_digest: str, module_digest: str
) -> str:
    """Idempotency key of a derived task.

    ``sha256`` of the canonical JSON array ``[source_key, kind, input_digest,
    module_digest]``: replays and duplicates of the same event derive the same
    key, while a new module digest derives a new one (a fresh result).
    """
    return sha256_digest(canonical_json([source_key, kind, input_digest, module_digest]))
