"""The subject scheme, built in one place from a configurable prefix.

``<prefix>.events.git.push.<repository_id>``  git events (control plane)
``<prefix>.tasks.<kind>``                     task requests (planner)
``<prefix>.validation.<kind>``                validation requests (task roles)
``<prefix>.failures.<kind>``                  failure diagnostics (permanent failures)
``<prefix>.dlq.<kind>``                       dead letters (deliveries exhausted)
"""

from __future__ import annotations

import re

import msgspec

from ..errors import GitStoreAgentsError

# A token is what sits between dots; wildcards, whitespace and dots injected
# from a repository id or kind would change which subscribers see the message.
_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")
_KIND = re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)*$")


class SubjectError(GitStoreAgentsError):
    """A subject token came from data and is not safe to publish on."""

    code = "subject-invalid"


def subject_token(value: str, *, field: str) -> str:
    """Return ``value`` if it is a single safe subject token.

    Raises:
        SubjectError: naming ``field`` when the value holds wildcards, dots or spaces.
    """
    if not _TOKEN.match(value):
        raise SubjectError(
            f"{field}={value!r} is not a valid subject token "
            "(allowed: letters, digits, '-' and '_')"
        )
    return value


def task_kind(value: str) -> str:
    """Return ``value`` if it is a valid task kind (dot-separated lowercase tokens)."""
    if not _KIND.match(value):
        raise SubjectError(f"kind={value!r} is not a valid task kind (e.g. 'markdown.compile')")
    return value


class Subjects(msgspec.Struct, frozen=True, kw_only=True):
    """Subjects under one prefix."""

    prefix: str = "gitstore"

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
        """Subject of failure diagnostics about tasks (or events) of ``kind``."""
        return f"{self.prefix}.failures.{task_kind(kind)}"

    def dead_letter(self, kind: str) -> str:
        """Subject of dead letters for work items of ``kind``."""
        return f"{self.prefix}.dlq.{task_kind(kind)}"

    def failures_all(self) -> str:
        """Wildcard over every failure diagnostic."""
        return f"{self.prefix}.failures.>"

    def dead_letters_all(self) -> str:
        """Wildcard over every dead letter (and requeue record)."""
        return f"{self.prefix}.dlq.>"

    def events_all(self) -> str:
        """Wildcard over the events stream's subjects."""
        return f"{self.prefix}.events.>"

    def tasks_all(self) -> str:
        """Wildcard over the tasks stream's subjects."""
        return f"{self.prefix}.tasks.>"

    def validation_all(self) -> str:
        """Wildcard over the validation stream's subjects."""
        return f"{self.prefix}.validation.>"
