"""What a handler sees of a delivered message: data and coordinates, never the connection.

Handlers get a ``Delivery`` instead of nats-py's ``Msg`` so no task code can
reach the client (and publish around the role's publish boundary); settling
the message is the worker's job.
"""

from __future__ import annotations

import msgspec
from nats.aio.msg import Msg

from ..envelopes import headers as hdr


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """One delivery of a stream message to a consumer.

    Attributes:
        subject: Subject the message was published on.
        data: Payload bytes.
        headers: Message headers (as published).
        stream: Stream holding the message.
        stream_seq: Its sequence in the stream (stable across redeliveries).
        consumer: Consumer that delivered it.
        num_delivered: Delivery attempt, 1-based (JetStream's count).
        num_pending: Messages left for the consumer after this one.
    """

    subject: str
    data: bytes
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    stream: str = ""
    stream_seq: int = 0
    consumer: str = ""
    num_delivered: int = 1
    num_pending: int = 0

    @classmethod
    def from_msg(cls, msg: Msg) -> Delivery:
        """Copy what handlers need out of a JetStream message."""
        meta = msg.metadata
        return cls(
            subject=msg.subject,
            data=msg.data,
            headers=dict(msg.headers or {}),
            stream=meta.stream,
            stream_seq=meta.sequence.stream,
            consumer=meta.consumer,
            num_delivered=meta.num_delivered,
            num_pending=meta.num_pending,
        )

    def header(self, name: str) -> str | None:
        """Case-insensitive header lookup."""
        return hdr.get_header(self.headers, name)
