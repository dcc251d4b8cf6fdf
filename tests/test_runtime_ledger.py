"""The ledger's claims and leases, on a real KV bucket with a clock the test moves."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from nats.aio.client import Client
from nats.js.api import KeyValueConfig

from gitstore_agents.config import Topology
from gitstore_agents.consumers import Busy, Claim, Ledger, RunState, Settled, ledger_key
from gitstore_agents.envelopes import TaskRequest
from gitstore_agents.pipeline import plan_tasks

from .support import example_event


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
async def ledger_and_clock(nc: Client, topology: Topology) -> tuple[Ledger, Clock]:
    kv = await nc.jetstream().create_key_value(KeyValueConfig(bucket=topology.ledger_bucket))
    clock = Clock()
    return Ledger(kv, clock=clock), clock


def _task(number: int = 1) -> TaskRequest:
    event = example_event()
    return plan_tasks(event, f"evt-{number}", {"markdown.compile": "sha256:" + "ab" * 32})[0]


async def test_first_claim_wins_and_a_live_claim_is_busy_for_everyone_else(
    ledger_and_clock: tuple[Ledger, Clock],
) -> None:
    ledger, clock = ledger_and_clock
    task = _task()
    first = await ledger.claim(task, worker_id="a", lease_s=30)
    assert isinstance(first, Claim)
    assert first.record.state is RunState.RUNNING
    assert first.record.attempts == 1
    clock.advance(10)
    second = await ledger.claim(task, worker_id="b", lease_s=30)
    assert isinstance(second, Busy)
    assert second.retry_in_s == pytest.approx(20)
    assert second.record.worker_id == "a"


async def test_an_expired_lease_is_taken_over_and_the_old_claim_cannot_settle(
    ledger_and_clock: tuple[Ledger, Clock],
) -> None:
    ledger, clock = ledger_and_clock
    task = _task()
    crashed = await ledger.claim(task, worker_id="a", lease_s=30)
    assert isinstance(crashed, Claim)
    clock.advance(31)
    takeover = await ledger.claim(task, worker_id="a", lease_s=30)  # same pod name, new process
    assert isinstance(takeover, Claim)
    assert takeover.record.attempts == 2
    assert takeover.record.claim_id != crashed.record.claim_id
    assert not await ledger.succeed(crashed, output_digest="sha256:old", result_seq=1)
    assert await ledger.succeed(takeover, output_digest="sha256:new", result_seq=2)
    found = await ledger.get(task.idempotency_key)
    assert found is not None
    assert (found[0].state, found[0].output_digest) == (RunState.SUCCEEDED, "sha256:new")


async def test_settled_records_are_skipped_and_released_ones_claimed_at_once(
    ledger_and_clock: tuple[Ledger, Clock],
) -> None:
    ledger, _ = ledger_and_clock
    done, failed, retried = _task(1), _task(2), _task(3)
    for task in (done, failed, retried):
        claim = await ledger.claim(task, worker_id="a", lease_s=30)
        assert isinstance(claim, Claim)
        if task is done:
            assert await ledger.succeed(claim, output_digest="sha256:x", result_seq=9)
        elif task is failed:
            assert await ledger.fail(claim, error="trap: unreachable")
        else:
            assert await ledger.retry_later(claim, error="publish-failed: no stream")
    skipped = await ledger.claim(done, worker_id="b", lease_s=30)
    assert isinstance(skipped, Settled)
    assert skipped.record.output_digest == "sha256:x"
    terminal = await ledger.claim(failed, worker_id="b", lease_s=30)
    assert isinstance(terminal, Settled)
    assert terminal.record.state is RunState.FAILED
    again = await ledger.claim(retried, worker_id="b", lease_s=30)
    assert isinstance(again, Claim), "a released claim needs no lease expiry"
    assert again.record.last_error == "publish-failed: no stream"


async def test_concurrent_claims_on_one_key_yield_exactly_one_claim(
    ledger_and_clock: tuple[Ledger, Clock],
) -> None:
    ledger, clock = ledger_and_clock
    task = _task()
    # Racing to create the record...
    results = await asyncio.gather(
        *(ledger.claim(task, worker_id=f"w{i}", lease_s=30) for i in range(8))
    )
    assert sum(isinstance(r, Claim) for r in results) == 1
    assert sum(isinstance(r, Busy) for r in results) == 7
    # ...and racing to take over an expired lease (an update, not a create).
    clock.advance(31)
    results = await asyncio.gather(
        *(ledger.claim(task, worker_id=f"v{i}", lease_s=30) for i in range(8))
    )
    assert sum(isinstance(r, Claim) for r in results) == 1
    assert sum(isinstance(r, Busy) for r in results) == 7
    found = await ledger.get(task.idempotency_key)
    assert found is not None
    assert found[0].attempts == 2


async def test_dead_lettered_records_can_be_claimed_again_after_a_requeue(
    ledger_and_clock: tuple[Ledger, Clock],
) -> None:
    ledger, _ = ledger_and_clock
    task = _task()
    claim = await ledger.claim(task, worker_id="a", lease_s=30)
    assert isinstance(claim, Claim)
    assert await ledger.retry_later(claim, error="deadline-exceeded: 2000ms")
    await ledger.mark_dead_lettered(task.idempotency_key, error=None)
    found = await ledger.get(task.idempotency_key)
    assert found is not None
    assert found[0].state is RunState.DEAD_LETTERED
    assert found[0].last_error == "deadline-exceeded: 2000ms"
    requeued = await ledger.claim(task, worker_id="b", lease_s=30)
    assert isinstance(requeued, Claim)
    assert requeued.record.attempts == 2


def test_ledger_keys_are_valid_kv_keys() -> None:
    assert ledger_key("sha256:" + "ab" * 32) == "ab" * 32
    assert ":" not in ledger_key("evt:with:colons")
    assert len(ledger_key("evt:with:colons")) == 64


async def test_a_claim_this_process_abandoned_is_taken_over_at_once(
    ledger_and_clock: tuple[Ledger, Clock], nc: Client, topology: Topology
) -> None:
    ledger, clock = ledger_and_clock
    task = _task()
    stranded = await ledger.claim(task, worker_id="a", lease_s=30)
    assert isinstance(stranded, Claim)
    # e.g. the publish failed while NATS was down and so did the release
    ledger.abandon(stranded)
    other_process = Ledger(await nc.jetstream().key_value(topology.ledger_bucket), clock=clock)
    assert isinstance(await other_process.claim(task, worker_id="b", lease_s=30), Busy)
    again = await ledger.claim(task, worker_id="a", lease_s=30)
    assert isinstance(again, Claim), "no wait for the lease of a claim known to be dead"
    assert again.record.attempts == 2


async def test_a_deleted_record_is_claimed_again_from_scratch(
    ledger_and_clock: tuple[Ledger, Clock], nc: Client, topology: Topology
) -> None:
    # `nats kv del gitstore-runs <hex>` is how an operator forces a re-run: the
    # key's tombstone must not block the first (create-only) claim attempt.
    ledger, _ = ledger_and_clock
    task = _task()
    first = await ledger.claim(task, worker_id="a", lease_s=30)
    assert isinstance(first, Claim)
    assert await ledger.succeed(first, output_digest="sha256:x", result_seq=1)
    kv = await nc.jetstream().key_value(topology.ledger_bucket)
    await kv.delete(ledger_key(task.idempotency_key))
    again = await ledger.claim(task, worker_id="b", lease_s=30)
    assert isinstance(again, Claim)
    assert again.record.attempts == 1
    assert again.record.state is RunState.RUNNING
