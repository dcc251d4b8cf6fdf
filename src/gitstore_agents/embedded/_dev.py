"""``gitstore-agents dev``: the whole pipeline on one machine, on a bundled nats-server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TextIO

import msgspec
from nats.aio.client import Client
from nats.js.api import DeliverPolicy

from ..config import MARKDOWN_COMPILE, Config, Topology, load_config
from ..consumers import Delivery
from ..envelopes import (
    ExtensionRef,
    FailureDiagnostic,
    GitEvent,
    TaskRequest,
    ValidationRequest,
    decode,
    headers,
    slot_token,
)
from ..ops import follow_ups_of, planned_tasks, publish_tasks, task_publisher
from ..pipeline import Carrier, Derived
from ..service import Runtime
from ._nats_server import NatsServer


def sample_event() -> bytes:
    """The sample git push shipped in the package (``dev --demo`` publishes it).

    Its blobs are the product files in the repository's ``examples/products/``.
    """
    return (resources.files(__package__) / "git-push.json").read_bytes()


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


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """What a task's slots hold: its validation request or its diagnostic.

    Attributes:
        task: The task.
        seq: Stream sequence of what is stored.
        subject: Its subject.
        result: The validation request (the task succeeded).
        failure: The diagnostic (it failed).
    """

    task: TaskRequest
    seq: int
    subject: str
    result: ValidationRequest | None = None
    failure: FailureDiagnostic | None = None


async def task_outcomes(
    runtime: Runtime, tasks: Sequence[TaskRequest], timeout_s: float
) -> list[Outcome]:
    """The outcome of each of ``tasks`` stored within ``timeout_s`` (missing ones left out)."""
    results, topology = runtime.results, runtime.config.topology
    assert results is not None
    subjects = topology.subjects
    found: dict[str, Outcome] = {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        for task in tasks:
            key = task.idempotency_key
            if key in found:
                continue
            subject = subjects.validation(task.kind, key)
            stored = await results.last(topology.validation_stream, subject)
            if stored is not None:
                result = decode(stored.data, ValidationRequest)
                found[key] = Outcome(task=task, seq=stored.seq, subject=subject, result=result)
                continue
            subject = subjects.failure(task.kind, slot_token(key))
            stored = await results.last(topology.failures_stream, subject)
            if stored is not None:
                failure = msgspec.json.decode(stored.data, type=FailureDiagnostic)
                found[key] = Outcome(task=task, seq=stored.seq, subject=subject, failure=failure)
        if len(found) == len(tasks) or loop.time() >= deadline:
            return [found[t.idempotency_key] for t in tasks if t.idempotency_key in found]
        # Results are one slot read away; the workers take a few ms per task.
        await asyncio.sleep(0.05)


async def _demo(runtime: Runtime, event: GitEvent, timeout_s: float, out: TextIO) -> None:
    """Publish ``event``, then show what the configured modules make of it.

    A module rebuilt since the last run derives new task keys. The event is
    a duplicate then, so the planner is not asked again: the demo derives the
    tasks the configuration in force would run (as ``backfill`` does) and
    publishes them to their slots. Slots still holding a result (a module
    that did not change) stay as they are; new keys run the new module.
    """
    topology = runtime.config.topology
    subject = topology.subjects.git_push(event.repository_id)
    duplicate = await publish_git_event(runtime.nc, topology, event)
    out.write(
        f"published git event {event.event_id} to {subject}"
        + (" (a duplicate: showing what the configured modules make of it)" if duplicate else "")
        + "\n"
    )
    delivery = Delivery(
        subject=subject,
        data=msgspec.json.encode(event),
        headers={headers.MSG_ID: event.event_id},
        stream=topology.events_stream,
        consumer="demo",
    )
    compile_tasks = await planned_tasks(runtime, delivery)
    compiler, _ = runtime.config.kind(MARKDOWN_COMPILE)
    kinds = [MARKDOWN_COMPILE, *runtime.config.role(compiler).follow_ups]
    publisher = task_publisher(runtime, kinds)
    carrier = Carrier(publisher, runtime.content)

    async def run(tasks: list[Derived]) -> list[Outcome]:
        carried = [await carrier.task(t) for t in tasks]
        await publish_tasks(publisher, runtime, carried, event.request_id)
        return await task_outcomes(runtime, [t.task for t in tasks], timeout_s)

    compiled = await run(compile_tasks)
    if len(compiled) < len(compile_tasks):
        raise DemoTimeoutError(
            f"saw {len(compiled)} of {len(compile_tasks)} compile results for event "
            f"{event.event_id} within {timeout_s}s"
        )
    _print_results(
        out,
        topology,
        [(o.seq, o.subject, o.result) for o in compiled if o.result is not None],
    )
    follow_ups: list[Derived] = []
    for outcome in compiled:
        if outcome.failure is not None:
            _print_failure(out, outcome.task, outcome.failure)
        elif outcome.result is not None:
            follow_ups += await follow_ups_of(runtime, outcome.result)
    if not follow_ups:
        return
    done = await run(follow_ups)
    for outcome in done:
        if outcome.result is not None:
            request = outcome.result
            named = (
                f" {request.extension.label}" if isinstance(request.extension, ExtensionRef) else ""
            )
            out.write(
                f"follow-up {request.kind}{named} for {request.path}: validation request "
                f"output_digest={request.output_digest} module={request.module_digest}\n"
            )
        elif outcome.failure is not None:
            _print_failure(out, outcome.task, outcome.failure)
    if len(done) < len(follow_ups):
        out.write(f"follow-ups: {len(done)} of {len(follow_ups)} finished within {timeout_s:g}s\n")


def _print_failure(out: TextIO, task: TaskRequest, diagnostic: FailureDiagnostic) -> None:
    out.write(
        f"{task.kind} task {task.task_id} for {task.path}: failed at {diagnostic.stage} "
        f"({diagnostic.code}): {diagnostic.message}\n"
    )


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
    demo: bool,
    demo_event: Path | None = None,
    port: int = -1,
    timeout_s: float = 30.0,
    out: TextIO = sys.stdout,
    config_path: Path | None = None,
) -> int:
    """Start nats-server, provision, run every role; with ``demo``, run one event and exit.

    Args:
        data_dir: JetStream data and the server config.
        demo: Publish one git event, print what it produced, and exit.
        demo_event: That event's JSON file (default: the packaged sample).
        port: Client port (-1: a free one).
        timeout_s: How long the demo waits for results.
        out: Where the demo prints.
        config_path: YAML configuration (default: built-in).

    Returns:
        The process exit code.
    """
    raw = await asyncio.to_thread(demo_event.read_bytes) if demo and demo_event else None
    event = decode(raw if raw is not None else sample_event(), GitEvent) if demo else None
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
        await _demo(runtime, event, timeout_s, out)
        stop.set()
        await serving
        return 0
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await runtime.close()
        server.stop()
