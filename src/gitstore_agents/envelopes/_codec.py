"""Decoders and the encoder, created once: msgspec is fastest when reused."""

from __future__ import annotations

from typing import TypeVar

import msgspec

from ..errors import GitStoreAgentsError
from ._git_event import GitEvent
from ._task import TaskRequest, ValidationRequest

T = TypeVar("T")

MAX_ENVELOPE_BYTES = 8 * 1024 * 1024


class EnvelopeError(GitStoreAgentsError):
    """An envelope could not be decoded; never worth a retry."""

    code = "envelope-invalid"
    retryable = False


_DECODERS: dict[type, msgspec.json.Decoder[object]] = {
    GitEvent: msgspec.json.Decoder(GitEvent),
    TaskRequest: msgspec.json.Decoder(TaskRequest),
    ValidationRequest: msgspec.json.Decoder(ValidationRequest),
}


def decode(data: bytes, type_: type[T], *, max_bytes: int = MAX_ENVELOPE_BYTES) -> T:
    """Decode ``data`` as ``type_``, bounding the size before parsing.

    Raises:
        EnvelopeError: naming the field path and what was expected.
    """
    if len(data) > max_bytes:
        raise EnvelopeError(
            f"{type_.__name__} is {len(data)} bytes, over the limit max_envelope_bytes={max_bytes}",
            code="envelope-too-large",
        )
    decoder = _DECODERS.get(type_)
    try:
        if decoder is None:
            return msgspec.json.decode(data, type=type_)
        return decoder.decode(data)  # type: ignore[return-value]
    except msgspec.ValidationError as exc:
        raise EnvelopeError(f"{type_.__name__}: {exc}") from None
    except msgspec.DecodeError as exc:
        raise EnvelopeError(f"{type_.__name__}: malformed JSON: {exc}") from None
