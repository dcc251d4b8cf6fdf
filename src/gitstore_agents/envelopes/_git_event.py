"""The git event GitStore's Go control plane publishes for every push."""

from __future__ import annotations

import msgspec

from ._types import (
    Digest,
    HeaderValue,
    Name,
    ObjectId,
    RefName,
    RepoPath,
    SchemaVersion,
    Timestamp,
    Uuid,
)

SCHEMA_VERSION = "1.0"


class Blob(msgspec.Struct, frozen=True, kw_only=True):
    """One changed file of a push: its path, git blob id, and content inline or by reference.

    Exactly one of ``content`` and ``ref`` is set. ``blob_oid`` is checked with
    git's blob hashing against the resolved bytes; a mismatch is the permanent
    error ``blob-oid-mismatch``.

    Attributes:
        path: Repository-relative path, e.g. ``products/trail-runner.md``.
        blob_oid: Git blob object id of the new content (``git hash-object``).
        content: The file's bytes as UTF-8 text, inline while the file is small
            enough (up to the publisher's inline limit).
        ref: Instead of ``content``: ``sha256:<hex>`` of the file's raw bytes,
            stored beforehand in the ``gitstore-content`` object store under the
            object name ``<hex>``.
    """

    path: RepoPath
    blob_oid: ObjectId
    content: str | None = None
    ref: Digest | None = None


class GitEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A push to a catalog repository, as the control plane reports it.

    Published to ``<prefix>.events.git.push.<repository_id>`` with
    ``Nats-Msg-Id: <event_id>``. Field names mirror GitStore's
    ``AdmitResourcesRequest`` so the Go side fills them without translation.

    Attributes:
        schema_version: Contract version, ``1.0``.
        event_id: UUID of this push event; also its ``Nats-Msg-Id``, the
            idempotency key every derived task descends from.
        repository_id: UUID of the catalog repository (a subject token).
        ref_name: The updated ref, e.g. ``refs/heads/main``.
        old_commit_sha: Commit before the push (all zeros for a new ref).
        new_commit_sha: Commit after the push.
        changed_paths: Every path the push changed (added, modified or deleted).
        actor_subject: Who pushed, as the control plane's auth names them.
        blobs: New content of the changed files the workers need; deleted and
            binary files may be absent.
        occurred_at: When the control plane accepted the push (UTC). Tasks use
            it as their logical time, so it must not change on a re-publish.
        request_id: The API request that caused the push (``X-Request-ID``).
    """

    schema_version: SchemaVersion = SCHEMA_VERSION
    event_id: Uuid
    repository_id: Uuid
    ref_name: RefName
    old_commit_sha: ObjectId
    new_commit_sha: ObjectId
    changed_paths: list[RepoPath]
    actor_subject: Name
    blobs: list[Blob]
    occurred_at: Timestamp
    request_id: HeaderValue | None = None
