"""Errors of the runtime's own infrastructure (streams, object stores, publishing).

All of them are transient: NATS being briefly unavailable is a reason to retry.
"""

from __future__ import annotations

from ..errors import GitStoreAgentsError


class ResultsUnavailableError(GitStoreAgentsError):
    """A stored result, task or diagnostic could not be read (NATS unavailable)."""

    code = "results-unavailable"
    retryable = True


class PublishFailedError(GitStoreAgentsError):
    """A publish was not confirmed by a PubAck in time (or was rejected by the server)."""

    code = "publish-failed"
    retryable = True


class ContentUnavailableError(GitStoreAgentsError):
    """A content-addressed input or module could not be fetched from its object store."""

    code = "content-unavailable"
    retryable = True


class TopologyError(GitStoreAgentsError):
    """A stream, consumer or bucket the role needs is missing or misconfigured."""

    code = "topology-missing"
    retryable = True


class AuditStreamDiffersError(GitStoreAgentsError):
    """The audit stream's settings differ from the configuration, and this identity may not
    change them (only ``audit-admin`` may: ``provision --audit-stream``)."""

    code = "audit-stream-differs"
    retryable = False
