"""What does not fit one message travels through the content store (a claim check).

The NATS server refuses a message over its ``max_payload`` (1 MiB by
default), learned from the server at connect. A task whose input, or a
result whose output, would make a message larger than that is stored in the
content store under its sha256 and the message carries the ref instead:
``TaskRequest.input_ref`` (the same ``input_digest``, so the same key) and
``ValidationRequest.output_ref`` (= ``output_digest``). Whoever reads it
fetches and verifies the bytes (``envelopes.ContentStore.get``).

What cannot travel this way either is refused for good, naming the sizes:
``input-too-large`` / ``output-too-large``.
"""

from __future__ import annotations

import msgspec

from ..consumers import Publisher
from ..envelopes import ContentStore, EnvelopeError, ValidationRequest
from ._derive import Derived

HEADER_ALLOWANCE = 8 * 1024
"""Room kept in a message for its headers (ids, trace context, request id)."""

_ENCODER = msgspec.json.Encoder(order="sorted")


class Carrier:
    """Puts large inputs and outputs in the content store so their messages fit.

    Args:
        publisher: The role's publisher (it knows the server's ``max_payload``).
        content: The content store (None: everything must fit inline).
    """

    def __init__(self, publisher: Publisher, content: ContentStore | None) -> None:
        self._publisher = publisher
        self._content = content

    @property
    def budget(self) -> int:
        """Largest payload a message may have, headers allowed for."""
        return self._publisher.max_payload - HEADER_ALLOWANCE

    async def task(self, derived: Derived) -> Derived:
        """``derived`` as it can be published: inline, or its input by ref."""
        if len(derived.payload) <= self.budget:
            return derived
        store = self._store("input-too-large", "task", len(derived.payload))
        ref = await store.put(derived.stdin)
        # The stored bytes are the canonical input, so ref == input_digest.
        task = msgspec.structs.replace(derived.task, input=None, input_ref=ref)
        return Derived(task=task, stdin=derived.stdin, payload=_ENCODER.encode(task))

    async def result(self, request: ValidationRequest, output: bytes) -> ValidationRequest:
        """``request`` as it can be published: its output inline, or by ref."""
        # The other fields are bounded (ids, digests, a path): a generous
        # estimate spares encoding the request twice.
        if len(output) + HEADER_ALLOWANCE <= self.budget:
            return request
        store = self._store("output-too-large", "output", len(output))
        ref = await store.put(output)
        return msgspec.structs.replace(request, output=msgspec.UNSET, output_ref=ref)

    def _store(self, code: str, what: str, size: int) -> ContentStore:
        if self._content is None:
            raise EnvelopeError(
                f"the {what} is {size} bytes, over what one message carries "
                f"({self.budget} bytes under the server's max_payload="
                f"{self._publisher.max_payload}), and this worker has no content store",
                code=code,
            )
        return self._content
