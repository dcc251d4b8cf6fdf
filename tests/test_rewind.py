"""Rewinds keep a durable's settings, and a worker refuses a durable that lost them.

Against a real nats-server: a worker that only verifies the topology (the
chart's ``provision_on_start: false``) refuses to start on a durable whose
settings differ from its role's, naming each difference, or restores them
(``on_consumer_drift: provision``); ``gitstore-agents rewind`` (the runbook in
docs/operations.md) moves a durable back while its workers run, the worker
delivers again from the chosen point, the durable's settings are unchanged,
and every delivered-again task finds its result stored: nothing new in the
validation stream.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from gitstore_agents.config import MARKDOWN_COMPILE, MARKDOWN_COMPILER, PLANNER, Config, Topology
from gitstore_agents.consumers import (
    ConsumerDriftError,
    consumer_drift,
    provision,
    rewind_consumer,
    role_consumer,
)
from gitstore_agents.envelopes import AuditDecision
from gitstore_agents.ops import read_subject
from gitstore_agents.service import Runtime

from .runtime_support import (
    RecordingObserver,
    cli,
    make_event,
    publish_event,
    running,
    runtime_config,
    validation_requests,
    wait_settled,
    write_config,
)
from .support import eventually


async def _provisioned(js: JetStreamContext, config: Config) -> None:
    await provision(js, config, upload_modules=False)


async def _recreate_as_a_careless_rewind_would(js: JetStreamContext, config: Config) -> None:
    """The issue's case: the durable recreated by hand, 30 s ack wait, no backoff, 5 deliveries."""
    spec = role_consumer(config, MARKDOWN_COMPILER)
    await js.delete_consumer(spec.stream, spec.durable)
    await js.add_consumer(
        spec.stream,
        ConsumerConfig(
            durable_name=spec.durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            filter_subject=spec.filter_subject,
            ack_wait=30,
            max_deliver=5,
        ),
    )


async def _ready(runtime: Runtime) -> None:
    await eventually(
        lambda: asyncio.sleep(0, runtime.readiness()),
        lambda readiness: readiness[0],
        what="the worker to be ready",
    )


# -- drift ---------------------------------------------------------------------------------------


async def test_a_verifying_worker_refuses_a_durable_whose_settings_differ(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path
) -> None:
    config = runtime_config(nats_url, topology, tmp_path, provision_on_start=False)
    js = nc.jetstream()
    await _provisioned(js, config)
    await _recreate_as_a_careless_rewind_would(js, config)

    runtime = Runtime(config, [MARKDOWN_COMPILER])
    with pytest.raises(ConsumerDriftError) as refused:
        await runtime.start(asyncio.Event())
    message = str(refused.value)
    # ack_wait_s 4 + backoff_s (0.2, 0.4): JetStream's ack wait is backoff[0].
    assert f"{topology.tasks_stream}/{MARKDOWN_COMPILER}:" in message
    assert "ack_wait expected 4.2s, actual 30s" in message
    assert "backoff expected [4.2s, 4.4s], actual none" in message
    assert "max_deliver expected 3, actual 5" in message
    assert "max_ack_pending" not in message  # what is equal is not named
    assert "gitstore-agents provision --role markdown-compiler" in message
    assert refused.value.code == "consumer-drift"
    assert not runtime.ready
    # Refusing changed nothing on the server.
    spec = role_consumer(config, MARKDOWN_COMPILER)
    info = await js.consumer_info(spec.stream, spec.durable)
    assert round(info.config.ack_wait or 0) == 30
    assert info.config.backoff is None

    # The worker process says so in one line and exits 1.
    path = write_config(tmp_path / "worker.yaml", config)
    code, out = await cli("worker", "--role", MARKDOWN_COMPILER, "--config", str(path))
    assert code == 1, out
    last = out.strip().splitlines()[-1]
    assert last.startswith("gitstore-agents: error: consumer-drift: "), out
    assert "ack_wait expected 4.2s, actual 30s" in last
    assert "Traceback" not in out


