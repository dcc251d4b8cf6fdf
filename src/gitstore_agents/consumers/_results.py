"""Read one slot: the message a subject of a slot stream holds, if any.

The tasks, validation and failures streams keep one message per subject, so
"is this task done?" is one direct get of the last message on its validation
subject (``$JS.API.DIRECT.GET.<stream>.<subject>``, answered by any replica,
no consumer created). The pipeline asks before a run that would be long, the
status service and ``replay --verify`` ask to report what is stored.
"""

from __future__ import annotations

from typing import Protocol

import msgspec
import nats.errors
import nats.js.errors
from nats.js import JetStreamContext

from ._errors import ResultsUnavailableError


class StoredMessage(msgspec.Struct, frozen=True, kw_only=True):
    """A message as a stream stores it.

    Attributes:
        stream: The stream.
        subject: Its subject.
        seq: Its stream sequence.
        data: Its payload.
        headers: Its headers.
    """

    stream: str
    subject: str
    seq: int
    data: bytes
    headers: dict[str, str] = msgspec.field(default_factory=dict)


class ResultStore(Protocol):
    """Looks up the message one subject of a stream holds."""

    async def last(self, stream: str, subject: str) -> StoredMessage | None:
        """The last message on ``subject`` (wildcards allowed), or None.

        Raises:
            ResultsUnavailableError: the stream could not be read.
        """
        ...


class JetStreamResults:
    """``ResultStore`` over direct gets (the streams have ``allow_direct``).

    Args:
        js: The JetStream context.
    """

    def __init__(self, js: JetStreamContext) -> None:
        self._js = js

    async def last(self, stream: str, subject: str) -> StoredMessage | None:
        """The last message on ``subject`` in ``stream``, or None."""
        try:
            raw = await self._js.get_last_msg(stream, subject, direct=True)
        except nats.js.errors.NotFoundError:
            return None
        except (nats.errors.Error, TimeoutError) as exc:
            raise ResultsUnavailableError(f"reading {subject} from {stream}: {exc!r}") from None
        return StoredMessage(
            stream=raw.stream or stream,
            subject=raw.subject or subject,
            seq=raw.seq or 0,
            data=raw.data or b"",
            headers=dict(raw.headers or {}),
        )
