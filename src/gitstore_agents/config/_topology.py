"""Names and settings of the JetStream topology (streams, buckets, subjects).

Streams use limits retention (not work-queue) so history stays replayable
with the ``nats`` CLI; file storage; a duplicate window for publisher dedup.
The tasks, validation and failures streams are *slot* streams: every subject
ends in a key and holds at most one message, and the server refuses a second
one (``max_msgs_per_subject: 1`` with ``discard_new_per_subject``). That
refusal is how a worker knows a task's result is already stored, forever,
not only inside the duplicate window.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

from ..envelopes import Subjects

_DAY_S = 24 * 3600.0

# The server publishes one of these when a message ran out of deliveries; the
# last two tokens are the stream and the consumer (durable) name.
MAX_DELIVERIES_ADVISORY = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES"


class Topology(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Names and settings of the JetStream topology.

    Attributes:
        prefix: Subject prefix shared by every subject of the product.
        replicas: Stream replicas (3 on a clustered JetStream).
        duplicate_window_s: How long JetStream drops a repeated ``Nats-Msg-Id``.
        events_stream: Stream holding git events.
        tasks_stream: Stream holding task requests.
        validation_stream: Stream holding validation requests.
        failures_stream: Stream holding failure diagnostics and dead letters.
        advisories_stream: Stream capturing JetStream's max-deliveries
            advisories for our streams, so dead letters survive a moment
            with no worker running (core NATS advisories would be lost).
        audit_stream: Append-only stream of audit records (delete and purge denied).
        modules_bucket: Object store of WASI modules, by digest.
        content_bucket: Object store of large task inputs, by digest.
        max_msg_bytes: Largest message a stream accepts.
        advisories_max_age_s: How long captured advisories are kept.
    """

    prefix: str = "gitstore"
    replicas: Annotated[int, msgspec.Meta(ge=1, le=5)] = 1
    duplicate_window_s: Annotated[float, msgspec.Meta(gt=0)] = 120.0
    events_stream: str = "GITSTORE_EVENTS"
    tasks_stream: str = "GITSTORE_TASKS"
    validation_stream: str = "GITSTORE_VALIDATION"
    failures_stream: str = "GITSTORE_FAILURES"
    advisories_stream: str = "GITSTORE_ADVISORIES"
    audit_stream: str = "GITSTORE_AUDIT"
    modules_bucket: str = "gitstore-modules"
    content_bucket: str = "gitstore-content"
    max_msg_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 8 * 1024 * 1024
    advisories_max_age_s: Annotated[float, msgspec.Meta(gt=0)] = 7 * _DAY_S

    @property
    def subjects(self) -> Subjects:
        """The subject scheme under this topology's prefix."""
        return Subjects(prefix=self.prefix)

    def stream_alias(self, name: str) -> str:
        """Resolve ``EVENTS``/``TASKS``/... (or a full stream name) to a stream name."""
        aliases = {
            "EVENTS": self.events_stream,
            "TASKS": self.tasks_stream,
            "VALIDATION": self.validation_stream,
            "FAILURES": self.failures_stream,
            "ADVISORIES": self.advisories_stream,
            "AUDIT": self.audit_stream,
        }
        return aliases.get(name.upper(), name)

    def max_deliveries_advisory(self, stream: str, durable: str = "*") -> str:
        """Subject of the max-deliveries advisory for ``durable`` on ``stream``."""
        return f"{MAX_DELIVERIES_ADVISORY}.{stream}.{durable}"

    def stream_configs(self) -> list[StreamConfig]:
        """Configuration of every stream this product owns."""
        s = self.subjects
        advisory = StreamConfig(
            name=self.advisories_stream,
            subjects=[
                self.max_deliveries_advisory(self.events_stream),
                self.max_deliveries_advisory(self.tasks_stream),
            ],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            num_replicas=self.replicas,
            max_age=self.advisories_max_age_s,
        )
        return [
            self._stream(self.events_stream, [s.events_all()]),
            self._slots(self.tasks_stream, [s.tasks_all()]),
            self._slots(self.validation_stream, [s.validation_all()]),
            self._slots(self.failures_stream, [s.failures_all(), s.dead_letters_all()]),
            advisory,
            self._audit_stream(),
        ]

    def _audit_stream(self) -> StreamConfig:
        # Append-only: the server refuses message deletes and purges, so the
        # trail cannot be edited through the API. Direct gets let the status
        # service and `trace` read one event's records with a single request.
        audit = self._stream(self.audit_stream, [self.subjects.audit_all()])
        audit.deny_delete = True
        audit.deny_purge = True
        audit.allow_direct = True
        return audit

    def slot_streams(self) -> tuple[str, ...]:
        """The streams that keep one message per subject."""
        return (self.tasks_stream, self.validation_stream, self.failures_stream)

    def _slots(self, name: str, subjects: list[str]) -> StreamConfig:
        slots = self._stream(name, subjects)
        slots.max_msgs_per_subject = 1
        slots.discard = DiscardPolicy.NEW
        slots.discard_new_per_subject = True
        # "Is this result stored?" is a direct get of one subject, served by any replica.
        slots.allow_direct = True
        return slots

    def _stream(self, name: str, subjects: list[str]) -> StreamConfig:
        return StreamConfig(
            name=name,
            subjects=subjects,
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            duplicate_window=self.duplicate_window_s,
            num_replicas=self.replicas,
            max_msg_size=self.max_msg_bytes,
        )