async def test_a_worker_provisions_a_drifted_durable_when_configured_to(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path
) -> None:
    config = runtime_config(
        nats_url, topology, tmp_path, provision_on_start=False, on_consumer_drift="provision"
    )
    js = nc.jetstream()
    await _provisioned(js, config)
    await _recreate_as_a_careless_rewind_would(js, config)
    spec = role_consumer(config, MARKDOWN_COMPILER)
    before = await js.consumer_info(spec.stream, spec.durable)
    assert consumer_drift(spec, before.config)

    async with running(config, [MARKDOWN_COMPILER]) as runtime:
        await _ready(runtime)
        after = await js.consumer_info(spec.stream, spec.durable)
    assert consumer_drift(spec, after.config) == []
    assert after.config.backoff == pytest.approx([4.2, 4.4], abs=1e-3)
    assert after.config.max_deliver == 3
    # Restored in place: the same durable, its position kept.
    assert after.created == before.created


async def test_an_unchanged_durable_passes_and_a_rewind_start_is_not_drift(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path
) -> None:
    config = runtime_config(nats_url, topology, tmp_path, provision_on_start=False)
    js = nc.jetstream()
    await _provisioned(js, config)
    # A durable recreated from the role's settings at another start (rewind --recreate)
    # has the operator's deliver policy, which is not the role's to check.
    spec = role_consumer(config, MARKDOWN_COMPILER)
    await rewind_consumer(js, spec, 1, recreate=True)
    info = await js.consumer_info(spec.stream, spec.durable)
    assert (info.config.deliver_policy, info.config.opt_start_seq) == (
        DeliverPolicy.BY_START_SEQUENCE,
        1,
    )
    async with running(config, [MARKDOWN_COMPILER]) as runtime:
        await _ready(runtime)


# -- rewind --------------------------------------------------------------------------------------


async def _seqs(js: JetStreamContext, stream: str, subject: str) -> list[int]:
    return [seq for seq, *_ in await read_subject(js, stream, subject)]


async def test_the_documented_rewind_delivers_again_and_stores_nothing_new(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path
) -> None:
    config = runtime_config(nats_url, topology, tmp_path, provision_on_start=False)
    js = nc.jetstream()
    await _provisioned(js, config)
    path = write_config(tmp_path / "config.yaml", config)
    compile_spec = role_consumer(config, MARKDOWN_COMPILER)
    planner_spec = role_consumer(config, PLANNER)
    observer = RecordingObserver()

    async with running(config, observer=observer):
        for number in range(3):
            await publish_event(js, topology, make_event(number))
        await wait_settled(js, config)
        # Two more events, stored after a point in time the planner is rewound to below.
        midpoint = dt.datetime.now(dt.UTC)
        for number in range(3, 5):
            await publish_event(js, topology, make_event(number))
        await wait_settled(js, config)

        results = await _seqs(js, topology.validation_stream, topology.subjects.validation_all())
        compile_tasks = await _seqs(
            js, topology.tasks_stream, topology.subjects.tasks_of(MARKDOWN_COMPILE)
        )
        assert len(compile_tasks) == 5
        assert len(results) == 10  # a compile result and an enrich result per event
        settings_before = {
            spec.durable: (await js.consumer_info(spec.stream, spec.durable)).config
            for spec in (compile_spec, planner_spec)
        }
        assert observer.of(AuditDecision.DUPLICATE_SKIPPED) == []

        # The compile durable from its third task on, while its worker runs.
        third = compile_tasks[2]
        code, out = await cli(
            *("rewind", "--role", MARKDOWN_COMPILER, "--to-seq", str(third)),
            *("--config", str(path), "--json"),
        )
        assert code == 0, out
        rewound = json.loads(out.strip().splitlines()[-1])
        assert rewound == {
            "stream": topology.tasks_stream,
            "durable": MARKDOWN_COMPILER,
            "seq": third,
            "method": "reset",
            "num_pending": 3,
        }
        skipped = await eventually(
            lambda: asyncio.sleep(
                0, observer.of(AuditDecision.DUPLICATE_SKIPPED, kind=MARKDOWN_COMPILE)
            ),
            lambda records: len(records) >= 3,
            what="the three rewound compile tasks to be delivered again",
        )
        await wait_settled(js, config)
        redelivered = sorted(r.idempotency_key for r in skipped)
        # Exactly the tasks from the chosen sequence on, each once.
        stored = await read_subject(
            js, topology.tasks_stream, topology.subjects.tasks_of(MARKDOWN_COMPILE)
        )
        expected = sorted(
            json.loads(data)["idempotency_key"] for seq, _, data, _ in stored if seq >= third
        )
        assert redelivered == expected

        # The planner from a point in time: the two later events are planned again.
        code, out = await cli(
            *("rewind", "--role", PLANNER, "--to-time", midpoint.isoformat()),
            *("--config", str(path)),
        )
        assert code == 0, out
        line = out.strip().splitlines()[-1]
        assert line.startswith(f"rewound {topology.events_stream}/{PLANNER} to stream sequence 4 ")
        assert "reset in place, settings unchanged" in line
        assert line.endswith(": 2 messages to deliver again")
        planned_again = await eventually(
            lambda: asyncio.sleep(0, observer.of(AuditDecision.DUPLICATE_SKIPPED, kind=None)),
            lambda records: len([r for r in records if r.role == PLANNER]) >= 2,
            what="the planner to plan the two later events again",
        )
        await wait_settled(js, config)
        assert sorted(r.event_id for r in planned_again if r.role == PLANNER) == sorted(
            make_event(n).event_id for n in (3, 4)
        )

        settings_after = {
            spec.durable: (await js.consumer_info(spec.stream, spec.durable)).config
            for spec in (compile_spec, planner_spec)
        }
        requests = await validation_requests(js, topology)

    # Settings unchanged, nothing stored twice, nothing new stored.
    assert msgspec.to_builtins(settings_after) == msgspec.to_builtins(settings_before)
    for spec in (compile_spec, planner_spec):
        assert consumer_drift(spec, settings_after[spec.durable]) == []
    after = await _seqs(js, topology.validation_stream, topology.subjects.validation_all())
    assert after == results
    assert len({r.idempotency_key for r in requests}) == len(requests) == 10
    assert len(observer.of(AuditDecision.PUBLISHED, kind=MARKDOWN_COMPILE)) == 5


