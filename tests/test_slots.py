"""What the pipeline relies on the server for, checked against a real nats-server.

A subject of a slot stream holds one message and the server refuses a second
one; the publisher tells "stored", "already stored" (slot taken, or the same
``Nats-Msg-Id`` inside the duplicate window) and "failed" apart; results are
read back with one direct get.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import nats
import pytest
from nats.aio.client import Client

from gitstore_agents.config import Topology
from gitstore_agents.consumers import (
    JetStreamPublisher,
    JetStreamResults,
    PayloadTooLargeError,
    PublishFailedError,
    provision_streams,
)
from gitstore_agents.embedded import NatsServer
from gitstore_agents.guardrails import Outbound, PublishBoundary, PublishRefusedError

KEY = "sha256:" + "ab" * 32


def _publisher(nc: Client, topology: Topology, timeout_s: float = 2.0) -> JetStreamPublisher:
    boundary = PublishBoundary(nc.jetstream(), [topology.subjects.validation_all()])
    return JetStreamPublisher(boundary, timeout_s=timeout_s)


def _result(topology: Topology, msg_id: str, body: bytes = b"{}") -> Outbound:
    return Outbound(
        subject=topology.subjects.validation("markdown.compile", KEY),
        payload=body,
        headers={"Nats-Msg-Id": msg_id},
    )


async def test_a_slot_keeps_its_first_message_and_says_so_to_every_later_one(
    nc: Client, topology: Topology
) -> None:
    await provision_streams(nc.jetstream(), topology)
    publisher = _publisher(nc, topology)

    (first,) = await publisher.publish([_result(topology, "a", b'{"n":1}')])
    (same_id,) = await publisher.publish([_result(topology, "a", b'{"n":2}')])
    (other_id,) = await publisher.publish([_result(topology, "b", b'{"n":3}')])

    assert (first.stored_before, first.seq) == (False, 1)
    assert same_id.duplicate, "inside the duplicate window: the PubAck says duplicate"
    assert other_id.occupied, "past the window (another id): the slot refuses it"
    stored = await JetStreamResults(nc.jetstream()).last(
        topology.validation_stream, topology.subjects.validation("markdown.compile", KEY)
    )
    assert stored is not None
    assert (stored.seq, stored.data) == (1, b'{"n":1}')
    missing = await JetStreamResults(nc.jetstream()).last(
        topology.validation_stream,
        topology.subjects.validation("markdown.compile", "sha256:" + "0" * 64),
    )
    assert missing is None


async def test_a_full_stream_is_a_failure_not_a_taken_slot(nc: Client, topology: Topology) -> None:
    # The server refuses a store into a full stream with the same err_code as
    # a taken slot: read as "stored before", the result would be lost.
    js = nc.jetstream()
    await provision_streams(js, topology)
    info = await js.stream_info(topology.validation_stream)
    await js.update_stream(replace(info.config, max_msgs=1))
    publisher = _publisher(nc, topology)
    await publisher.publish([_result(topology, "first")])
    other = Outbound(
        subject=topology.subjects.validation("markdown.compile", "sha256:" + "cd" * 32),
        payload=b"{}",
        headers={"Nats-Msg-Id": "second"},
    )
    with pytest.raises(PublishFailedError, match="maximum messages exceeded"):
        await publisher.publish([other])


async def test_a_publish_nobody_answers_is_sent_again_until_the_timeout(
    nc: Client, topology: Topology
) -> None:
    # No stream yet: the server answers "no responders" (as during a leader election).
    publisher = _publisher(nc, topology, timeout_s=3.0)
    sending = asyncio.create_task(publisher.publish([_result(topology, "late")]))
    await asyncio.sleep(0.3)
    assert not sending.done(), "still asking"
    await provision_streams(nc.jetstream(), topology)
    (stored,) = await asyncio.wait_for(sending, timeout=5)
    assert stored.seq == 1

    gone = _publisher(nc, Topology(prefix="nobody"), timeout_s=0.3)
    with pytest.raises(PublishFailedError, match="no stream answered"):
        await gone.publish([_result(Topology(prefix="nobody"), "x")])


async def test_refusals_that_no_retry_fixes_are_permanent(nc: Client, topology: Topology) -> None:
    await provision_streams(nc.jetstream(), topology)
    publisher = _publisher(nc, topology)
    with pytest.raises(PublishRefusedError, match="outside this role's allowed subjects"):
        await publisher.publish([Outbound(subject=f"{topology.prefix}.tasks.x.y", payload=b"")])
    too_big = _result(topology, "big", b"x" * (nc.max_payload + 1))
    with pytest.raises(PayloadTooLargeError) as raised:
        await publisher.publish([too_big])
    assert raised.value.retryable is False


async def test_answers_reach_the_right_publish_across_a_reconnect(
    nats_server: NatsServer, topology: Topology
) -> None:
    client = await nats.connect(nats_server.url, reconnect_time_wait=0.1)
    try:
        await provision_streams(client.jetstream(), topology)
        publisher = _publisher(client, topology, timeout_s=5.0)
        nats_server.kill()
        nats_server.start()
        results = await publisher.publish(
            [
                Outbound(
                    subject=topology.subjects.validation("markdown.compile", f"sha256:{n:064x}"),
                    payload=b"{}",
                    headers={"Nats-Msg-Id": str(n)},
                )
                for n in range(1, 20)
            ]
        )
    finally:
        await client.close()
    assert [r.seq for r in results] == list(range(1, 20))
