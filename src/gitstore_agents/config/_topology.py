"""Names and settings of the JetStream topology (streams, buckets, subjects).

Streams use limits retention (not work-queue) so history stays replayable
with the ``nats`` CLI; file storage; a duplicate window for publisher dedup.
The tasks, validation and failures streams are *slot* streams: every subject
ends in a key and holds at most one message, and the server refuses a second
one (``max_msgs_per_subject: 1`` with ``discard_new_per_subject``). That
refusal is how a worker knows a task's result is already stored, forever,
not only inside the duplicate window.

Retention (``<stream>_max_age_s``, ``<stream>_max_bytes``, ``<stream>_max_msgs``;
0 = no limit) is a setting per stream, applied by provisioning. The slot
streams keep their results forever by default: a slot that ages out is free
again, and a replay would store a second result there. On a slot stream (which
discards *new* messages) a size limit is a hard stop, not a retention: once
full, the stream refuses every new task, result and diagnostic until the limit
is raised or messages age out. ``config._validate`` refuses ages that would let
a result slot free up while the event or task that produced it can still be
replayed.
"""

from __future__ import annotations

from typing import Annotated, NamedTuple

import msgspec
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

from ..envelopes import Subjects

DAY_S = 24 * 3600.0

# 0 means "no limit" for every retention setting (JetStream's -1 for counts).
AgeSeconds = Annotated[float, msgspec.Meta(ge=0)]
Limit = Annotated[int, msgspec.Meta(ge=0)]

# The server publishes one of these when a message ran out of deliveries; the
# last two tokens are the stream and the consumer (durable) name.
MAX_DELIVERIES_ADVISORY = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES"


