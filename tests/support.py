"""Helpers the tests share: waiting on conditions, reading streams."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import docker
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy

from gitstore_agents.config import Topology
from gitstore_agents.embedded import sample_event
from gitstore_agents.envelopes import GitEvent, decode

T = TypeVar("T")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


async def eventually(
    probe: Callable[[], Awaitable[T]],
    condition: Callable[[T], bool],
    *,
    timeout_s: float = 15.0,
    interval_s: float = 0.02,
    what: str = "condition",
) -> T:
    """Poll ``probe`` until ``condition`` holds; fail with the last value after ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    value = await probe()
    while not condition(value):
        if loop.time() > deadline:
            raise AssertionError(
                f"timed out after {timeout_s}s waiting for {what}; last: {value!r}"
            )
        await asyncio.sleep(interval_s)
        value = await probe()
    return value


async def stream_messages(js: JetStreamContext, stream: str, subject: str) -> list[bytes]:
    """Every message currently stored in ``stream`` on ``subject`` (wildcards allowed)."""
    info = await js.stream_info(stream)
    total = info.state.messages
    if total == 0:
        return []
    sub = await js.subscribe(subject, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL)
    payloads: list[bytes] = []
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=1.0)
            except TimeoutError:
                break
            payloads.append(msg.data)
            if msg.metadata.num_pending == 0:
                break
    finally:
        await sub.unsubscribe()
    return payloads


def example_event() -> GitEvent:
    """The sample git event shipped in the package (its blobs are ``examples/products/``)."""
    return decode(sample_event(), GitEvent)


def docker_available() -> bool:
    """True when a Docker engine answers (not merely a client binary)."""
    try:
        docker.from_env(timeout=2).ping()
    except Exception:
        return False
    return True


def pretty(data: bytes) -> str:
    """JSON bytes as indented text, for assertion messages."""
    return json.dumps(json.loads(data), indent=2, sort_keys=True)


def unique_topology(letter: str = "t") -> Topology:
    """Stream, bucket and subject names no other test uses (one server serves many tests)."""
    tag = f"{letter}{uuid.uuid4().hex[:10]}"
    upper = tag.upper()
    return Topology(
        prefix=tag,
        events_stream=f"{upper}_EVENTS",
        tasks_stream=f"{upper}_TASKS",
        validation_stream=f"{upper}_VALIDATION",
        failures_stream=f"{upper}_FAILURES",
        advisories_stream=f"{upper}_ADVISORIES",
        audit_stream=f"{upper}_AUDIT",
        modules_bucket=f"{tag}-modules",
        content_bucket=f"{tag}-content",
    )
