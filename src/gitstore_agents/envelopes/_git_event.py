"""The git event GitStore's Go control plane publishes for every push."""

from __future__ import annotations

import msgspec

SCHEMA_VERSION = "1.0"


class Blob(msgspec.Struct, frozen=True, kw_only=True):
    """One changed file of a push.

    Attributes:
        path: Repository-relative path, e.g. ``products/trail-runner.md``.
        blob_oid: Git blob object id (sha1 hex) of the new content.
        content: The file's text, inline while it is small enough.
        ref: Instead of ``content``: ``sha256:<hex>`` of the file's bytes in the
            content object store.
    """

    path: str
    blob_oid: str
    content: str | None = None
    ref: str | None = None


class GitEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A push to a catalog repository, as the control plane reports it.

    Field names mirror GitStore's ``AdmitResourcesRequest`` so the Go side
    fills them without translation. ``event_id`` is also the publisher's
    ``Nats-Msg-Id``: the idempotency key every derived task descends from.
    """

    schema_version: str = SCHEMA_VERSION
    event_id: str
    repository_id: str
    ref_name: str
    old_commit_sha: str
    new_commit_sha: str
    changed_paths: list[str]
    actor_subject: str
    blobs: list[Blob]
    occurred_at: str
    request_id: str | None = None
