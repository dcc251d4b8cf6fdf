"""The subject scheme, built in one place from a configurable prefix.

| subject | carries | published by |
|---|---|---|
| ``<prefix>.events.git.push.<repository_id>`` | ``GitEvent`` | the control plane |
| ``<prefix>.tasks.<kind>`` | ``TaskRequest`` | the planner |
| ``<prefix>.validation.<kind>`` | ``ValidationRequest`` | task roles |
| ``<prefix>.failures.<kind>`` | ``FailureDiagnostic`` | every role |
| ``<prefix>.dlq.<kind>`` | ``DeadLetter`` | every role |
| ``<prefix>.audit.<event_id>`` | ``AuditRecord`` | every role |

Every token that comes from data is validated: a wildcard (``*``, ``>``), a dot,
whitespace or a control character in a repository id or kind would change which
subscribers see the message, or break the protocol line.
"""

from __future__ import annotations

import re

import msgspec

from ..errors import GitStoreAgentsError
from ._types import KIND_PATTERN, TOKEN_PATTERN, UUID_PATTERN

_TOKEN = re.compile(TOKEN_PATTERN)
_KIND = re.compile(KIND_PATTERN)
_UUID = re.compile(UUID_PATTERN)
MAX_TOKEN_LENGTH = 128
MAX_KIND_LENGTH = 64


class SubjectError(GitStoreAgentsError):
    """A subject token came from data and is not safe to publish on."""

    code = "subject-invalid"
    retryable = False


def subject_token(value: str, *, field: str) -> str:
    """Return ``value`` if it is a single safe subject token.

    Raises:
        SubjectError: naming ``field`` when the value holds wildcards, dots,
            spaces or control characters, or is empty or too long.
    """
    if len(value) > MAX_TOKEN_LENGTH or _TOKEN.fullmatch(value) is None:
        raise SubjectError(
            f"{field}={value!r} is not a valid subject token "
            f"(1-{MAX_TOKEN_LENGTH} letters, digits, '-' and '_')"
        )
    return value


def task_kind(value: str) -> str:
    """Return ``value`` if it is a valid task kind (dot-separated lowercase tokens).

    Raises:
        SubjectError: naming the kind.
    """
    if len(value) > MAX_KIND_LENGTH or _KIND.fullmatch(value) is None:
        raise SubjectError(
            f"kind={value!r} is not a valid task kind "
            "(dot-separated tokens of a-z, 0-9 and '-', e.g. 'markdown.compile')"
        )
    return value


def event_token(value: str) -> str:
    """Return ``value`` if it is an event id (a lower-case UUID).

    Raises:
        SubjectError: naming ``event_id``.
    """
    if _UUID.fullmatch(value) is None:
        raise SubjectError(f"event_id={value!r} is not a lower-case UUID")
    return value


class Subjects(msgspec.Struct, frozen=True, kw_only=True):
    """Subjects under one prefix (one or more dot-separated tokens).

    Raises:
        SubjectError: at construction, when ``prefix`` is not dot-separated safe tokens.
    """

    prefix: str = "gitstore"

    def __post_init__(self) -> None:
        for token in self.prefix.split("."):
            subject_token(token, field="prefix")

    def git_push(self, repository_id: str) -> str:
        """Subject of a git push event for one repository."""
        token = subject_token(repository_id, field="repository_id")
        return f"{self.prefix}.events.git.push.{token}"

    def git_push_all(self) -> str:
        """Wildcard over every repository's git push events."""
        return f"{self.prefix}.events.git.push.>"

    def task(self, kind: str) -> str:
        """Subject of task requests of ``kind``."""
        return f"{self.prefix}.tasks.{task_kind(kind)}"

    def validation(self, kind: str) -> str:
        """Subject of validation requests produced by tasks of ``kind``."""
        return f"{self.prefix}.validation.{task_kind(kind)}"

    def failure(self, kind: str) -> str:
        """Subject of failure diagnostics about work of ``kind``."""
        return f"{self.prefix}.failures.{task_kind(kind)}"

    def dead_letter(self, kind: str) -> str:
        """Subject of dead letters of work of ``kind``."""
        return f"{self.prefix}.dlq.{task_kind(kind)}"

    def audit(self, event_id: str) -> str:
        """Subject of the audit records about one git event."""
        return f"{self.prefix}.audit.{event_token(event_id)}"

    def events_all(self) -> str:
        """Wildcard over the events stream's subjects."""
        return f"{self.prefix}.events.>"

    def tasks_all(self) -> str:
        """Wildcard over the tasks stream's subjects."""
        return f"{self.prefix}.tasks.>"

    def validation_all(self) -> str:
        """Wildcard over the validation stream's subjects."""
        return f"{self.prefix}.validation.>"

    def failures_all(self) -> str:
        """Wildcard over every failure diagnostic."""
        return f"{self.prefix}.failures.>"

    def dead_letters_all(self) -> str:
        """Wildcard over every dead letter."""
        return f"{self.prefix}.dlq.>"

    def audit_all(self) -> str:
        """Wildcard over every audit record."""
        return f"{self.prefix}.audit.>"
