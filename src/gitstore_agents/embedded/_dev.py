"""``gitstore-agents dev``: the whole pipeline on one machine, on a bundled nats-server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path
from typing import TextIO

import msgspec
from nats.aio.client import Client
from nats.js.api import DeliverPolicy

from ..consumers import ROLES, Runtime, Topology
from ..envelopes import GitEvent, ValidationRequest, decode, headers
from ._nats_server import NatsServer


class DemoTimeoutError(Exception):
    """The demo did not see every validation request in time."""


async def publish_git_event(nc: Client, topology: Topology, event: GitEvent) -> bool:
    """Publish ``event`` as the control plane does; True if JetStream deduplicated it."""
    js = nc.jetstream()
    ack = await js.publish(
        topology.subjects.git_push(event.repository_id),
        msgspec.json.encode(event),
        headers={
            headers.MSG_ID: event.event_id,
            headers.CONTENT_TYPE: headers.JSON,
            **({headers.REQUEST_ID: event.request_id} if event.request_id else {}),
        },
    )
    return bool(ack.duplicate)


def expected_task_count(event: GitEvent) -> int:
    """Tasks the planner derives for ``event`` (changed markdown files with content)."""
    changed = set(event.changed_paths)
    return sum(1 for b in event.blobs if b.path in changed and b.path.endswith(".md"))


async def wait_for_validation(
    nc: Client, topology: Topology, event_id: str, count: int, timeout_s: float
) -> list[tuple[int, str, ValidationRequest]]:
    """Read the validation stream until ``count`` requests of ``event_id`` are stored.

    Returns:
        ``(stream sequence, subject, request)`` for each one, in stream order.
    """
    js = nc.jetstream()
    sub = await js.subscribe(
        topology.subjects.validation_all(),
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.ALL,
    )
    found: list[tuple[int, str, ValidationRequest]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    try:
        while len(found) < count:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise DemoTimeoutError(
                    f"saw {len(found)} of {count} validation requests for event {event_id} "
                    f"within {timeout_s}s"
                )
            try:
                msg = await sub.next_msg(timeout=remaining)
            except TimeoutError:
                continue
            request = decode(msg.data, ValidationRequest)
            if request.source_event_id == event_id:
                found.append((msg.metadata.sequence.stream, msg.subject, request))
    finally:
        await sub.unsubscribe()
    return found


def _print_results(
    out: TextIO, topology: Topology, results: list[tuple[int, str, ValidationRequest]]
) -> None:
    for seq, subject, request in results:
        out.write(
            f"validation request stored: stream={topology.validation_stream} seq={seq} "
            f"subject={subject}\n"
        )
        out.write(json.dumps(json.loads(msgspec.json.encode(request)), indent=2, sort_keys=True))
        out.write("\n")


async def run_dev(
    data_dir: Path,
    *,
    demo_event: Path | None,
    port: int = -1,
    timeout_s: float = 30.0,
    out: TextIO = sys.stdout,
) -> int:
    """Start nats-server, provision, run every role; with ``demo_event``, run it once and exit.

    Returns:
        The process exit code.
    """
    raw = await asyncio.to_thread(demo_event.read_bytes) if demo_event is not None else None
    event = decode(raw, GitEvent) if raw is not None else None
    topology = Topology()
    server = NatsServer(data_dir, port=port).start()
    runtime = Runtime(server.url, topology, ROLES)
    stop = asyncio.Event()
    try:
        await runtime.start()
        serving = asyncio.create_task(runtime.run(stop))
        if event is None:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            out.write(
                f"gitstore-agents dev: nats-server at {server.url}, data in {data_dir}\n"
                f"roles: {', '.join(ROLES)}; publish git events to "
                f"{topology.subjects.git_push('<repository_id>')}; Ctrl-C to stop\n"
            )
            out.flush()
            await serving
            return 0
        duplicate = await publish_git_event(runtime.nc, topology, event)
        out.write(
            f"published git event {event.event_id} to "
            f"{topology.subjects.git_push(event.repository_id)}"
            f"{' (duplicate: already processed, showing stored results)' if duplicate else ''}\n"
        )
        results = await wait_for_validation(
            runtime.nc, topology, event.event_id, expected_task_count(event), timeout_s
        )
        _print_results(out, topology, results)
        stop.set()
        await serving
        return 0
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await runtime.close()
        server.stop()
