"""Envelopes: the msgspec contracts between the control plane and the workers.

Every envelope is a frozen msgspec Struct with a ``schema_version``, decoded
only through ``decode`` (bounded, exact, one error type) and encoded as
canonical JSON (sorted keys, compact, no floats), so its sha256 is the same in
Python and in Go. ``docs/contracts.md`` is the reference for the Go side;
``schemas/`` holds the JSON Schemas ``gitstore-agents schema export`` writes.
"""

from . import _headers as headers
from ._audit import AuditBatch, AuditDecision, AuditRecord
from ._canonical import (
    CanonicalFormError,
    canonical_digest,
    canonical_json,
    encode_decoded,
    is_digest,
    sha256_digest,
)
from ._catalog import (
    API_VERSION,
    EXIT_REJECTED,
    RESOURCE_KINDS,
    CatalogResource,
    CompiledResource,
    CompiledSource,
    FieldError,
    MdastNode,
    ResourceMetadata,
    ValidationErrors,
)
from ._codec import (
    MAX_ENVELOPE_BYTES,
    SUPPORTED_MAJOR,
    EnvelopeError,
    SchemaVersionError,
    canonicalize,
    decode,
    decode_json,
)
from ._content import (
    CONTENT_BUCKET,
    DEFAULT_INLINE_LIMIT,
    DEFAULT_MAX_CONTENT_BYTES,
    ContentDigestMismatchError,
    ContentError,
    ContentMissingError,
    ContentStore,
    ContentStoreUnavailableError,
    ContentTooLargeError,
    Placement,
    object_name,
    resolve_blobs,
    resolve_task_input,
)
from ._failure import DeadLetter, FailureDiagnostic, Stage
from ._git_blob import BlobMismatchError, git_blob_oid, verify_blob
from ._git_event import Blob, GitEvent
from ._schema import SCHEMA_TYPES, export_schemas, json_schema, schema_files, stale_schemas
from ._subjects import (
    REQUEUED_TOKEN,
    SubjectError,
    Subjects,
    event_token,
    input_token,
    requeue_slot,
    slot_of,
    slot_token,
    subject_token,
    task_kind,
)
from ._task import (
    CatalogEnrichInput,
    ExtensionRef,
    ExtensionRunInput,
    Limits,
    MarkdownInput,
    TaskRequest,
    Usage,
    ValidationRequest,
    derive_idempotency_key,
)
from ._types import format_timestamp

__all__ = [
    "API_VERSION",
    "CONTENT_BUCKET",
    "DEFAULT_INLINE_LIMIT",
    "DEFAULT_MAX_CONTENT_BYTES",
    "EXIT_REJECTED",
    "MAX_ENVELOPE_BYTES",
    "REQUEUED_TOKEN",
    "RESOURCE_KINDS",
    "SCHEMA_TYPES",
    "SUPPORTED_MAJOR",
    "AuditBatch",
    "AuditDecision",
    "AuditRecord",
    "Blob",
    "BlobMismatchError",
    "CanonicalFormError",
    "CatalogEnrichInput",
    "CatalogResource",
    "CompiledResource",
    "CompiledSource",
    "ContentDigestMismatchError",
    "ContentError",
    "ContentMissingError",
    "ContentStore",
    "ContentStoreUnavailableError",
    "ContentTooLargeError",
    "DeadLetter",
    "EnvelopeError",
    "ExtensionRef",
    "ExtensionRunInput",
    "FailureDiagnostic",
    "FieldError",
    "GitEvent",
    "Limits",
    "MarkdownInput",
    "MdastNode",
    "Placement",
    "ResourceMetadata",
    "SchemaVersionError",
    "Stage",
    "SubjectError",
    "Subjects",
    "TaskRequest",
    "Usage",
    "ValidationErrors",
    "ValidationRequest",
    "canonical_digest",
    "canonical_json",
    "canonicalize",
    "decode",
    "decode_json",
    "derive_idempotency_key",
    "encode_decoded",
    "event_token",
    "export_schemas",
    "format_timestamp",
    "git_blob_oid",
    "headers",
    "input_token",
    "is_digest",
    "json_schema",
    "object_name",
    "requeue_slot",
    "resolve_blobs",
    "resolve_task_input",
    "schema_files",
    "sha256_digest",
    "slot_of",
    "slot_token",
    "stale_schemas",
    "subject_token",
    "task_kind",
    "verify_blob",
]
