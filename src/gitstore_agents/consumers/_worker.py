"""The pull loop every role runs: fetch, handle, publish, await PubAcks, settle."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import nats.errors
import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import PubAck

from ..guardrails import PublishBoundary, PublishRefusedError
from ._decision import Decision, Handler, Settle
from ._topology import ConsumerSpec

log = structlog.get_logger(__name__)

# Redelivery delay after our own publish failed: the stream or server is
# likely unavailable for a moment, so retry soon but not in a hot loop.
PUBLISH_RETRY_DELAY_S = 1.0


class PullWorker:
    """Runs one role's handler on one durable pull consumer.

    Args:
        js: JetStream context used to fetch and (via ``boundary``) publish.
        spec: The durable consumer to bind to.
        handler: Decides what to publish for each message.
        boundary: The role's publish boundary.
        batch: Messages fetched per pull request.
        fetch_timeout_s: How long one pull waits for messages.
    """

    def __init__(
        self,
        js: JetStreamContext,
        spec: ConsumerSpec,
        handler: Handler,
        boundary: PublishBoundary,
        *,
        batch: int = 64,
        fetch_timeout_s: float = 1.0,
        publish_timeout_s: float = 5.0,
    ) -> None:
        self._js = js
        self.spec = spec
        self._handler = handler
        self._boundary = boundary
        self._batch = batch
        self._fetch_timeout_s = fetch_timeout_s
        self._publish_timeout_s = publish_timeout_s

    async def run(self, stop: asyncio.Event) -> None:
        """Fetch and process batches until ``stop`` is set."""
        sub = await self._js.pull_subscribe_bind(self.spec.durable, stream=self.spec.stream)
        try:
            while not stop.is_set():
                try:
                    msgs = await sub.fetch(self._batch, timeout=self._fetch_timeout_s)
                except nats.errors.TimeoutError:
                    continue
                await self.process_batch(msgs)
        finally:
            await sub.unsubscribe()

    async def process_batch(self, msgs: Sequence[Msg]) -> None:
        """Handle ``msgs`` concurrently, publish their results, then settle each."""
        decisions = await asyncio.gather(*(self._handle(m) for m in msgs))
        pending: list[list[asyncio.Future[PubAck]]] = []
        refused: list[str | None] = []
        for decision in decisions:
            futures: list[asyncio.Future[PubAck]] = []
            reason: str | None = None
            try:
                for message in decision.outbound:
                    futures.append(await self._boundary.publish_async(message))
            except PublishRefusedError as exc:
                reason = str(exc)
            refused.append(reason)
            pending.append(futures)
        # One wait for the whole batch: PubAcks are confirmed together, and no
        # input is settled before every result it produced is stored.
        flat = [f for group in pending for f in group]
        if flat:
            # nats-py's PubAck futures have no timeout of their own; a PubAck
            # that never comes is a failed publish, and the input is redelivered.
            _, late = await asyncio.wait(flat, timeout=self._publish_timeout_s)
            for future in late:
                future.cancel()
        for msg, decision, futures, refusal in zip(msgs, decisions, pending, refused, strict=True):
            await self._settle(msg, decision, futures, refusal)

    async def _handle(self, msg: Msg) -> Decision:
        try:
            return await self._handler(msg)
        except Exception:
            # A handler bug must not kill the worker or block the stream:
            # retry later, and JetStream's max_deliver bounds the attempts.
            log.exception("handler failed", durable=self.spec.durable, subject=msg.subject)
            return Decision(
                settle=Settle.NAK, nak_delay_s=PUBLISH_RETRY_DELAY_S, reason="handler-error"
            )

    async def _settle(
        self,
        msg: Msg,
        decision: Decision,
        futures: list[asyncio.Future[PubAck]],
        refusal: str | None,
    ) -> None:
        if refusal is not None:
            log.error("publish refused", durable=self.spec.durable, reason=refusal)
            await msg.term()
            return
        failed = [_failure(f) for f in futures if f.cancelled() or f.exception() is not None]
        if failed:
            log.warning(
                "publish failed; input left for redelivery",
                durable=self.spec.durable,
                error=failed[0],
            )
            await msg.nak(delay=PUBLISH_RETRY_DELAY_S)
            return
        if decision.settle is Settle.ACK:
            await msg.ack()
        elif decision.settle is Settle.TERM:
            log.warning("message terminated", durable=self.spec.durable, reason=decision.reason)
            await msg.term()
        else:
            await msg.nak(delay=decision.nak_delay_s)


def _failure(future: asyncio.Future[PubAck]) -> str:
    if future.cancelled():
        return "no PubAck before the publish timeout"
    return repr(future.exception())