async def test_rewind_refuses_a_missing_durable_in_one_line(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path
) -> None:
    config = runtime_config(nats_url, topology, tmp_path)
    path = write_config(tmp_path / "config.yaml", config)
    code, out = await cli(
        "rewind", "--role", MARKDOWN_COMPILER, "--to-seq", "1", "--config", str(path)
    )
    assert code == 1
    assert out.strip().splitlines()[-1] == (
        f"gitstore-agents: error: rewind-failed: consumer {topology.tasks_stream}/"
        f"{MARKDOWN_COMPILER} does not exist: run `gitstore-agents provision`"
    )


async def test_rewind_refuses_a_sequence_past_the_end_of_the_stream(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path
) -> None:
    # Accepted, the durable would skip every message stored before the stream got there.
    config = runtime_config(nats_url, topology, tmp_path)
    js = nc.jetstream()
    await _provisioned(js, config)
    await publish_event(js, topology, make_event(1))
    path = write_config(tmp_path / "config.yaml", config)
    code, out = await cli("rewind", "--role", PLANNER, "--to-seq", "999", "--config", str(path))
    assert code == 1
    assert out.strip().splitlines()[-1] == (
        "gitstore-agents: error: rewind-failed: sequence 999 is past the end of "
        f"{topology.events_stream} (last sequence 1): rewind to at most 2"
    )
    info = await js.consumer_info(topology.events_stream, PLANNER)
    assert info.delivered.stream_seq == 0, "the durable is untouched"
    # The end itself is a legal point: the next message stored.
    rewound = await rewind_consumer(js, role_consumer(config, PLANNER), 2)
    assert (rewound.seq, rewound.num_pending) == (2, 0)


def test_a_duration_reaching_before_year_one_is_a_usage_error() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gitstore_agents",
            "rewind",
            "--role",
            PLANNER,
            "--to-time",
            "9999999d",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "reaches back before year 1" in done.stderr
    assert "Traceback" not in done.stderr
