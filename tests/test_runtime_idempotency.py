"""Exactly one result per task: duplicate publishes, concurrent duplicates, replays."""

from __future__ import annotations

import asyncio
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
from gitstore_agents.consumers import Claim, Ledger, RunState, role_consumer
from gitstore_agents.envelopes import AuditDecision, canonical_json
from gitstore_agents.ops import replay_stream
from gitstore_agents.service import Runtime

from .runtime_support import (
    RecordingObserver,
    default_modules,
    make_event,
    planned_task,
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


async def test_duplicates_beyond_the_window_delivered_concurrently_to_two_workers(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path
) -> None:
    config = runtime_config(nats_url, topology, tmp_path, follow_ups=())
    js = nc.jetstream()
    observers = [RecordingObserver(), RecordingObserver()]
    async with (
        running(config, [MARKDOWN_COMPILER], observer=observers[0]) as first,
        running(with_worker_id(config, "second"), [MARKDOWN_COMPILER], observer=observers[1]),
    ):
        task = await planned_task(first, make_event(1))
        # The same task stored six times (as after the duplicate window: each
        # copy has its own Nats-Msg-Id), in one burst both workers pull from.
        await asyncio.gather(
            *(
                js.publish(
                    topology.subjects.task(MARKDOWN_COMPILE),
                    canonical_json(task),
                    headers={"Nats-Msg-Id": f"{task.idempotency_key}/copy-{i}"},
                )
                for i in range(6)
            )
        )
        await wait_settled(js, config, [MARKDOWN_COMPILER])
        requests = await validation_requests(js, topology)

    assert len(requests) == 1
    executed = sum(len(o.of(AuditDecision.EXECUTED)) for o in observers)
    skipped = sum(len(o.of(AuditDecision.DUPLICATE_SKIPPED)) for o in observers)
    assert executed == 1, "the ledger claim lets exactly one worker run the task"
    assert skipped == 5


async def test_replay_through_new_consumers_yields_no_duplicates_unless_the_module_changed(
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

    # Rewind every role, as an operator does with `nats consumer rm` and
    # `nats consumer add --deliver all`: history is delivered again.
    for role in ROLES_UNDER_TEST:
        spec = role_consumer(config, role)
        await js.delete_consumer(spec.stream, spec.durable)
    observer = RecordingObserver()
    async with running(config, ROLES_UNDER_TEST, observer=observer):
        await wait_settled(js, config, ROLES_UNDER_TEST)
    assert len(await validation_requests(js, topology)) == 6, "replayed history is not re-run"
    assert len(observer.of(AuditDecision.DUPLICATE_SKIPPED)) >= 6
    assert observer.of(AuditDecision.EXECUTED) == []

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


async def test_replay_verify_reports_a_digest_the_ledger_does_not_have(
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
        # Make the ledger remember a different output for one task: exactly
        # what a nondeterministic module would look like on replay.
        requests = await validation_requests(js, topology)
        victim = requests[0]
        assert runtime.ledger is not None
        found = await runtime.ledger.get(victim.idempotency_key)
        assert found is not None
        record, revision = found
        kv = await js.key_value(topology.ledger_bucket)
        tampered = msgspec.structs.replace(record, output_digest="sha256:" + "f" * 64)
        await kv.update(
            victim.idempotency_key.removeprefix("sha256:"),
            msgspec.json.encode(tampered),
            last=revision,
        )
        alarm = await replay_stream(runtime, "EVENTS", 1, verify=True)
    finally:
        await runtime.close()

    assert (clean.verified, clean.matched, clean.mismatches) == (4, 4, [])
    assert [m.idempotency_key for m in alarm.mismatches] == [victim.idempotency_key]
    assert alarm.mismatches[0].replay_digest == victim.output_digest
    assert len(await validation_requests(js, topology)) == stored, "--verify publishes nothing"


async def test_a_task_held_by_a_dead_workers_claim_waits_for_the_lease_without_spending_deliveries(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path
) -> None:
    config = runtime_config(nats_url, topology, tmp_path, follow_ups=())
    js = nc.jetstream()
    observer = RecordingObserver()
    async with running(config, [MARKDOWN_COMPILER], observer=observer) as runtime:
        task = await planned_task(runtime, make_event(1))
        # A worker that crashed right after claiming the task (its lease: 2s).
        dead_worker = Ledger(await js.key_value(topology.ledger_bucket))
        assert isinstance(await dead_worker.claim(task, worker_id="dead", lease_s=2.0), Claim)
        await js.publish(
            topology.subjects.task(MARKDOWN_COMPILE),
            canonical_json(task),
            headers={"Nats-Msg-Id": task.idempotency_key},
        )
        await wait_settled(js, config, [MARKDOWN_COMPILER])
        requests = await validation_requests(js, topology)
        assert runtime.ledger is not None
        record = await runtime.ledger.get(task.idempotency_key)

    assert len(requests) == 1
    decisions = [r for _, r in observer.records if r.idempotency_key == task.idempotency_key]
    assert {r.attempt for r in decisions} == {1}, "waiting for a lease costs no delivery"
    assert record is not None
    assert record[0].state is RunState.SUCCEEDED
    assert record[0].attempts == 2, "taken over once the dead worker's lease ran out"
