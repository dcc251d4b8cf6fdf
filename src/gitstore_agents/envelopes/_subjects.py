"""The subject scheme, built in one place from a configurable prefix.

| subject | carries | published by |
|---|---|---|
| ``<prefix>.events.git.push.<repository_id>`` | ``GitEvent`` | the control plane |
| ``<prefix>.tasks.<kind>.<key>`` | ``TaskRequest`` | the planner, follow-ups |
| ``<prefix>.validation.<kind>.<key>`` | ``ValidationRequest`` | task roles |
| ``<prefix>.failures.<kind>.<key or input>`` | ``FailureDiagnostic`` | every role |
| ``<prefix>.dlq.<kind>.<letter id>`` | ``DeadLetter`` | every role |
| ``<prefix>.dlq._requeued.<letter id>`` | ``RequeueRecord`` | operators |
| ``<prefix>.audit.<role>.<event_id>`` | ``AuditBatch`` | every role, in its own name |

``<key>`` is the 64 hex digits of a task's idempotency key (``slot_token``).
The task, validation and failure streams keep one message per subject and
refuse a second one, so a subject *is* a slot: the first result stored for a
key is the result, and a repeat (a redelivery, a replay, a second worker)
finds the slot taken. A requeued task goes to a slot of its own
(``<key>-rq<seq>``) so the original stays where it was.

Every token that comes from data is validated: a wildcard (``*``, ``>``), a dot,
whitespace or a control character in a repository id or kind would change which
subscribers see the message, or break the protocol line.
"""

from __future__ import annotations

import functools
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

    def task(self, kind: str, slot: str) -> str:
        """Subject (slot) of one task request: ``slot`` is ``slot_token(key)`` or a requeue's."""
        return f"{_kind_subject(self.prefix, 'tasks', kind)}.{subject_token(slot, field='slot')}"

    def tasks_of(self, kind: str) -> str:
        """Every task request of ``kind`` (a consumer's filter)."""
        return f"{_kind_subject(self.prefix, 'tasks', kind)}.*"

    def validation(self, kind: str, idempotency_key: str) -> str:
        """Subject (slot) of the validation request of one task."""
        return f"{_kind_subject(self.prefix, 'validation', kind)}.{slot_token(idempotency_key)}"

    def validations_of(self, kind: str) -> str:
        """Every validation request of ``kind``."""
        return f"{_kind_subject(self.prefix, 'validation', kind)}.*"

    def failure(self, kind: str, token: str) -> str:
        """Subject (slot) of the diagnostic about one task (``token`` = its slot token)
        or one undecodable input (``input_token``)."""
        return (
            f"{_kind_subject(self.prefix, 'failures', kind)}.{subject_token(token, field='token')}"
        )

    def failures_of(self, kind: str) -> str:
        """Every failure diagnostic about work of ``kind``."""
        return f"{_kind_subject(self.prefix, 'failures', kind)}.*"

    def dead_letter(self, kind: str, letter_id: str) -> str:
        """Subject (slot) of one dead letter about work of ``kind``."""
        letter = subject_token(letter_id, field="letter_id")
        return f"{_kind_subject(self.prefix, 'dlq', kind)}.{letter}"

    def dead_letters_of(self, kind: str) -> str:
        """Every dead letter about work of ``kind``."""
        return f"{_kind_subject(self.prefix, 'dlq', kind)}.*"

    def requeue_record(self, letter_id: str) -> str:
        """Subject (slot) of the record that dead letter ``letter_id`` was requeued."""
        return f"{self.prefix}.dlq.{REQUEUED_TOKEN}.{subject_token(letter_id, field='letter_id')}"

    def requeue_records(self) -> str:
        """Every requeue record."""
        return f"{self.prefix}.dlq.{REQUEUED_TOKEN}.*"

    def audit(self, role: str, event_id: str) -> str:
        """Subject of ``role``'s audit records about one git event."""
        return f"{self.prefix}.audit.{subject_token(role, field='role')}.{event_token(event_id)}"

    def audit_of_event(self, event_id: str) -> str:
        """Every role's audit records about one git event."""
        return f"{self.prefix}.audit.*.{event_token(event_id)}"

    def audit_of_role(self, role: str) -> str:
        """Every audit record ``role`` may write."""
        return f"{self.prefix}.audit.{subject_token(role, field='role')}.*"

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
        """Wildcard over every dead letter and requeue record."""
        return f"{self.prefix}.dlq.>"

    def audit_all(self) -> str:
        """Wildcard over every audit record."""
        return f"{self.prefix}.audit.>"


REQUEUED_TOKEN = "_requeued"
"""Token after ``dlq`` of requeue records (``_`` keeps it apart from every task kind)."""

_HEX_KEY = re.compile(r"^sha256:([0-9a-f]{64})$")


def slot_token(idempotency_key: str) -> str:
    """The subject token of a task's slots: the 64 hex digits of its idempotency key.

    Raises:
        SubjectError: the key is not ``sha256:<64 lower-case hex>``.
    """
    match = _HEX_KEY.match(idempotency_key)
    if match is None:
        raise SubjectError(f"idempotency_key={idempotency_key!r} is not sha256:<64 hex>")
    return match.group(1)


def requeue_slot(idempotency_key: str, stream_seq: int) -> str:
    """The slot of a requeued copy of a task (the original's slot stays taken)."""
    return f"{slot_token(idempotency_key)}-rq{stream_seq}"


def input_token(stream: str, stream_seq: int) -> str:
    """Names one stored input (a message that could not be read as an envelope)."""
    return subject_token(f"{stream}-{stream_seq}", field="stream")


def slot_of(subject: str) -> str:
    """The last token of a subject (a slot's token)."""
    return subject.rsplit(".", 1)[-1]


@functools.lru_cache(maxsize=256)
def _kind_subject(prefix: str, what: str, kind: str) -> str:
    # Kinds come from configuration and envelopes: validated once per kind.
    return f"{prefix}.{what}.{task_kind(kind)}"