class StreamLimits(NamedTuple):
    """One stream's (or the content store's) limits, as JetStream calls them; 0 = none.

    Attributes:
        name: Prefix of the settings in ``topology`` (``events`` for
            ``events_max_age_s`` ...).
        max_age_s: Age at which messages are removed.
        max_bytes: Size limit.
        max_msgs: Message limit.
    """

    name: str
    max_age_s: float
    max_bytes: int
    max_msgs: int


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
        events_max_age_s: Age at which git events are removed (0: kept forever).
            Also the longest the planner may fall behind before events are lost,
            and how far back a replay of the events stream reaches.
        events_max_bytes: Size limit of the events stream; the oldest events go
            first (0: none).
        events_max_msgs: Message limit of the events stream, oldest first (0: none).
        tasks_max_age_s: Age at which task slots are removed (0: forever). A task
            waiting longer than this is lost; a replay of an older event runs its
            tasks again (their results are found stored, so nothing is duplicated).
        tasks_max_bytes: Size limit of the tasks stream (0: none); when full it
            refuses new tasks (a slot stream discards new messages).
        tasks_max_msgs: Message limit of the tasks stream (0: none), as above.
        validation_max_age_s: Age at which result slots are removed (0: forever,
            the default: a freed slot would take a second result).
        validation_max_bytes: Size limit of the validation stream (0: none);
            when full, results are refused and their tasks retried, then dead-lettered.
        validation_max_msgs: Message limit of the validation stream (0: none), as above.
        failures_max_age_s: Age at which diagnostic and dead-letter slots are
            removed (0: forever, the default).
        failures_max_bytes: Size limit of the failures stream (0: none), as above.
        failures_max_msgs: Message limit of the failures stream (0: none), as above.
        audit_max_age_s: Age at which audit records are removed (0: forever);
            ``trace`` and the status service know nothing older.
        audit_max_bytes: Size limit of the audit stream, oldest first (0: none).
        audit_max_msgs: Message limit of the audit stream, oldest first (0: none).
        content_max_age_s: Age at which objects of the content store are removed
            (0: forever). Counted from an object's first upload: storing the
            same bytes again keeps the stored object and its age.
        content_max_bytes: Size limit of the content store (0: none); when full,
            uploads are refused.
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
    advisories_max_age_s: Annotated[float, msgspec.Meta(gt=0)] = 7 * DAY_S
    events_max_age_s: AgeSeconds = 90 * DAY_S
    events_max_bytes: Limit = 0
    events_max_msgs: Limit = 0
    tasks_max_age_s: AgeSeconds = 90 * DAY_S
    tasks_max_bytes: Limit = 0
    tasks_max_msgs: Limit = 0
    validation_max_age_s: AgeSeconds = 0.0
    validation_max_bytes: Limit = 0
    validation_max_msgs: Limit = 0
    failures_max_age_s: AgeSeconds = 0.0
    failures_max_bytes: Limit = 0
    failures_max_msgs: Limit = 0
    audit_max_age_s: AgeSeconds = 365 * DAY_S
    audit_max_bytes: Limit = 0
    audit_max_msgs: Limit = 0
    content_max_age_s: AgeSeconds = 0.0
    content_max_bytes: Limit = 0

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
            self._stream(self.events_stream, [s.events_all()], self.stream_limits("EVENTS")),
            self._slots(self.tasks_stream, [s.tasks_all()], self.stream_limits("TASKS")),
            self._slots(
                self.validation_stream, [s.validation_all()], self.stream_limits("VALIDATION")
            ),
            self._slots(
                self.failures_stream,
                [s.failures_all(), s.dead_letters_all()],
                self.stream_limits("FAILURES"),
            ),
            advisory,
            self._audit_stream(),
        ]

    def stream_limits(self, alias: str) -> StreamLimits:
        """The limits of stream ``alias`` (``EVENTS``, ``TASKS``, ... or ``CONTENT``).

        Raises:
            KeyError: ``alias`` names no stream with retention settings.
        """
        return {
            "EVENTS": StreamLimits(
                "events", self.events_max_age_s, self.events_max_bytes, self.events_max_msgs
            ),
            "TASKS": StreamLimits(
                "tasks", self.tasks_max_age_s, self.tasks_max_bytes, self.tasks_max_msgs
            ),
            "VALIDATION": StreamLimits(
                "validation",
                self.validation_max_age_s,
                self.validation_max_bytes,
                self.validation_max_msgs,
            ),
            "FAILURES": StreamLimits(
                "failures", self.failures_max_age_s, self.failures_max_bytes, self.failures_max_msgs
            ),
            "AUDIT": StreamLimits(
                "audit", self.audit_max_age_s, self.audit_max_bytes, self.audit_max_msgs
            ),
            "CONTENT": StreamLimits("content", self.content_max_age_s, self.content_max_bytes, 0),
        }[alias.upper()]

    def _audit_stream(self) -> StreamConfig:
        # Append-only: the server refuses message deletes and purges, so the
        # trail cannot be edited through the API. Direct gets let the status
        # service and `trace` read one event's records with a single request.
        # Retention still applies: records older than audit_max_age_s go.
        audit = self._stream(
            self.audit_stream, [self.subjects.audit_all()], self.stream_limits("AUDIT")
        )
        audit.deny_delete = True
        audit.deny_purge = True
        audit.allow_direct = True
        return audit

    def slot_streams(self) -> tuple[str, ...]:
        """The streams that keep one message per subject."""
        return (self.tasks_stream, self.validation_stream, self.failures_stream)

    def _slots(self, name: str, subjects: list[str], limits: StreamLimits) -> StreamConfig:
        # discard new (per subject) is what makes a slot: a size limit on a
        # slot stream therefore refuses new messages once reached, it never
        # drops old ones (that would free their slots).
        slots = self._stream(name, subjects, limits)
        slots.max_msgs_per_subject = 1
        slots.discard = DiscardPolicy.NEW
        slots.discard_new_per_subject = True
        # "Is this result stored?" is a direct get of one subject, served by any replica.
        slots.allow_direct = True
        return slots

    def _stream(self, name: str, subjects: list[str], limits: StreamLimits) -> StreamConfig:
        return StreamConfig(
            name=name,
            subjects=subjects,
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            duplicate_window=self.duplicate_window_s,
            num_replicas=self.replicas,
            max_msg_size=self.max_msg_bytes,
            max_age=limits.max_age_s,
            # JetStream spells "no limit" -1 (and reports 0 back as -1).
            max_bytes=limits.max_bytes or -1,
            max_msgs=limits.max_msgs or -1,
        )
