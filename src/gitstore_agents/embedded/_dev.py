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

from ..config import EXTENSION_RUN, MARKDOWN_COMPILE, Config, Topology, load_config
from ..envelopes import FailureDiagnostic, GitEvent, ValidationRequest, decode, headers
from ..service import Runtime
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
    nc: Client,
    topology: Topology,
    event_id: str,
    count: int,
    timeout_s: float,
    *,
    kinds: frozenset[str] | None = frozenset({MARKDOWN_COMPILE}),
) -> list[tuple[int, str, ValidationRequest]]:
    """Read the validation stream until ``count`` requests of ``event_id`` are stored.

    Args:
        nc: Connection to read with.
        topology: Stream and subject names.
        event_id: Source event of the requests to collect.
        count: How many to wait for.
        timeout_s: How long to wait.
        kinds: Task kinds to collect (None: every kind).

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
            if request.source_event_id == event_id and (kinds is None or request.kind in kinds):
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


async def _follow_up_outcomes(
    nc: Client, topology: Topology, event_id: str, count: int, timeout_s: float
) -> tuple[list[ValidationRequest], list[FailureDiagnostic]]:
    """Results and diagnostics of ``event_id``'s follow-up tasks, until ``count`` of them."""
    js = nc.jetstream()
    subjects = topology.subjects
    results: list[ValidationRequest] = []
    failures: list[FailureDiagnostic] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while len(results) + len(failures) < count and loop.time() < deadline:
        results, failures = [], []
        for stream, subject in (
            (topology.validation_stream, subjects.validation_all()),
            (topology.failures_stream, subjects.failures_all()),
        ):
            info = await js.stream_info(stream)
            if info.state.messages == 0:
                continue
            sub = await js.subscribe(subject, stream=stream, ordered_consumer=True)
            try:
                while True:
                    try:
                        msg = await sub.next_msg(timeout=1.0)
                    except TimeoutError:
                        break
                    if stream == topology.validation_stream:
                        request = decode(msg.data, ValidationRequest)
                        if request.source_event_id == event_id and request.kind != MARKDOWN_COMPILE:
                            results.append(request)
                    else:
                        diagnostic = msgspec.json.decode(msg.data, type=FailureDiagnostic)
                        if diagnostic.source_event_id == event_id:
                            failures.append(diagnostic)
                    if msg.metadata.num_pending == 0:
                        break
            finally:
                await sub.unsubscribe()
        if len(results) + len(failures) < count:
            await asyncio.sleep(0.2)
    return results, failures


def dev_config(url: str, config_path: Path | None) -> Config:
    """The configuration ``dev`` runs with: the file (if any), pointed at the bundled server."""
    config = load_config(config_path)
    return msgspec.structs.replace(
        config,
        nats=msgspec.structs.replace(config.nats, url=url),
        # One machine, possibly several dev processes: no fixed health port.
        health=msgspec.structs.replace(config.health, port=None),
        provision_on_start=True,
    )


async def run_dev(
    data_dir: Path,
    *,
    demo_event: Path | None,
    port: int = -1,
    timeout_s: float = 30.0,
    out: TextIO = sys.stdout,
    config_path: Path | None = None,
) -> int:
    """Start nats-server, provision, run every role; with ``demo_event``, run it once and exit.

    Returns:
        The process exit code.
    """
    raw = await asyncio.to_thread(demo_event.read_bytes) if demo_event is not None else None
    event = decode(raw, GitEvent) if raw is not None else None
    server = NatsServer(data_dir, port=port).start()
    config = dev_config(server.url, config_path)
    topology = config.topology
    runtime = Runtime(config)
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
                f"roles: {', '.join(runtime.roles)}; publish git events to "
                f"{topology.prefix}.events.git.push.<repository_id>; Ctrl-C to stop\n"
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
        compiled = expected_task_count(event)
        results = await wait_for_validation(
            runtime.nc, topology, event.event_id, compiled, timeout_s
        )
        _print_results(out, topology, results)
        follow_ups_per_task = _follow_ups_per_compile(config)
        if follow_ups_per_task:
            expected = compiled * follow_ups_per_task
            done, failed = await _follow_up_outcomes(
                runtime.nc, topology, event.event_id, expected, timeout_s
            )
            for request in done:
                out.write(
                    f"follow-up {request.kind} for {request.path}: validation request "
                    f"output_digest={request.output_digest}\n"
                )
            for diagnostic in failed:
                out.write(
                    f"follow-up {diagnostic.kind} task {diagnostic.task_id}: failed at "
                    f"{diagnostic.stage} ({diagnostic.code}): {diagnostic.message}\n"
                )
            if len(done) + len(failed) < expected:
                out.write(
                    f"follow-ups: {len(done) + len(failed)} of {expected} finished within "
                    f"{timeout_s:g}s\n"
                )
        stop.set()
        await serving
        return 0
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await runtime.close()
        server.stop()


def _follow_ups_per_compile(config: Config) -> int:
    """Follow-up tasks each successful compile task publishes."""
    try:
        role, _ = config.kind(MARKDOWN_COMPILE)
    except KeyError:
        return 0
    count = 0
    for kind in config.role(role).follow_ups:
        _, kind_config = config.kind(kind)
        count += len(kind_config.extensions) if kind == EXTENSION_RUN else 1
    return count
