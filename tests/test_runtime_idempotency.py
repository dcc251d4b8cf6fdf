"""Exactly one result per task: duplicate publishes, concurrent duplicates, replays, rewinds."""

from __future__ import annotations

from pathlib import Path

import msgspec
from nats.aio.client import Client

from gitstore_agents.config import (
    CATALOG_ENRICH,
    ENRICHER,
    MARKDOWN_COMPILE,
    MARKDOWN_COMPILER,
    PLANNER,
    Topology,
)
from gitstore_agents.consumers import role_consumer
from gitstore_agents.envelopes import AuditDecision, canonical_json
from gitstore_agents.ops import replay_stream
from gitstore_agents.pipeline import LOOKUP_FUEL, TaskHandler
from gitstore_agents.service import Runtime

from .runtime_support import (
    RecordingObserver,
    default_modules,
    make_event,
    publish_event,
    running,
    runtime_config,
    validation_requests,
    wait_settled,
    with_worker_id,
    write_module,
)
from .wasm_modules import echo_module

ROLES_UNDER_TEST = (PLANNER, MARKDOWN_COMPILER, ENRICHER)


async def test_same_event_published_three_times_yields_one_result(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path
) -> None:
    config = runtime_config(nats_url, topology, tmp_path)
    js = nc.jetstream()
    async with running(config, ROLES_UNDER_TEST):
        event = make_event(1)
        for _ in range(3):
            await publish_event(js, topology, event)
        await wait_settled(js, config, ROLES_UNDER_TEST)
        requests = await validation_requests(js, topology)
        events = await js.stream_info(topology.events_stream)

    assert events.state.messages == 1, "JetStream drops repeats of a Nats-Msg-Id"
    assert sorted(r.kind for r in requests) == [CATALOG_ENRICH, MARKDOWN_COMPILE]


async def test_the_same_event_stored_twice_past_the_window_plans_nothing_new(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path
) -> None:
    config = runtime_config(nats_url, topology, tmp_path)
    js = nc.jetstream()
    observer = RecordingObserver()
    async with running(config, ROLES_UNDER_TEST, observer=observer):
        event = make_event(1, files=2)
        for copy in range(2):
            # Another Nats-Msg-Id: as if published again after the duplicate window.
            await js.publish(
                topology.subjects.git_push(event.repository_id),
                msgspec.json.encode(event),
                headers={"Nats-Msg-Id": f"{event.event_id}/{copy}"},
            )
        await wait_settled(js, config, ROLES_UNDER_TEST)
        tasks = await js.stream_info(topology.tasks_stream)
        requests = await validation_requests(js, topology)

    assert tasks.state.messages == 4, "2 compile tasks + 2 follow-ups, each in its slot once"
    assert len(requests) == 4
    planned = observer.of(AuditDecision.TASKS_PLANNED) + observer.of(
        AuditDecision.DUPLICATE_SKIPPED, kind="git.push"
    )
    assert sorted(r.decision for r in planned) == ["duplicate-skipped", "tasks-planned"]


async def test_a_task_run_twice_at_once_stores_one_result(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path
) -> None:
    """A worker and a replay of the same history racing: both run it, one result is stored."""
    config = runtime_config(nats_url, topology, tmp_path, follow_ups=())
    js = nc.jetstream()
    observers = [RecordingObserver(), RecordingObserver()]
    async with running(config, [PLANNER], observer=observers[0]):
        for number in range(10):
            await publish_event(js, topology, make_event(number))
        await wait_settled(js, config, [PLANNER])
    async with (
        running(config, [MARKDOWN_COMPILER], observer=observers[0]),
        running(
            with_worker_id(config, "second"), [MARKDOWN_COMPILER], observer=observers[1]
        ) as replayer,
    ):
        report = await replay_stream(replayer, "TASKS", 1)
        await wait_settled(js, config, [MARKDOWN_COMPILER])
        requests = await validation_requests(js, topology)

    assert report.messages == 10
    assert len(requests) == 10
    assert len({r.idempotency_key for r in requests}) == 10
    published = sum(len(o.of(AuditDecision.PUBLISHED)) for o in observers)
    skipped = sum(len(o.of(AuditDecision.DUPLICATE_SKIPPED)) for o in observers)
    assert (published, skipped) == (10, 10), "each task: one stored result, one slot found taken"


