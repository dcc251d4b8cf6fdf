"""Envelopes: the msgspec contracts between the control plane and the workers.

Every envelope is a frozen msgspec Struct encoded as canonical JSON (sorted
keys, compact), so its sha256 is the same in Python and in Go.
"""

from . import _headers as headers
from ._audit import AuditDecision, AuditRecord
from ._canonical import canonical_digest, canonical_json, sha256_digest
from ._codec import EnvelopeError, decode
from ._failure import DeadLetter, FailureDiagnostic, FieldError, Stage
from ._git_blob import BlobMismatchError, git_blob_oid, verify_blob
from ._git_event import Blob, GitEvent
from ._subjects import SubjectError, Subjects, subject_token, task_kind
from ._task import (
    Limits,
    MarkdownInput,
    TaskRequest,
    Usage,
    ValidationRequest,
    derive_idempotency_key,
)

__all__ = [
    "AuditDecision",
    "AuditRecord",
    "Blob",
    "BlobMismatchError",
    "DeadLetter",
    "EnvelopeError",
    "FailureDiagnostic",
    "FieldError",
    "GitEvent",
    "Limits",
    "MarkdownInput",
    "Stage",
    "SubjectError",
    "Subjects",
    "TaskRequest",
    "Usage",
    "ValidationRequest",
    "canonical_digest",
    "canonical_json",
    "decode",
    "derive_idempotency_key",
    "git_blob_oid",
    "headers",
    "sha256_digest",
    "subject_token",
    "task_kind",
    "verify_blob",
]
