"""Tasks derived from git events, their stdin documents, and the results they produce."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from ._canonical import canonical_json, sha256_digest
from ._catalog import CompiledResource
from ._types import (
    Count,
    Digest,
    Kind,
    Name,
    ObjectId,
    Positive,
    RepoPath,
    SchemaVersion,
    Timestamp,
    Token,
    Uint64,
    Uuid,
)

SCHEMA_VERSION = "1.0"
VALIDATION_SCHEMA_VERSION = "1.1"
"""``ValidationRequest``'s version: 1.1 added ``output_ref`` (an output too
large for one message travels through the content store)."""

Parameters = Annotated[
    dict[str, Any],
    msgspec.Meta(description="Task-kind specific settings; part of the input digest."),
]


class MarkdownInput(msgspec.Struct, frozen=True, kw_only=True):
    """stdin document of a ``markdown.compile`` task.

    Attributes:
        path: The catalog file the task is about.
        content: The file's text.
        parameters: Task-kind specific settings; part of the input digest.
    """

    path: RepoPath
    content: str
    parameters: Parameters = msgspec.field(default_factory=dict)


class CatalogEnrichInput(msgspec.Struct, frozen=True, kw_only=True):
    """stdin document of a ``catalog.enrich`` task.

    Attributes:
        compiled: The ``markdown.compile`` output the enrichment starts from.
        parameters: Task-kind specific settings; part of the input digest.
    """

    compiled: CompiledResource
    parameters: Parameters = msgspec.field(default_factory=dict)


class ExtensionRef(msgspec.Struct, frozen=True, kw_only=True):
    """Which third-party extension an ``extension.run`` task runs.

    Attributes:
        name: Extension name as registered in the policy.
        version: Extension version.
    """

    name: Name
    version: Name

    @property
    def label(self) -> str:
        """``name@version``, how trails, status answers and logs name it."""
        return f"{self.name}@{self.version}"


class ExtensionRunInput(msgspec.Struct, frozen=True, kw_only=True):
    """stdin document of an ``extension.run`` task.

    Attributes:
        extension: The extension's name and version.
        compiled: The ``markdown.compile`` output the extension reads.
        parameters: Extension settings; part of the input digest.
    """

    extension: ExtensionRef
    compiled: CompiledResource
    parameters: Parameters = msgspec.field(default_factory=dict)


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    """Resource limits one task run asks for (within the role's ceilings).

    Attributes:
        fuel: Deterministic CPU budget in wasmtime fuel units.
        timeout_ms: Wall-clock deadline for one run.
        memory_bytes: Cap on the module's linear memory.
    """

    fuel: Positive = 200_000_000
    timeout_ms: Positive = 2_000
    memory_bytes: Positive = 64 * 1024 * 1024


class TaskRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One unit of work: run ``module_digest`` with ``input`` on stdin.

    Published to its slot ``<prefix>.tasks.<kind>.<key>`` with ``Nats-Msg-Id:
    <idempotency_key>``. An input too large for one message travels through
    the content store (``input_ref``) under the same ``input_digest``, so the
    key is the same either way.
    Every field is a pure function of the source event and the module, so a
    replayed event derives byte-identical tasks (and the same idempotency key).

    Attributes:
        schema_version: Contract version, ``1.0``.
        task_id: Short id of the task (a subject-safe token).
        kind: Task kind, e.g. ``markdown.compile``.
        idempotency_key: ``derive_idempotency_key(source key, kind, input_digest,
            module_digest)``.
        source_event_id: The git event this task descends from.
        repository_id: Repository of the source event.
        commit_sha: Commit the input was read from.
        path: The catalog file this task is about (for diagnostics and policy).
        module_digest: ``sha256`` of the WASI module's bytes.
        input: The module's stdin document, inline.
        input_ref: Instead of ``input``: ``sha256:<hex>`` of the canonical input
            stored in the content object store (large inputs).
        input_digest: ``sha256`` of the canonical JSON of the input document.
        limits: Resource limits of one run.
        logical_time: The time the module's clock reports (the event's ``occurred_at``).
        seed: Seed of the module's random source (uint64).
        parent_key: Idempotency key of the task whose output this task consumes.
    """

    schema_version: SchemaVersion = SCHEMA_VERSION
    task_id: Token
    kind: Kind
    idempotency_key: Digest
    source_event_id: Uuid
    repository_id: Uuid
    commit_sha: ObjectId
    path: RepoPath
    module_digest: Digest
    input: dict[str, Any] | None = None
    input_ref: Digest | None = None
    input_digest: Digest
    limits: Limits = msgspec.field(default_factory=Limits)
    logical_time: Timestamp
    seed: Uint64
    parent_key: Digest | None = None


class Usage(msgspec.Struct, frozen=True, kw_only=True):
    """Resources one sandbox run consumed.

    Attributes:
        fuel: Fuel consumed; identical across runs of the same input and module.
        wall_time_us: Wall-clock time of the run, microseconds.
        peak_memory_bytes: Largest linear memory size reached.
    """

    fuel: Count
    wall_time_us: Count
    peak_memory_bytes: Count


Output = Annotated[
    msgspec.Raw,
    msgspec.Meta(
        description="The module's stdout document in canonical JSON, embedded verbatim: "
        "sha256 of exactly these bytes is output_digest (Go: decode into json.RawMessage).",
    ),
]


class ValidationRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A proposed change handed to the control plane's validation pipeline.

    Published to its slot ``<prefix>.validation.<kind>.<key>`` with
    ``Nats-Msg-Id: <idempotency_key>``. ``output`` is the module's output in
    canonical JSON (for ``markdown.compile`` a ``CompiledResource``);
    ``output_digest`` is the sha256 of those bytes, the value ``replay
    --verify`` compares. An output too large to travel in one message (the
    server's max payload) is stored in the content store instead, under its
    digest: then ``output`` is absent and ``output_ref`` (= ``output_digest``)
    names the object. Exactly one of the two is present.

    Attributes:
        schema_version: Contract version, ``1.1``.
        idempotency_key: The task's idempotency key.
        task_id: The task's id.
        kind: The task's kind.
        source_event_id: The git event the task descends from.
        repository_id: Repository of the source event.
        commit_sha: Commit the input was read from.
        path: The catalog file the output is about.
        module_digest: Module that produced the output.
        extension: For ``extension.run``: which extension the module ran as
            (name and version, read from the task's input).
        input_digest: Input the module read.
        output: The output document, canonical JSON (absent when by ref).
        output_ref: ``sha256:<hex>`` of the output stored in the content
            store (present only when the output is not inline).
        output_digest: ``sha256`` of the output's bytes.
        usage: Resources the run consumed.
    """

    schema_version: SchemaVersion = VALIDATION_SCHEMA_VERSION
    idempotency_key: Digest
    task_id: Token
    kind: Kind
    source_event_id: Uuid
    repository_id: Uuid
    commit_sha: ObjectId
    path: RepoPath
    module_digest: Digest
    extension: ExtensionRef | msgspec.UnsetType = msgspec.UNSET
    input_digest: Digest
    # UNSET, not None: absent from the JSON when not used, so an inline
    # result's bytes are what they were before ``output_ref`` existed.
    output: Output | msgspec.UnsetType = msgspec.UNSET
    output_ref: Digest | msgspec.UnsetType = msgspec.UNSET
    output_digest: Digest
    usage: Usage


def derive_idempotency_key(
    source_key: str, kind: str, input_digest: str, module_digest: str
) -> str:
    """Idempotency key of a derived task.

    ``sha256`` of the canonical JSON array ``[source_key, kind, input_digest,
    module_digest]`` (four strings, e.g. ``["0193…","markdown.compile","sha256:…",
    "sha256:…"]``), written ``sha256:<hex>``. Replays and duplicates of the same
    event derive the same key, while a new module digest derives a new one (a
    fresh result). For a task derived from another task's output, ``source_key``
    is the parent task's idempotency key.
    """
    return sha256_digest(canonical_json([source_key, kind, input_digest, module_digest]))
