"""A pull request loop on one durable: always one request open, sized to free capacity.

Each delivered message is handed over the moment it arrives (no batch waits
for its slowest member), and the next pull request asks only for as many
messages as the worker has free slots. Pull requests carry an idle heartbeat:
silence for longer than a few heartbeats means the request was lost (a server
restart, a reconnect) and a new one is sent.

JetStream answers a pull request on our inbox with messages and status
messages: ``100`` idle heartbeat, ``408`` request expired, ``404`` no messages,
``409`` consumer deleted / leadership change / too many waiting requests,
``400`` bad request, ``503`` no JetStream responder (consumer missing).

Each pull request that delivers messages is a ``receive`` span linking to
every message it delivered; its size goes to the fetch batch size histogram.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
from collections.abc import Awaitable, Callable

import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg

from ..telemetry import ReceiveBatch

log = structlog.get_logger(__name__)

# Silence for this many heartbeats means the pull request is gone.
_MISSED_HEARTBEATS = 3
# After an error status, wait this long before the next request.
_ERROR_PAUSE_S = 1.0
_CONFLICT_PAUSE_S = 0.1
# Bound on handing over what arrived before the pull request died (one round trip).
_DRAIN_TIMEOUT_S = 2.0


class PullStatus(enum.Enum):
    """What became of the open pull request."""

    OPEN = "open"
    DONE = "done"
    CONSUMER_MISSING = "consumer-missing"


class PullConsumer:
    """Keeps one pull request open on ``stream``/``durable`` and hands over every message.

    Args:
        nc: The connection.
        stream: Stream of the consumer.
        durable: Durable consumer name.
        capacity: Current number of free slots (called before each request).
        on_message: Receives each delivered message (must not block).
        on_consumer_missing: Called (awaited) when the server says the consumer
            does not exist, before the next request.
        batch: Most messages one request asks for.
        expires_s: Lifetime of one request.
        heartbeat_s: Idle heartbeat of a request.
        api_prefix: JetStream API prefix (``$JS.API``, or a domain's).
    """

    def __init__(
        self,
        nc: Client,
        *,
        stream: str,
        durable: str,
        capacity: Callable[[], int],
        on_message: Callable[[Msg], None],
        on_consumer_missing: Callable[[], Awaitable[None]] | None = None,
        batch: int = 32,
        expires_s: float = 5.0,
        heartbeat_s: float = 1.0,
        api_prefix: str = "$JS.API",
    ) -> None:
        self._nc = nc
        self.stream = stream
        self.durable = durable
        self._capacity = capacity
        self._on_message = on_message
        self._on_consumer_missing = on_consumer_missing
        self._batch = batch
        self._expires_s = expires_s
        self._heartbeat_s = heartbeat_s
        self._next_subject = f"{api_prefix}.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._inbox = nc.new_inbox()
        self._outstanding = 0
        self._last_seen = 0.0
        self._requested_at = 0.0
        self._wake = asyncio.Event()
        self._consumer_missing = False
        self._paused_until = 0.0
        self.bound = False
        self.requests = 0
        self._receive = ReceiveBatch(stream, durable, nc)

    def wake(self) -> None:
        """Capacity changed or the connection came back: reconsider the next request."""
        self._wake.set()

    def forget_request(self) -> None:
        """Treat the open request as lost (after a reconnect the server may not have it)."""
        self._outstanding = 0
        self._receive.done()
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Request and hand over messages until ``stop`` is set, then stop listening."""
        sub = await self._nc.subscribe(self._inbox, cb=self._on_inbox)
        loop = asyncio.get_running_loop()
        try:
            while not stop.is_set():
                # Cleared before looking at the state: anything that happens
                # from here on wakes the next round at once.
                self._wake.clear()
                now = loop.time()
                if self._consumer_missing:
                    self._consumer_missing = False
                    self.bound = False
                    if self._on_consumer_missing is not None:
                        await self._on_consumer_missing()
                    self._paused_until = loop.time() + _ERROR_PAUSE_S
                if self._outstanding and self._request_lost(now):
                    log.warning(
                        "pull request lost; sending a new one",
                        stream=self.stream,
                        durable=self.durable,
                        silent_s=round(now - self._last_seen, 2),
                    )
                    self._outstanding = 0
                    self._receive.done()
                if not self._outstanding and now >= self._paused_until:
                    await self._request(now)
                # Wake on any message/status/capacity change, else at the next heartbeat.
                timeout = self._heartbeat_s
                if self._paused_until > now:
                    timeout = min(timeout, self._paused_until - now)
                waiter = asyncio.ensure_future(self._wake.wait())
                stopper = asyncio.ensure_future(stop.wait())
                try:
                    await asyncio.wait(
                        {waiter, stopper},
                        timeout=max(timeout, 0.01),
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                finally:
                    waiter.cancel()
                    stopper.cancel()
        finally:
            # Without our inbox's interest the server drops the open request,
            # so nothing more is delivered to a worker that stopped listening.
            # Draining (not just unsubscribing) hands over what already arrived,
            # so the worker can give it back at once instead of leaving it
            # unacknowledged until its ack wait runs out.
            self._receive.done()
            self.bound = False
            if not self._nc.is_closed:
                try:
                    await asyncio.wait_for(sub.drain(), timeout=_DRAIN_TIMEOUT_S)  # type: ignore[no-untyped-call]
                except Exception:
                    with contextlib.suppress(Exception):
                        await sub.unsubscribe()

    def _request_lost(self, now: float) -> bool:
        silent = now - self._last_seen
        expired = now - self._requested_at > self._expires_s + self._heartbeat_s
        return silent > _MISSED_HEARTBEATS * self._heartbeat_s or expired

    async def _request(self, now: float) -> None:
        free = min(self._capacity(), self._batch)
        if free <= 0 or not self._nc.is_connected:
            return
        request = {
            "batch": free,
            # Exactly what the configuration validated (heartbeat <= expires / 2).
            "expires": int(self._expires_s * 1e9),
            "idle_heartbeat": int(self._heartbeat_s * 1e9),
        }
        self._outstanding = free
        self._requested_at = now
        self._last_seen = now
        self.requests += 1
        self._receive.requested()
        await self._nc.publish(self._next_subject, json.dumps(request).encode(), reply=self._inbox)

    async def _on_inbox(self, msg: Msg) -> None:
        loop = asyncio.get_running_loop()
        self._last_seen = loop.time()
        status = (msg.headers or {}).get("Status") if not msg.reply else None
        if status is None:
            # A message may arrive from a request we already gave up on; it is
            # real work all the same, and the worker bounds how much runs at once.
            self._outstanding = max(self._outstanding - 1, 0)
            self.bound = True
            self._receive.received(msg.headers)
            if not self._outstanding:
                self._receive.done()
            self._on_message(msg)
        elif status == "100":
            self.bound = True
            return
        elif status in ("404", "408"):
            self.bound = True
            self._outstanding = 0
            self._receive.done()
        elif status == "503":
            self._outstanding = 0
            self._consumer_missing = True
        else:
            description = (msg.headers or {}).get("Description", "")
            self._outstanding = 0
            self._receive.done()
            if "Consumer Deleted" in description:
                self._consumer_missing = True
            elif status == "409":
                # Leadership change, server shutdown, too many waiting pulls:
                # ask again, but not in a hot loop if it keeps happening.
                self._paused_until = loop.time() + _CONFLICT_PAUSE_S
            else:
                log.error(
                    "pull request refused",
                    stream=self.stream,
                    durable=self.durable,
                    status=status,
                    description=description,
                )
                self._paused_until = loop.time() + _ERROR_PAUSE_S
        self._wake.set()