async def test_replay_through_new_consumers_stores_nothing_new_unless_the_module_changed(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path
) -> None:
    config = runtime_config(nats_url, topology, tmp_path)
    js = nc.jetstream()
    async with running(config, ROLES_UNDER_TEST):
        for number in range(3):
            await publish_event(js, topology, make_event(number))
        await wait_settled(js, config, ROLES_UNDER_TEST)
    first = await validation_requests(js, topology)
    assert len(first) == 6
    tasks_before = (await js.stream_info(topology.tasks_stream)).state.messages

    # Rewind every role, as an operator does with `nats consumer rm` and
    # `nats consumer add --deliver all`: history is delivered again.
    for role in ROLES_UNDER_TEST:
        spec = role_consumer(config, role)
        await js.delete_consumer(spec.stream, spec.durable)
    observer = RecordingObserver()
    async with running(config, ROLES_UNDER_TEST, observer=observer):
        await wait_settled(js, config, ROLES_UNDER_TEST)
    assert len(await validation_requests(js, topology)) == 6, "replayed history stores nothing"
    assert (await js.stream_info(topology.tasks_stream)).state.messages == tasks_before
    assert len(observer.of(AuditDecision.DUPLICATE_SKIPPED)) == 9, "3 events, 6 tasks"
    assert observer.of(AuditDecision.PUBLISHED) == []

    # A new compile module: replaying the events derives new keys, so fresh results.
    modules = default_modules(tmp_path)
    modules[MARKDOWN_COMPILE] = write_module(tmp_path, "compile-v2", echo_module("compiled-v2"))
    upgraded = runtime_config(nats_url, topology, tmp_path, modules=modules)
    async with running(upgraded, ROLES_UNDER_TEST) as runtime:
        report = await replay_stream(runtime, "EVENTS", 1)
        await wait_settled(js, upgraded, ROLES_UNDER_TEST)
    after = await validation_requests(js, topology)
    assert report.messages == 3
    assert len(after) == 12
    fresh = after[6:]
    assert {r.kind for r in fresh} == {MARKDOWN_COMPILE, CATALOG_ENRICH}
    assert {r.idempotency_key for r in fresh}.isdisjoint({r.idempotency_key for r in first})


async def test_replay_verify_reports_an_output_the_stored_result_does_not_have(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path
) -> None:
    config = runtime_config(nats_url, topology, tmp_path)
    js = nc.jetstream()
    async with running(config, ROLES_UNDER_TEST):
        for number in range(2):
            await publish_event(js, topology, make_event(number))
        await wait_settled(js, config, ROLES_UNDER_TEST)
    stored = len(await validation_requests(js, topology))

    runtime = Runtime(config, ROLES_UNDER_TEST)
    await runtime.start()
    try:
        clean = await replay_stream(runtime, "EVENTS", 1, verify=True)
        # Store a different output in one slot: what a nondeterministic module's
        # earlier run would look like on replay.
        victim = (await validation_requests(js, topology))[0]
        slot = topology.subjects.validation(victim.kind, victim.idempotency_key)
        await js.purge_stream(topology.validation_stream, subject=slot)
        forged = msgspec.structs.replace(victim, output_digest="sha256:" + "f" * 64)
        await js.publish(slot, canonical_json(forged))
        alarm = await replay_stream(runtime, "EVENTS", 1, verify=True)
    finally:
        await runtime.close()

    assert (clean.verified, clean.matched, clean.mismatches) == (4, 4, [])
    assert [m.idempotency_key for m in alarm.mismatches] == [victim.idempotency_key]
    assert alarm.mismatches[0].replay_digest == victim.output_digest
    assert alarm.mismatches[0].stored_digest == "sha256:" + "f" * 64
    after = await js.stream_info(topology.validation_stream)
    # The purge removed one message and the forgery stored one: nothing else.
    assert after.state.messages == stored, "--verify publishes nothing"


async def test_a_long_task_delivered_again_is_looked_up_not_run_again(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path
) -> None:
    # About 30 M fuel: long enough that reading its result costs less than a re-run.
    modules = default_modules(tmp_path)
    modules[MARKDOWN_COMPILE] = write_module(tmp_path, "slow", echo_module(spin=10_000_000))
    config = runtime_config(
        nats_url,
        topology,
        tmp_path,
        modules=modules,
        follow_ups=(),
        limits={"timeout_ms": 5000},
        # One at a time: the first run teaches the worker how long the module takes.
        roles={MARKDOWN_COMPILER: {"concurrency": 1}},
        drain_grace_s=10.0,
    )
    js = nc.jetstream()
    observer = RecordingObserver()
    async with running(config, [PLANNER, MARKDOWN_COMPILER], observer=observer) as runtime:
        for number in range(2):
            await publish_event(js, topology, make_event(number))
        await wait_settled(js, config, [PLANNER, MARKDOWN_COMPILER])
        (published, _) = observer.of(AuditDecision.PUBLISHED)
        assert int(published.refs["fuel"]) > LOOKUP_FUEL
        # Rewind the compile role: both tasks are delivered again.
        spec = role_consumer(config, MARKDOWN_COMPILER)
        await js.delete_consumer(spec.stream, spec.durable)
    async with running(config, [MARKDOWN_COMPILER], observer=observer) as runtime:
        await wait_settled(js, config, [MARKDOWN_COMPILER])
        handler = runtime.handlers[MARKDOWN_COMPILER]
        assert isinstance(handler, TaskHandler)
        # The first delivery of a module nobody ran yet in this process runs;
        # once its fuel is known, the second is looked up.
        assert handler.lookups == 1
    skipped = observer.of(AuditDecision.DUPLICATE_SKIPPED, kind=MARKDOWN_COMPILE)
    assert len(skipped) == 2
    assert "looked up before running" in skipped[-1].reason
    assert len(await validation_requests(js, topology)) == 2
