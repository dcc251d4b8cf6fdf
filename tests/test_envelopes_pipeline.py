"""A git event written from docs/contracts.md alone is accepted by the real workers.

The payload is ``schemas/examples/GitEvent.handwritten.json``: written by hand
from the contract page (blob id from ``git hash-object``), never generated. It
is published byte for byte with the headers the page prescribes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from nats.aio.client import Client

from gitstore_agents.config import (
    MARKDOWN_COMPILE,
    MARKDOWN_COMPILER,
    PLANNER,
    Config,
    Topology,
    load_config,
)
from gitstore_agents.envelopes import (
    CompiledResource,
    ContentStore,
    GitEvent,
    TaskRequest,
    ValidationRequest,
    decode,
    headers,
    object_name,
    sha256_digest,
)
from gitstore_agents.service import Runtime

from .support import eventually, stream_messages

EXAMPLES = Path(__file__).resolve().parent.parent / "schemas" / "examples"
HANDWRITTEN = EXAMPLES / "GitEvent.handwritten.json"
BY_REF = EXAMPLES / "GitEvent.ref.json"
MODULE = "sha256:" + "5d" * 32
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def _publish_as_documented(nc: Client, topology: Topology, data: bytes) -> None:
    """Publish ``data`` untouched, with the headers docs/contracts.md asks for."""
    event = msgspec.json.decode(data)
    ack = await nc.jetstream().publish(
        f"{topology.prefix}.events.git.push.{event['repository_id']}",
        data,
        headers={
            "Nats-Msg-Id": event["event_id"],
            "Content-Type": "application/json",
            "GitStore-Schema-Version": "1.0",
            "traceparent": TRACEPARENT,
            "X-Request-ID": event["request_id"],
        },
    )
    assert not ack.duplicate


class Planner:
    """The planner role on real streams (with its content store), without the sandbox."""

    def __init__(self, nc: Client, topology: Topology, content: ContentStore) -> None:
        self.nc = nc
        self.topology = topology
        self.content = content

    async def tasks(self) -> list[tuple[dict[str, str], TaskRequest]]:
        js = self.nc.jetstream()
        found = []
        for seq in range(1, (await js.stream_info(self.topology.tasks_stream)).state.messages + 1):
            msg = await js.get_msg(self.topology.tasks_stream, seq)
            found.append((dict(msg.headers or {}), decode(msg.data, TaskRequest)))
        return found

    async def settled(self) -> tuple[int, int]:
        info = await self.nc.jetstream().consumer_info(self.topology.events_stream, PLANNER)
        return info.num_pending, info.num_ack_pending


@contextlib.asynccontextmanager
async def _serving(config: Config, roles: list[str]) -> AsyncIterator[Runtime]:
    rt = Runtime(config, roles)
    await rt.start()
    stop = asyncio.Event()
    serving = asyncio.create_task(rt.run(stop))
    try:
        yield rt
    finally:
        stop.set()
        await serving
        await rt.close()


def _config(nats_url: str, topology: Topology, module: str) -> Config:
    roles = {MARKDOWN_COMPILER: {"kinds": {MARKDOWN_COMPILE: {"module": module}}, "follow_ups": []}}
    return load_config(
        env={},
        overrides={
            "nats": {"url": nats_url},
            "topology": msgspec.to_builtins(topology),
            "health": {"port": None},
            "roles": roles,
        },
    )


@pytest.fixture
async def planner(nats_url: str, nc: Client, topology: Topology) -> AsyncIterator[Planner]:
    # The planner only needs the compile module's digest (the golden task's);
    # it never fetches the module, so nothing has to be stored under it.
    async with _serving(_config(nats_url, topology, MODULE), [PLANNER]) as rt:
        assert rt.content is not None
        yield Planner(nc, topology, rt.content)


async def test_handwritten_event_is_planned_into_a_task(planner: Planner) -> None:
    await _publish_as_documented(planner.nc, planner.topology, HANDWRITTEN.read_bytes())
    [(sent, task)] = await eventually(planner.tasks, lambda t: len(t) == 1, what="one task")
    event = decode(HANDWRITTEN.read_bytes(), GitEvent)
    assert task.source_event_id == event.event_id
    assert task.repository_id == event.repository_id
    assert task.commit_sha == event.new_commit_sha
    assert task.kind == MARKDOWN_COMPILE
    assert task.input == {
        "path": "products/summit-shell-jacket.md",
        "content": event.blobs[0].content,
        "parameters": {},
    }
    assert task.logical_time == event.occurred_at
    assert headers.read_headers(sent).msg_id == task.idempotency_key
    # The hand-written payload derives the committed golden task's input and key.
    golden = decode((EXAMPLES / "TaskRequest.json").read_bytes(), TaskRequest)
    assert (task.input_digest, task.idempotency_key) == (
        golden.input_digest,
        golden.idempotency_key,
    )


async def test_blob_sent_by_ref_is_resolved_and_verified(planner: Planner) -> None:
    content = decode(HANDWRITTEN.read_bytes(), GitEvent).blobs[0].content
    assert content is not None
    await planner.content.put(content.encode())
    await _publish_as_documented(planner.nc, planner.topology, BY_REF.read_bytes())
    [(_, task)] = await eventually(planner.tasks, lambda t: len(t) == 1, what="one task")
    assert task.input is not None
    assert task.input["content"] == content


async def test_tampered_content_is_terminated_not_planned(planner: Planner) -> None:
    event = decode(BY_REF.read_bytes(), GitEvent)
    ref = event.blobs[0].ref
    assert ref is not None
    # Bytes that do not hash to the ref, stored under its name behind the store's back.
    raw = await planner.nc.jetstream().object_store(planner.content.bucket)
    await raw.put(object_name(ref), b"---\nkind: Product\n---\n# forged\n")
    await _publish_as_documented(planner.nc, planner.topology, BY_REF.read_bytes())
    await eventually(planner.settled, lambda s: s == (0, 0), what="the event to be settled")
    assert await planner.tasks() == [], "no task may come from unverified content"
    assert sha256_digest(b"---\nkind: Product\n---\n# forged\n") != ref


@pytest.fixture
async def runtime(nats_url: str, topology: Topology) -> AsyncIterator[Runtime]:
    config = _config(nats_url, topology, "reference:markdown-compile")
    async with _serving(config, [PLANNER, MARKDOWN_COMPILER]) as rt:
        yield rt


async def test_handwritten_event_yields_a_validation_request(
    runtime: Runtime, nc: Client, topology: Topology
) -> None:
    """Needs the reference WASI modules (``sandbox/modules/*.wasm``)."""
    await _publish_as_documented(nc, topology, HANDWRITTEN.read_bytes())
    js = nc.jetstream()

    async def stored() -> list[bytes]:
        return await stream_messages(
            js, topology.validation_stream, topology.subjects.validation_all()
        )

    async def settled() -> tuple[int, int]:
        info = await js.consumer_info(topology.tasks_stream, MARKDOWN_COMPILER)
        return info.num_pending, info.num_ack_pending

    await eventually(stored, lambda s: len(s) == 1, what="one validation request")
    await eventually(settled, lambda s: s == (0, 0), what="the task to be acked")
    [data] = await stored()
    request = decode(data, ValidationRequest)
    assert request.source_event_id == "01938a2e-5c1d-7b2a-8f00-3d2c1b0a9e87"
    assert request.path == "products/summit-shell-jacket.md"
    assert sha256_digest(bytes(request.output)) == request.output_digest
    compiled = decode(bytes(request.output), CompiledResource)
    assert compiled.resource.metadata.name == "summit-shell-jacket"
    assert compiled.resource.metadata.namespace == "outerwear"
    assert compiled.resource.spec["price"] == {"amount": "229.00", "currency": "EUR"}
    assert compiled.body["children"][0]["type"] == "heading"
