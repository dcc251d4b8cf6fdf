"""One git event, end to end, against a real nats-server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import msgspec
import pytest
from nats.aio.client import Client

from gitstore_agents.config import MARKDOWN_COMPILER, PLANNER, Topology, load_config
from gitstore_agents.embedded import expected_task_count, publish_git_event
from gitstore_agents.envelopes import ValidationRequest, decode
from gitstore_agents.service import Runtime

from .support import eventually, example_event, stream_messages


@pytest.fixture
async def runtime(nats_url: str, topology: Topology) -> AsyncIterator[Runtime]:
    config = load_config(
        env={},
        overrides={
            "nats": {"url": nats_url},
            "topology": msgspec.to_builtins(topology),
            "health": {"port": None},
            # This test is about the compile hop; follow-ups have their own tests.
            "roles": {MARKDOWN_COMPILER: {"follow_ups": []}},
        },
    )
    rt = Runtime(config, [PLANNER, MARKDOWN_COMPILER])
    await rt.start()
    stop = asyncio.Event()
    serving = asyncio.create_task(rt.run(stop))
    try:
        yield rt
    finally:
        stop.set()
        await serving
        await rt.close()


async def _settled(nc: Client, topology: Topology) -> dict[str, tuple[int, int]]:
    """(pending, ack_pending) per role consumer."""
    js = nc.jetstream()
    out = {}
    for stream, durable in (
        (topology.events_stream, PLANNER),
        (topology.tasks_stream, MARKDOWN_COMPILER),
    ):
        info = await js.consumer_info(stream, durable)
        out[durable] = (info.num_pending, info.num_ack_pending)
    return out


async def test_git_event_yields_one_validation_request_per_markdown_file(
    runtime: Runtime, nc: Client, topology: Topology
) -> None:
    event = example_event()
    assert expected_task_count(event) == 2
    await publish_git_event(nc, topology, event)
    js = nc.jetstream()

    # Publishing happens before acking, so once every input is acked all
    # results are stored: the count below is final, not a snapshot.
    await eventually(
        lambda: _settled(nc, topology),
        lambda s: s == {PLANNER: (0, 0), MARKDOWN_COMPILER: (0, 0)},
        what="planner and compiler to ack everything",
    )
    tasks = await stream_messages(js, topology.tasks_stream, topology.subjects.tasks_all())
    assert len(tasks) == 2
    stored = await stream_messages(
        js, topology.validation_stream, topology.subjects.validation_all()
    )
    assert len(stored) == 2, "exactly one validation request per changed markdown file"
    requests = {r.output_digest: r for r in (decode(b, ValidationRequest) for b in stored)}
    outputs = {
        json.loads(bytes(r.output))["resource"]["metadata"]["name"]: json.loads(bytes(r.output))
        for r in requests.values()
    }
    assert set(outputs) == {"trail-runner-gtx", "trail-essentials"}

    product = outputs["trail-runner-gtx"]
    assert product["resource"]["kind"] == "Product"
    assert product["resource"]["apiVersion"] == "catalog.gitstore.dev/v1beta1"
    assert product["resource"]["metadata"]["namespace"] == "footwear"
    assert product["resource"]["spec"]["price"] == {"amount": "149.90", "currency": "EUR"}
    body = product["body"]
    assert body["type"] == "root"
    types = [node["type"] for node in body["children"]]
    assert types[:3] == ["heading", "paragraph", "heading"]
    assert {"list", "blockquote", "thematicBreak", "code"} <= set(types)
    heading = body["children"][0]
    assert heading["depth"] == 1
    assert heading["children"] == [{"type": "text", "value": "Trail Runner GTX"}]
    paragraph = body["children"][1]
    assert {"type": "strong", "children": [{"type": "text", "value": "wet, technical trails"}]} in (
        paragraph["children"]
    )
    for request in requests.values():
        assert request.source_event_id == event.event_id
        assert request.commit_sha == event.new_commit_sha
        assert request.output_digest.startswith("sha256:")

    # Every validation request carries the contract's headers and the API's
    # request id the control plane sent with the push.
    for seq in (1, 2):
        stored_msg = await js.get_msg(topology.validation_stream, seq)
        sent = stored_msg.headers or {}
        assert sent["Content-Type"] == "application/json"
        assert sent["GitStore-Schema-Version"] == "1.1"  # ValidationRequest 1.1
        assert sent["X-Request-ID"] == event.request_id
        assert sent["Nats-Msg-Id"] == decode(stored_msg.data, ValidationRequest).idempotency_key


async def test_input_is_not_acked_until_its_result_is_stored(
    runtime: Runtime, nc: Client, topology: Topology
) -> None:
    js = nc.jetstream()
    # Without the validation stream every result publish fails: a worker that
    # acked first would lose the task here.
    await js.delete_stream(topology.validation_stream)
    await publish_git_event(nc, topology, example_event())

    info = await eventually(
        lambda: js.consumer_info(topology.tasks_stream, MARKDOWN_COMPILER),
        lambda i: i.num_redelivered >= 1,
        what="the compiler to see a task again after its publish failed",
    )
    assert info.ack_floor.consumer_seq < 2, "no task may be acked while its result is not stored"

    config = next(c for c in topology.stream_configs() if c.name == topology.validation_stream)
    await js.add_stream(config)
    await eventually(
        lambda: _settled(nc, topology),
        lambda s: s == {PLANNER: (0, 0), MARKDOWN_COMPILER: (0, 0)},
        what="every task to be acked once the stream is back",
    )
    stored = await stream_messages(
        js, topology.validation_stream, topology.subjects.validation_all()
    )
    assert len(stored) == 2
    keys = {msgspec.json.decode(b)["idempotency_key"] for b in stored}
    assert len(keys) == 2
