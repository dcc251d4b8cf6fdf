"""The loop every role runs: pull, handle each message as it arrives, settle, drain.

At most ``concurrency`` messages are handled at once, and up to ``batch``
more wait for a slot: the next pull request is answered while the current
batch still runs, instead of one request per finished message. A request
asks for what fits, once at least half a batch fits (or nothing is held).
A message is settled only after its handler returned,
and handlers return only after every result they produced has a PubAck. Long
runs get in-progress acks so JetStream does not redeliver live work. Draining
stops the pulls, lets in-flight work finish until the grace deadline, and
naks (without delay) whatever is left so another worker takes it at once.

Each delivery is handled and settled inside its ``process`` span (a child of
the trace context the message carries); deliveries in flight, settlements by
outcome and processing durations are metrics, and the durable's lag is
sampled every ``pending_sample_s`` (one consumer info, off the delivery path).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg

from ..telemetry import INSTRUMENTS, process_span, record_outcome, settle_span
from ._decision import Decision, Handler, Settle
from ._delivery import Delivery
from ._pull import PullConsumer
from ._retry import nak_delay_for

log = structlog.get_logger(__name__)

# A handler that raised (a bug, not a classified failure) is retried after this.
HANDLER_ERROR_DELAY_S = 1.0
# Part of the drain grace kept for aborted handlers to nak
# (with the runtime's close reserve it makes up config.DRAIN_RESERVE_S).
_ABORT_GRACE_S = 2.0
# Bound on one consumer info request of the lag sampler.
_SAMPLE_TIMEOUT_S = 5.0


class _ConsumerInfo(msgspec.Struct):
    """What the lag sampler reads of a consumer info answer (or the error instead)."""

    num_pending: int = 0
    num_ack_pending: int = 0
    error: dict[str, Any] | None = None


_CONSUMER_INFO = msgspec.json.Decoder(_ConsumerInfo)


class WorkerSettings(msgspec.Struct, frozen=True, kw_only=True):
    """How one role's worker pulls and settles.

    Attributes:
        name: Role (or internal consumer) name, for logs.
        stream: Stream of the durable.
        durable: Durable consumer name.
        concurrency: Most messages handled at once.
        batch: Most messages one pull request asks for.
        ack_wait_s: The role's ack wait (in-progress acks go out at a third of it).
        consumer_backoff_s: The consumer's configured ``backoff`` (to time naks).
        fetch_expires_s: Lifetime of one pull request.
        fetch_heartbeat_s: Idle heartbeat of a pull request.
        pending_sample_s: Time between two samples of the durable's lag
            (``gitstore.consumer.pending``).
    """

    name: str
    stream: str
    durable: str
    concurrency: int
    batch: int
    ack_wait_s: float
    consumer_backoff_s: tuple[float, ...] = ()
    fetch_expires_s: float = 5.0
    fetch_heartbeat_s: float = 1.0
    pending_sample_s: float = 15.0


class _InFlight:
    __slots__ = ("aborted", "last_progress", "msg", "running", "task")

    def __init__(self, msg: Msg, now: float) -> None:
        self.msg = msg
        self.last_progress = now
        self.running = False
        self.aborted = False
        self.task: asyncio.Task[None] | None = None


class PullWorker:
    """Runs one handler on one durable pull consumer.

    Args:
        nc: The connection (messages are settled on it).
        settings: Consumer and concurrency settings.
        handler: Decides (and publishes) for each delivery.
        ensure_consumer: Checks (raising if not) that the durable exists again
            after the server said it was missing.
    """

    def __init__(
        self,
        nc: Client,
        settings: WorkerSettings,
        handler: Handler,
        *,
        ensure_consumer: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.settings = settings
        self._nc = nc
        self._handler = handler
        self._ensure_consumer = ensure_consumer
        self._inflight: dict[int, _InFlight] = {}
        # Delivered, waiting for one of the ``concurrency`` slots (oldest first).
        self._waiting: collections.deque[_InFlight] = collections.deque()
        self._running = 0
        self._draining = False
        self._missing_logged = False
        self._settle_tasks: set[asyncio.Task[None]] = set()
        self.settled: dict[Settle, int] = dict.fromkeys(Settle, 0)
        self.pull = PullConsumer(
            nc,
            stream=settings.stream,
            durable=settings.durable,
            capacity=self._free_slots,
            on_message=self._on_message,
            on_consumer_missing=self._consumer_missing,
            batch=settings.batch,
            expires_s=settings.fetch_expires_s,
            heartbeat_s=settings.fetch_heartbeat_s,
        )

    @property
    def bound(self) -> bool:
        """True while the durable exists and a pull request is being served."""
        return self.pull.bound

    @property
    def in_flight(self) -> int:
        """Messages delivered and not yet settled."""
        return len(self._inflight)

    def _free_slots(self) -> int:
        # Room for the running messages plus a batch waiting for slots; ask
        # only once half a batch fits (a request per message costs a round
        # trip per message), or when nothing is held at all.
        settings = self.settings
        held = len(self._inflight)
        free = settings.concurrency + settings.batch - held
        if held and free < max(1, min(settings.batch, settings.concurrency) // 2):
            return 0
        return free

    async def run(self, stop: asyncio.Event, *, drain_grace_s: float) -> None:
        """Serve until ``stop`` is set, then drain within ``drain_grace_s``.

        In-flight work gets the grace minus a short reserve; whatever is left
        then is aborted (messages nak'd without delay).
        """
        self.pull.bound = True
        puller = asyncio.create_task(self.pull.run(stop), name=f"pull:{self.settings.name}")
        progress = asyncio.create_task(self._progress(), name=f"progress:{self.settings.name}")
        sampler = asyncio.create_task(self._sample_lag(stop), name=f"lag:{self.settings.name}")
        try:
            await stop.wait()
            self._draining = True
            loop = asyncio.get_running_loop()
            reserve = min(_ABORT_GRACE_S, drain_grace_s / 2)
            await self._drain(puller, loop.time() + drain_grace_s - reserve, reserve)
        finally:
            progress.cancel()
            sampler.cancel()
            puller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(progress, sampler, puller, return_exceptions=True)

    async def _drain(self, puller: asyncio.Task[None], deadline: float, reserve: float) -> None:
        loop = asyncio.get_running_loop()
        # No new pulls; the open one dies with our inbox's interest.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(puller, timeout=max(deadline - loop.time(), 0.1))
        # Work that has not started yet goes back at once.
        while self._waiting:
            entry = self._waiting.popleft()
            self._inflight.pop(id(entry), None)
            INSTRUMENTS.in_flight.add(self.settings.durable, amount=-1)
            self._spawn_nak(entry.msg)
        running = [e.task for e in self._inflight.values() if e.task is not None]
        if running:
            log.info("draining", role=self.settings.name, in_flight=len(running))
            await asyncio.wait(running, timeout=max(deadline - loop.time(), 0))
        left = list(self._inflight.values())
        if left:
            log.warning(
                "drain grace over; nak'ing in-flight work", role=self.settings.name, count=len(left)
            )
            self._abort(left)
        tasks = [e.task for e in left if e.task is not None] + list(self._settle_tasks)
        if tasks:
            await asyncio.wait(tasks, timeout=reserve)

    def _abort(self, entries: Sequence[_InFlight]) -> None:
        for entry in entries:
            entry.aborted = True
            if entry.task is not None:
                entry.task.cancel()

    def _on_message(self, msg: Msg) -> None:
        if self._draining:
            self._spawn_nak(msg)
            return
        entry = _InFlight(msg, asyncio.get_running_loop().time())
        self._inflight[id(entry)] = entry
        INSTRUMENTS.in_flight.add(self.settings.durable)
        if self._running < self.settings.concurrency:
            self._start(entry)
        else:
            self._waiting.append(entry)

    def _start(self, entry: _InFlight) -> None:
        self._running += 1
        entry.running = True
        entry.task = asyncio.create_task(self._process(entry))

    async def _process(self, entry: _InFlight) -> None:
        msg = entry.msg
        try:
            try:
                delivery: Delivery | None = Delivery.from_msg(msg)
            except Exception:
                log.exception("undecodable delivery metadata", role=self.settings.name)
                delivery = None
            started = time.perf_counter()
            with process_span(
                subject=msg.subject,
                headers=msg.headers,
                durable=self.settings.durable,
                stream_seq=delivery.stream_seq if delivery else 0,
                attempt=delivery.num_delivered if delivery else 0,
                size=len(msg.data),
                connection=self._nc,
            ) as span:
                if delivery is None:
                    decision = Decision(settle=Settle.TERM, code="delivery-invalid")
                else:
                    decision = await self._handle(delivery)
                record_outcome(
                    span, settle=decision.settle, code=decision.code, reason=decision.reason
                )
                await self._settle(msg, decision)
                # messaging.process.duration: error.type is the code of what was not acked.
                INSTRUMENTS.process_duration.record(
                    time.perf_counter() - started,
                    self.settings.durable,
                    "" if decision.settle is Settle.ACK else decision.code,
                )
        except asyncio.CancelledError:
            # Aborted by the drain (or the process is going down): give the
            # message back for immediate redelivery elsewhere.
            await self._nak_now(msg)
            if not entry.aborted:
                raise
        finally:
            self._inflight.pop(id(entry), None)
            INSTRUMENTS.in_flight.add(self.settings.durable, amount=-1)
            self._running -= 1
            if self._waiting and not self._draining:
                self._start(self._waiting.popleft())
            self.pull.wake()

    async def _handle(self, delivery: Delivery) -> Decision:
        try:
            return await self._handler(delivery)
        except asyncio.CancelledError:
            raise
        except Exception:
            # A handler bug must not kill the worker or block the stream:
            # retry later; max_deliver bounds the attempts and dead-letters it.
            log.exception("handler failed", role=self.settings.name, subject=delivery.subject)
            return Decision(
                settle=Settle.NAK, nak_delay_s=HANDLER_ERROR_DELAY_S, code="handler-error"
            )

    async def _settle(self, msg: Msg, decision: Decision) -> None:
        try:
            if decision.settle is Settle.ACK:
                # The common case gets no span of its own: the process span
                # already says gitstore.settle=ack (a span costs ~15 us).
                await msg.ack()
            elif decision.settle is Settle.TERM:
                with settle_span(msg.subject, "term", self.settings.durable, self._nc):
                    await msg.term()
            else:
                delay = nak_delay_for(
                    decision.nak_delay_s,
                    self.settings.consumer_backoff_s,
                    msg.metadata.num_delivered,
                )
                with settle_span(msg.subject, "nak", self.settings.durable, self._nc) as span:
                    span.set_attribute("gitstore.nak_delay_s", delay)
                    await msg.nak(delay=delay or None)
        except Exception as exc:
            # The ack never reaches the server: the message is redelivered and
            # its result slot turns the redelivery into a skip.
            log.warning("settle failed", role=self.settings.name, error=repr(exc))
            return
        self.settled[decision.settle] += 1
        INSTRUMENTS.settled.add(self.settings.durable, decision.settle, decision.code)

    async def _nak_now(self, msg: Msg) -> None:
        with contextlib.suppress(Exception):
            await msg.nak()
            self.settled[Settle.NAK] += 1
            INSTRUMENTS.settled.add(self.settings.durable, Settle.NAK, "handed-back")

    def _spawn_nak(self, msg: Msg) -> None:
        task = asyncio.create_task(self._nak_now(msg))
        self._settle_tasks.add(task)
        task.add_done_callback(self._settle_tasks.discard)

    async def _consumer_missing(self) -> None:
        if self._ensure_consumer is not None:
            with contextlib.suppress(Exception):
                await self._ensure_consumer()
                # It exists (again): the next pull request will be served.
                self.pull.bound = True
                self._missing_logged = False
                return
        if not self._missing_logged:
            self._missing_logged = True
            log.warning(
                "durable consumer missing; not ready until it exists again",
                role=self.settings.name,
                stream=self.settings.stream,
                durable=self.settings.durable,
            )

    async def _sample_lag(self, stop: asyncio.Event) -> None:
        # The consumer-lag alert needs num_pending, which no delivery carries
        # reliably when idle: ask the server, once per interval, off the hot path.
        # The loop ends on ``stop`` as well as on cancellation: on Python 3.11
        # the ``wait_for`` inside ``request`` can swallow a cancel, and a
        # sampler that outlives its cancel would hold the drain forever.
        settings = self.settings
        subject = f"$JS.API.CONSUMER.INFO.{settings.stream}.{settings.durable}"
        while not stop.is_set():
            with contextlib.suppress(Exception):
                reply = await self._nc.request(
                    subject, b"", timeout=min(_SAMPLE_TIMEOUT_S, settings.pending_sample_s)
                )
                info = _CONSUMER_INFO.decode(reply.data)
                if info.error is None:
                    INSTRUMENTS.pending.set(settings.durable, to=info.num_pending)
                    INSTRUMENTS.ack_pending.set(settings.durable, to=info.num_ack_pending)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=settings.pending_sample_s)

    async def _progress(self) -> None:
        # In-progress acks keep JetStream from redelivering work that is
        # still running (or waiting for a slot) on this worker.
        interval = max(self.settings.ack_wait_s / 3, 0.05)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval / 2)
            now = loop.time()
            for entry in list(self._inflight.values()):
                if now - entry.last_progress >= interval:
                    entry.last_progress = now
                    with contextlib.suppress(Exception):
                        await entry.msg.in_progress()
