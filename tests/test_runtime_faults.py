"""Crashes, drains and server restarts end with exactly one result per task."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import nats
import nats.js.errors
from nats.aio.client import Client

from gitstore_agents.config import (
    CATALOG_ENRICH,
    ENRICHER,
    EXTENSION_RUNNER,
    MARKDOWN_COMPILE,
    MARKDOWN_COMPILER,
    PLANNER,
    Config,
    Topology,
)
from gitstore_agents.consumers import (
    Decision,
    Delivery,
    PullWorker,
    Settle,
    WorkerSettings,
    provision,
    provision_consumer,
    role_consumer,
)
from gitstore_agents.embedded import NatsServer
from gitstore_agents.envelopes import AuditDecision
from gitstore_agents.service import Runtime

from .runtime_support import (
    default_modules,
    make_event,
    publish_event,
    running,
    runtime_config,
    start_worker,
    validation_requests,
    wait_settled,
    write_config,
    write_module,
)
from .support import eventually
from .telemetry_support import audit_records
from .wasm_modules import echo_module

# About a third of a second per run: long enough to be caught mid-task.
SLOW_SPIN = 250_000_000
ROLES = [PLANNER, MARKDOWN_COMPILER]


def slow_config(nats_url: str, topology: Topology, tmp_path: Path, **kwargs: object) -> Config:
    modules = default_modules(tmp_path)
    modules[MARKDOWN_COMPILE] = write_module(tmp_path, "slow", echo_module(spin=SLOW_SPIN))
    return runtime_config(nats_url, topology, tmp_path, modules=modules, follow_ups=(), **kwargs)


async def unacked(nc: Client, topology: Topology) -> int:
    """Tasks delivered to the compile role and not yet settled."""
    info = await nc.jetstream().consumer_info(topology.tasks_stream, MARKDOWN_COMPILER)
    return info.num_ack_pending


async def wait_exit(process: subprocess.Popen[bytes], timeout_s: float) -> int | None:
    try:
        return await asyncio.to_thread(process.wait, timeout_s)
    except subprocess.TimeoutExpired:
        return None


async def test_worker_sigkilled_mid_task_redelivers_it_and_stores_one_result(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path
) -> None:
    config = slow_config(nats_url, topology, tmp_path)
    config_file = write_config(tmp_path / "gitstore.yaml", config)
    js = nc.jetstream()
    await provision(js, config, tuple(ROLES))
    events = [make_event(number) for number in range(3)]
    for event in events:
        await publish_event(js, topology, event)

    log = tmp_path / "worker.log"
    worker = start_worker(config_file, ROLES, log)
    try:
        await eventually(
            lambda: unacked(nc, topology),
            lambda n: n >= 1,
            timeout_s=20,
            what="a task running in the worker",
        )
        worker.send_signal(signal.SIGKILL)
        assert await wait_exit(worker, 5) == -signal.SIGKILL
    finally:
        worker.kill()
        worker.wait()

    survivor = start_worker(config_file, ROLES, log)
    try:
        await wait_settled(js, config, ROLES, timeout_s=30)
        requests = await validation_requests(js, topology)
        survivor.send_signal(signal.SIGTERM)
        assert await wait_exit(survivor, 10) == 0, log.read_text()[-3000:]
    finally:
        survivor.kill()
        survivor.wait()

    assert len(requests) == 3
    assert len({r.idempotency_key for r in requests}) == 3, "one result per task"
    trail = [r for e in events for r in await audit_records(nc, topology, e.event_id)]
    redelivered = [
        r for r in trail if r.decision is AuditDecision.PUBLISHED and (r.attempt or 1) > 1
    ]
    assert redelivered, "the killed worker's tasks were redelivered after the ack wait"


async def test_sigterm_finishes_in_flight_work_and_exits_zero_within_the_grace(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path
) -> None:
    # Runs of about two seconds: SIGTERM lands while every slot is busy.
    modules = default_modules(tmp_path)
    modules[MARKDOWN_COMPILE] = write_module(tmp_path, "slower", echo_module(spin=6 * SLOW_SPIN))
    long_ack = {"ack_wait_s": 8.0}
    config = runtime_config(
        nats_url,
        topology,
        tmp_path,
        modules=modules,
        follow_ups=(),
        limits={"timeout_ms": 4000, "fuel": 10**11},
        roles={
            MARKDOWN_COMPILER: {**long_ack, "concurrency": 3},
            ENRICHER: long_ack,
            EXTENSION_RUNNER: long_ack,
        },
        drain_grace_s=8.0,
    )
    config_file = write_config(tmp_path / "gitstore.yaml", config)
    js = nc.jetstream()
    await provision(js, config, tuple(ROLES))
    events = 6
    for number in range(3):
        await publish_event(js, topology, make_event(number))

    log = tmp_path / "worker.log"
    worker = start_worker(config_file, ROLES, log)
    try:
        # Three tasks, three slots: all three running.
        await eventually(
            lambda: unacked(nc, topology),
            lambda n: n == 3,
            timeout_s=20,
            what="every slot busy",
        )
        # Three more, held by the worker or not yet delivered, but not started.
        for number in range(3, events):
            await publish_event(js, topology, make_event(number))
        loop = asyncio.get_running_loop()
        signalled = loop.time()
        worker.send_signal(signal.SIGTERM)
        code = await wait_exit(worker, config.drain_grace_s + 5)
        took = loop.time() - signalled
    finally:
        worker.kill()
        worker.wait()
    assert code == 0, log.read_text()[-3000:]
    assert took < config.drain_grace_s, f"drain took {took:.1f}s"
    assert len(await validation_requests(js, topology)) == 3, (
        "work in flight at SIGTERM is finished"
    )
    # The three that never started (held by the worker or never delivered)
    # are available at once, not after the 8 s ack wait: the drain handed
    # back whatever it held.
    held = await js.pull_subscribe_bind(MARKDOWN_COMPILER, stream=topology.tasks_stream)
    handed_back = await held.fetch(3, timeout=long_ack["ack_wait_s"] / 2)
    assert len(handed_back) == 3, "nothing left unacknowledged behind the drain"
    for msg in handed_back:
        await msg.nak()
    await held.unsubscribe()

    async with running(config, ROLES):
        await wait_settled(js, config, ROLES, timeout_s=40)
    requests = await validation_requests(js, topology)
    assert len(requests) == events
    assert len({r.idempotency_key for r in requests}) == events


async def test_drain_hands_back_work_it_cannot_finish_for_immediate_redelivery(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path
) -> None:
    config = runtime_config(nats_url, topology, tmp_path)
    js = nc.jetstream()
    await provision(js, config, (MARKDOWN_COMPILER,))
    spec = role_consumer(config, MARKDOWN_COMPILER)
    started: list[int] = []
    stuck = asyncio.Event()

    async def never_finishes(delivery: Delivery) -> Decision:
        started.append(delivery.stream_seq)
        await stuck.wait()  # e.g. a publish that never gets its PubAck
        raise AssertionError("unreachable")

    worker = PullWorker(
        nc,
        WorkerSettings(
            name=MARKDOWN_COMPILER,
            stream=spec.stream,
            durable=spec.durable,
            concurrency=2,
            batch=2,
            ack_wait_s=spec.ack_wait_s,
            consumer_backoff_s=spec.backoff_s,
            fetch_expires_s=1.0,
            fetch_heartbeat_s=0.25,
        ),
        never_finishes,
    )
    for number in range(3):
        await js.publish(
            topology.subjects.task(MARKDOWN_COMPILE, f"{number:064x}"), f"task {number}".encode()
        )
    stop = asyncio.Event()
    serving = asyncio.create_task(worker.run(stop, drain_grace_s=1.0))
    await eventually(lambda: _value_of(started), lambda s: len(s) == 2, what="two in flight")
    stop.set()
    await asyncio.wait_for(serving, timeout=3)
    # Two running (aborted), one held waiting for a slot: all three handed back.
    assert worker.settled[Settle.NAK] == 3

    # A plain NAK: they come back at once, long before the ack wait (4.2s
    # here) would have expired.
    sub = await js.pull_subscribe_bind(spec.durable, stream=spec.stream)
    received: dict[int, int] = {}

    async def pull() -> dict[int, int]:
        with contextlib.suppress(nats.errors.TimeoutError):
            for msg in await sub.fetch(3, timeout=0.2):
                received[msg.metadata.sequence.stream] = msg.metadata.num_delivered
        return received

    await eventually(pull, lambda r: len(r) == 3, timeout_s=2, what="the handed-back tasks")
    assert received == {1: 2, 2: 2, 3: 2}
    await sub.unsubscribe()


async def _value_of(value: list[int]) -> list[int]:
    return value


async def test_nats_server_killed_and_restarted_mid_run_loses_nothing(
    nats_server: NatsServer, topology: Topology, tmp_path: Path
) -> None:
    modules = default_modules(tmp_path)
    modules[MARKDOWN_COMPILE] = write_module(tmp_path, "slowish", echo_module(spin=20_000_000))
    config = runtime_config(
        nats_server.url,
        topology,
        tmp_path,
        modules=modules,
        health={"port": 0},
    )
    roles = [PLANNER, MARKDOWN_COMPILER, ENRICHER]
    client = await nats.connect(nats_server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.1)
    js = client.jetstream()
    try:
        async with running(config, roles) as runtime:
            assert runtime.health_port is not None
            assert await _http_status(runtime.health_port, "/readyz") == 200
            for number in range(20):
                await publish_event(js, topology, make_event(number))
            await eventually(
                lambda: validation_requests(js, topology),
                lambda r: len(r) >= 2,
                what="the first results",
            )
            # A crash, not a shutdown: no "409 Server Shutdown" tells the
            # workers their pull requests are gone; heartbeats and the
            # reconnect have to.
            nats_server.kill()
            await eventually(
                lambda: _http_status(runtime.health_port or 0, "/readyz"),
                lambda status: status == 503,
                what="/readyz to report the lost connection",
            )
            assert await _http_status(runtime.health_port, "/healthz") == 200
            nats_server.start()
            await eventually(
                lambda: _http_status(runtime.health_port or 0, "/readyz"),
                lambda status: status == 200,
                timeout_s=20,
                what="/readyz after the server is back",
            )
            for number in range(20, 30):
                await publish_event(js, topology, make_event(number))
            await wait_settled(js, config, roles, timeout_s=40)
            requests = await validation_requests(js, topology)
    finally:
        await client.close()

    compiled = [r for r in requests if r.kind == MARKDOWN_COMPILE]
    enriched = [r for r in requests if r.kind == CATALOG_ENRICH]
    assert len(compiled) == 30, "no event lost across the restart"
    assert len(enriched) == 30, "no follow-up lost across the restart"
    assert len({r.idempotency_key for r in requests}) == 60, "and nothing duplicated"


async def _http_status(port: int, path: str) -> int:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return 0
    writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    await writer.wait_closed()
    return int(status_line.split()[1])


async def test_a_deleted_durable_makes_the_worker_unready_until_an_operator_recreates_it(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path
) -> None:
    config = runtime_config(nats_url, topology, tmp_path, follow_ups=())
    js = nc.jetstream()
    spec = role_consumer(config, MARKDOWN_COMPILER)
    async with running(config, ROLES) as runtime:
        await eventually(_value(runtime), lambda r: r.ready, what="ready")
        await js.delete_consumer(spec.stream, spec.durable)
        await eventually(_value(runtime), lambda r: not r.ready, what="unready without its durable")
        # The worker must not recreate it: an operator rewinding it owns that.
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.consumer_info(spec.stream, spec.durable)
            raise AssertionError("the worker recreated a durable an operator deleted")
        await publish_event(js, topology, make_event(1))
        await provision_consumer(js, spec)  # `nats consumer add ...`
        await eventually(_value(runtime), lambda r: r.ready, what="ready again")
        await wait_settled(js, config, ROLES)
        assert len(await validation_requests(js, topology)) == 1


def _value(runtime: Runtime) -> Callable[[], Awaitable[Runtime]]:
    async def probe() -> Runtime:
        return runtime

    return probe
