"""Streams without a leader for a moment (a cluster election): retried within the timeouts.

JetStream answers a publish to a stream that has no leader right now with 503
"no responders": nothing was stored. The publisher and the ledger send such
requests again until their timeout, so an election costs a short wait rather
than one of the input's deliveries (``bench/fault_cluster.py`` is the full run).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from nats.aio.client import Client
from nats.js.api import KeyValueConfig, PubAck, StreamConfig
from nats.js.kv import KeyValue

from gitstore_agents.consumers import Claim, Ledger, PublishFailedError, publish_confirmed
from gitstore_agents.envelopes import headers
from gitstore_agents.guardrails import Outbound, PublishBoundary
from gitstore_agents.pipeline import plan_tasks

from .support import eventually, example_event


class CountingBoundary(PublishBoundary):
    """A boundary that counts publish attempts."""

    attempts = 0

    async def publish_async(self, message: Outbound) -> asyncio.Future[PubAck]:
        self.attempts += 1
        return await super().publish_async(message)


class CountingKeyValue:
    """Forwards to a bucket and counts the requests the ledger makes."""

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv
        self.requests = 0

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._kv, name)

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.requests += 1
            return await method(*args, **kwargs)

        return counted


def _message(subject: str) -> Outbound:
    return Outbound(subject=subject, payload=b"{}", headers={headers.MSG_ID: "m-1"})


async def test_a_publish_no_stream_answered_is_sent_again_until_one_does(nc: Client) -> None:
    js = nc.jetstream()
    prefix = f"late{uuid.uuid4().hex[:8]}"
    boundary = CountingBoundary(js, [f"{prefix}.>"])
    publishing = asyncio.create_task(
        publish_confirmed(boundary, [_message(f"{prefix}.x")], timeout_s=10)
    )
    await eventually(lambda: _value(boundary.attempts), lambda n: n >= 2, what="a re-send")
    assert not publishing.done()
    await js.add_stream(StreamConfig(name=prefix.upper(), subjects=[f"{prefix}.>"]))
    acks = await publishing
    assert acks[0].seq == 1
    assert (await js.stream_info(prefix.upper())).state.messages == 1


async def test_a_stream_that_never_answers_fails_the_publish_at_the_timeout(nc: Client) -> None:
    boundary = CountingBoundary(nc.jetstream(), ["nowhere.>"])
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(PublishFailedError, match="no stream answered"):
        await publish_confirmed(boundary, [_message("nowhere.x")], timeout_s=0.5)
    assert 0.3 <= loop.time() - started < 2.0
    assert boundary.attempts >= 2


async def test_a_ledger_claim_nobody_answered_is_asked_again(nc: Client) -> None:
    js = nc.jetstream()
    bucket = f"runs-{uuid.uuid4().hex[:8]}"
    kv = CountingKeyValue(await js.create_key_value(KeyValueConfig(bucket=bucket)))
    await js.delete_key_value(bucket)  # between leaders: nobody answers for it
    ledger = Ledger(kv, unanswered_retry_s=10)  # type: ignore[arg-type]
    task = plan_tasks(example_event(), "evt-1", {"markdown.compile": "sha256:" + "ab" * 32})[0]
    claiming = asyncio.create_task(ledger.claim(task, worker_id="a", lease_s=30))
    await eventually(lambda: _value(kv.requests), lambda n: n >= 2, what="a second request")
    assert not claiming.done()
    await js.create_key_value(KeyValueConfig(bucket=bucket))
    assert isinstance(await claiming, Claim)


async def _value(value: int) -> int:
    return value
