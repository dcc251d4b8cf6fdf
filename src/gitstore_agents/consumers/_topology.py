"""Streams and durable consumers, provisioned idempotently.

Streams use limits retention (not work-queue) so history stays replayable
with the ``nats`` CLI; file storage; a duplicate window for publisher dedup.
"""

from __future__ import annotations

import msgspec
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import NotFoundError

from ..envelopes import Subjects


class Topology(msgspec.Struct, frozen=True, kw_only=True):
    """Names and settings of the JetStream topology.

    Attributes:
        prefix: Subject prefix shared by every subject of the product.
        events_stream: Stream holding git events.
        tasks_stream: Stream holding task requests.
        validation_stream: Stream holding validation requests.
        duplicate_window_s: How long JetStream drops a repeated ``Nats-Msg-Id``.
        replicas: Stream replicas (3 on a clustered JetStream).
        max_msg_bytes: Largest message a stream accepts.
    """

    prefix: str = "gitstore"
    events_stream: str = "GITSTORE_EVENTS"
    tasks_stream: str = "GITSTORE_TASKS"
    validation_stream: str = "GITSTORE_VALIDATION"
    duplicate_window_s: float = 120.0
    replicas: int = 1
    max_msg_bytes: int = 8 * 1024 * 1024

    @property
    def subjects(self) -> Subjects:
        """The subject scheme under this topology's prefix."""
        return Subjects(prefix=self.prefix)

    def stream_configs(self) -> list[StreamConfig]:
        """Configuration of every stream this product owns."""
        s = self.subjects
        return [
            self._stream(self.events_stream, s.events_all()),
            self._stream(self.tasks_stream, s.tasks_all()),
            self._stream(self.validation_stream, s.validation_all()),
        ]

    def _stream(self, name: str, subject: str) -> StreamConfig:
        return StreamConfig(
            name=name,
            subjects=[subject],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            duplicate_window=self.duplicate_window_s,
            num_replicas=self.replicas,
            max_msg_size=self.max_msg_bytes,
        )


class ConsumerSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A durable pull consumer a role reads from.

    Attributes:
        stream: Stream the consumer reads.
        durable: Durable name, shared by every replica of the role.
        filter_subject: Subjects this role handles.
        ack_wait_s: Redelivery delay of an unacknowledged message.
        max_deliver: Deliveries before JetStream gives up on a message.
        max_ack_pending: Bound on unacknowledged messages across replicas.
    """

    stream: str
    durable: str
    filter_subject: str
    ack_wait_s: float = 30.0
    max_deliver: int = 5
    max_ack_pending: int = 1024

    def config(self) -> ConsumerConfig:
        """The consumer's JetStream configuration."""
        return ConsumerConfig(
            durable_name=self.durable,
            filter_subject=self.filter_subject,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.ack_wait_s,
            max_deliver=self.max_deliver,
            max_ack_pending=self.max_ack_pending,
        )


async def provision_streams(js: JetStreamContext, topology: Topology) -> None:
    """Create every stream, or update it in place when it already exists."""
    for config in topology.stream_configs():
        assert config.name is not None
        try:
            await js.stream_info(config.name)
        except NotFoundError:
            await js.add_stream(config)
        else:
            await js.update_stream(config)


async def provision_consumer(js: JetStreamContext, spec: ConsumerSpec) -> None:
    """Create the durable consumer (a no-op when it exists with this configuration)."""
    await js.add_consumer(spec.stream, spec.config())
