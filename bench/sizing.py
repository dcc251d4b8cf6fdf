"""``python -m bench.sizing``: bytes per event and per task in every stream, measured.

Runs ``--events`` realistic git events (one product file each,
``bench/_products.py``) through every role in one process, with the packaged
reference modules and the built-in configuration: the planner plans a
``markdown.compile`` task per event, its result brings a ``catalog.enrich`` and
an ``extension.run`` (``seo-lint``) follow-up, so each event makes three tasks,
three validation requests and the audit records of four roles; every
``--invalid-every``-th event carries a product without ``metadata.name``,
which the compile module rejects: one task, one diagnostic in the failures
stream, no follow-ups (as an edit that breaks a product would). Once every
durable has settled everything, it reads each stream's state (messages and
bytes, as JetStream counts them against ``max_bytes``) and its size on disk,
and prints them per event and per task, with a projection to ``--project``
products (one push each).

The events are published as the control plane does (``Nats-Msg-Id``,
``Content-Type``, ``traceparent``, ``X-Request-ID``). Sizes grow with the
product files (their mean size is printed). Only an input or output that would
make a message larger than the server's ``max_payload`` (1 MiB by default)
travels through the content store; catalog files never do, so it stays empty
here.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from gitstore_agents.config import Config, load_config
from gitstore_agents.consumers import dead_letter_consumer, role_consumer
from gitstore_agents.envelopes import Blob, GitEvent, git_blob_oid, headers
from gitstore_agents.service import Runtime
from gitstore_agents.telemetry import configure_logging

from ._harness import BenchServer, connect
from ._products import product_event, product_markdown

# Each event makes a compile task and its two follow-ups (enrich, one extension).
TASKS_PER_EVENT = 3
_POLL_S = 0.05


@dataclass(frozen=True)
class StoreSize:
    """What one stream (or an object store's stream) holds after the run.

    Attributes:
        name: Stream name (``OBJ_<bucket>`` for an object store).
        label: What it is in the topology (``EVENTS``, ``TASKS``, ``content`` …).
        messages: Messages stored by the run (the baseline subtracted).
        bytes: Bytes JetStream counts for them (what ``max_bytes`` limits).
        disk_bytes: Bytes of the stream's folder on disk (blocks, indexes, metadata).
    """

    name: str
    label: str
    messages: int
    bytes: int
    disk_bytes: int


@dataclass
class Sizing:
    """The outcome of one run.

    Attributes:
        events: Git events published.
        invalid: Events whose product the compile module rejects.
        tasks: Tasks stored (``3`` per valid event, ``1`` per invalid one).
        mean_file_bytes: Mean size of the product files the events carry.
        stores: One entry per stream and object store (what the run added).
        modules_bytes: What the modules store holds: the reference modules
            provisioning uploads, once per install.
        seconds: Wall time from the first publish to the last settle.
        notes: Anything that makes the figures suspect (failures, missing tasks).
    """

    events: int
    invalid: int
    tasks: int
    mean_file_bytes: float
    stores: list[StoreSize]
    modules_bytes: int
    seconds: float
    notes: list[str] = field(default_factory=list)


def sizing_config(url: str) -> Config:
    """The built-in configuration (reference modules, every role) against ``url``."""
    return load_config(
        env={},
        overrides={"nats": {"url": url}, "health": {"port": None}, "worker_id": "sizing"},
    )


def _labelled(config: Config) -> list[tuple[str, str]]:
    t = config.topology
    return [
        ("EVENTS", t.events_stream),
        ("TASKS", t.tasks_stream),
        ("VALIDATION", t.validation_stream),
        ("FAILURES", t.failures_stream),
        ("AUDIT", t.audit_stream),
        ("ADVISORIES", t.advisories_stream),
        ("content", f"OBJ_{t.content_bucket}"),
        ("modules", f"OBJ_{t.modules_bucket}"),
    ]


async def _state(js: JetStreamContext, name: str) -> tuple[int, int]:
    try:
        info = await js.stream_info(name)
    except NotFoundError:
        return 0, 0
    return info.state.messages, info.state.bytes


def _disk_bytes(store_dir: Path, stream: str) -> int:
    """Bytes under the stream's folder in the server's JetStream store."""
    total = 0
    for folder in store_dir.rglob(stream):
        if folder.is_dir() and folder.parent.name == "streams":
            for root, _dirs, files in os.walk(folder):
                total += sum((Path(root) / f).stat().st_size for f in files)
    return total


def sizing_event(number: int, *, invalid: bool) -> GitEvent:
    """Product event ``number``; ``invalid``: its product lacks ``metadata.name``."""
    event = product_event(number, run="sizing")
    if not invalid:
        return event
    path, content = product_markdown(number)
    broken = "".join(line for line in content.splitlines(True) if not line.startswith("  name:"))
    blob = Blob(path=path, blob_oid=git_blob_oid(broken.encode()), content=broken)
    return msgspec.structs.replace(event, blobs=[blob])


async def _publish(js: JetStreamContext, config: Config, events: Sequence[GitEvent]) -> None:
    """Publish as the control plane does, PubAcks awaited in windows."""
    subjects = config.topology.subjects
    window = 500
    for start in range(0, len(events), window):
        futures = []
        for event in events[start : start + window]:
            trace = event.event_id.replace("-", "")
            futures.append(
                await js.publish_async(
                    subjects.git_push(event.repository_id),
                    msgspec.json.encode(event),
                    headers={
                        headers.MSG_ID: event.event_id,
                        headers.CONTENT_TYPE: headers.JSON,
                        headers.TRACEPARENT: f"00-{trace}-{trace[:16]}-01",
                        headers.REQUEST_ID: f"req-{event.event_id}",
                    },
                )
            )
        await asyncio.gather(*futures)


async def _settled(js: JetStreamContext, config: Config) -> bool:
    """Every role's durables (inputs and dead letters) have nothing pending or unacked."""
    for role in config.roles:
        for spec in (role_consumer(config, role), dead_letter_consumer(config, role)):
            info = await js.consumer_info(spec.stream, spec.durable)
            if info.num_pending or info.num_ack_pending:
                return False
    return True


async def _wait_done(js: JetStreamContext, config: Config, tasks: int, timeout_s: float) -> None:
    """Wait until ``tasks`` tasks have an outcome and every durable settled them."""
    topology = config.topology
    deadline = time.monotonic() + timeout_s
    while True:
        outcomes = (await _state(js, topology.validation_stream))[0] + (
            await _state(js, topology.failures_stream)
        )[0]
        if outcomes >= tasks and await _settled(js, config):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{outcomes} of {tasks} task outcomes after {timeout_s:g}s")
        await asyncio.sleep(_POLL_S)  # polling a server's counters, not synchronizing work


async def measure(events: int, *, invalid_every: int = 0, timeout_s: float = 600.0) -> Sizing:
    """Run ``events`` product events through every role; the sizes of every store.

    Args:
        events: How many git events to publish.
        invalid_every: Every n-th event carries an invalid product (0: none).
        timeout_s: How long to wait for every task's outcome.
    """
    with BenchServer(sync_always=False) as bench:
        config = sizing_config(bench.url)
        stop = asyncio.Event()
        runtime = Runtime(config)
        await runtime.start(stop, retry=False)
        serving = asyncio.create_task(runtime.run(stop))
        nc = await connect(bench.url)
        js = nc.jetstream(publish_async_max_pending=1000)
        try:
            labelled = _labelled(config)
            # Provisioning stored the reference modules: count only what the run adds.
            before = {name: await _state(js, name) for _, name in labelled}
            disk_before = {name: _disk_bytes(bench.store_dir, name) for _, name in labelled}
            bad = {i for i in range(events) if invalid_every and i % invalid_every == 1}
            made = [sizing_event(i, invalid=i in bad) for i in range(events)]
            files = [len(b.content or "") for e in made for b in e.blobs]
            expected = (events - len(bad)) * TASKS_PER_EVENT + len(bad)
            started = time.monotonic()
            await _publish(js, config, made)
            await _wait_done(js, config, expected, timeout_s)
            seconds = time.monotonic() - started
            stores = []
            for label, name in labelled:
                messages, size = await _state(js, name)
                stores.append(
                    StoreSize(
                        name=name,
                        label=label,
                        messages=messages - before[name][0],
                        bytes=size - before[name][1],
                        disk_bytes=_disk_bytes(bench.store_dir, name) - disk_before[name],
                    )
                )
        finally:
            stop.set()
            await serving
            await runtime.close()
            await nc.close()
    by_label = {s.label: s for s in stores}
    sizing = Sizing(
        events=events,
        invalid=len(bad),
        tasks=by_label["TASKS"].messages,
        mean_file_bytes=sum(files) / max(len(files), 1),
        stores=stores,
        modules_bytes=before[f"OBJ_{config.topology.modules_bucket}"][1]
        + by_label["modules"].bytes,
        seconds=seconds,
    )
    if sizing.tasks != expected:
        sizing.notes.append(f"expected {expected} tasks, stored {sizing.tasks}")
    if by_label["FAILURES"].messages != len(bad):
        sizing.notes.append(
            f"{by_label['FAILURES'].messages} diagnostics or dead letters, "
            f"expected {len(bad)}: tasks failed that should not have"
        )
    return sizing


def _human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def render(sizing: Sizing, *, project: int) -> str:
    """The sizing table (markdown), per event, per task and projected to ``project`` events."""
    n, tasks = sizing.events, max(sizing.tasks, 1)
    lines = [
        f"sizing: {n} events (one product file each, mean {sizing.mean_file_bytes:,.0f} B; "
        f"{sizing.invalid} invalid), {sizing.tasks} tasks, every role, reference modules, "
        f"{sizing.seconds:.1f} s",
        "",
        "| stream | messages per event | bytes per event | bytes per task | "
        f"bytes per message | {project:,} events |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    per_event = [s for s in sizing.stores if s.label != "modules"]
    for s in per_event:
        per_msg = s.bytes / s.messages if s.messages else 0.0
        lines.append(
            f"| {s.label} (`{s.name}`) | {s.messages / n:.2f} | {s.bytes / n:,.0f} | "
            f"{s.bytes / tasks:,.0f} | {per_msg:,.0f} | {_human(s.bytes / n * project)} |"
        )
    total = sum(s.bytes for s in per_event)
    disk = sum(s.disk_bytes for s in per_event)
    lines.append(
        f"| total | | {total / n:,.0f} | {total / tasks:,.0f} | | {_human(total / n * project)} |"
    )
    lines.append("")
    lines.append(
        f"bytes: as JetStream counts them against max_bytes (per replica); on disk the "
        f"streams' block files hold {disk / max(total, 1):.2f}x that"
    )
    modules = next(s for s in sizing.stores if s.label == "modules")
    lines.append(
        f"modules store (`{modules.name}`): {sizing.modules_bytes:,} bytes, the reference "
        f"modules provisioning uploads (once per install, {modules.bytes:,} added by the run)"
    )
    lines += [f"note: {note}" for note in sizing.notes]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m bench.sizing", description=__doc__)
    parser.add_argument("--events", type=int, default=2000, help="git events to run (2000)")
    parser.add_argument(
        "--invalid-every",
        type=int,
        default=20,
        help="every n-th event carries a product the compile module rejects (20; 0: none)",
    )
    parser.add_argument(
        "--project", type=int, default=1_000_000, help="project the bytes to this many events"
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait (600)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run and print the table; 1 if the run was incomplete."""
    args = parse_args(argv)
    # Rejected products log a warning each: expected here.
    configure_logging(json=False, level="ERROR")
    sizing = asyncio.run(
        measure(args.events, invalid_every=args.invalid_every, timeout_s=args.timeout)
    )
    print(render(sizing, project=args.project))
    return 1 if sizing.notes else 0


if __name__ == "__main__":
    raise SystemExit(main())
