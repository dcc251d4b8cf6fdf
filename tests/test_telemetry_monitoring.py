"""Metrics people can rely on: what the dashboard and alerts query exists from the first scrape.

The dashboard, the alert rules and the docs' metrics table are checked
against a live scrape of a real ``gitstore-agents worker`` process that has
processed an event (a fresh process: nothing counted by other tests can stand
in for a missing series). The other tests pin each part down on its own:
series reported at 0 before anything happened, the processing and publish
durations, the sampled consumer lag, and the connection gauges across a
server restart.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig
from opentelemetry.sdk.metrics import MeterProvider

from gitstore_agents.config import (
    CATALOG_ENRICH,
    ENRICHER,
    GIT_PUSH,
    MARKDOWN_COMPILE,
    MARKDOWN_COMPILER,
    PLANNER,
    Topology,
)
from gitstore_agents.consumers import Decision, Delivery, PullWorker, Settle, WorkerSettings
from gitstore_agents.embedded import NatsServer
from gitstore_agents.sandbox import Outcome
from gitstore_agents.telemetry import (
    INSTRUMENTS,
    PRESET_OUTCOMES,
    PRESET_RETRY_CODES,
    Instruments,
    ScrapeReader,
    metrics_text,
    render,
)

from .chart_support import render as render_chart
from .monitoring_support import (
    dashboard_exprs,
    documented_metrics,
    histogram_series,
    metric_names,
    rule_exprs,
    scraped_names,
)
from .runtime_support import (
    default_modules,
    diagnostics,
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
from .telemetry_support import stderr_trap_module

# The alerts the issue asks for, by the name the rules give them.
ALERTS = {
    "GitStoreAgentsConsumerLag",
    "GitStoreAgentsDeadLetters",
    "GitStoreAgentsFailureRate",
    "GitStoreAgentsProcessingLatency",
    "GitStoreAgentsSandboxFailures",
    "GitStoreAgentsNatsReconnects",
    "GitStoreAgentsWorkerNotReady",
}


def _value(text: str, series: str) -> float:
    """The value of one exposition line (``name{labels}``), failing if absent."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{series} not in:\n{text}")


def _scrape() -> str:
    status, text = metrics_text()
    assert status == 200
    return text


async def _get(port: int, path: str) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    response = (await reader.read()).decode()
    writer.close()
    await writer.wait_closed()
    return response


def _expected_names() -> dict[str, set[str]]:
    """Where each metric name the scrape must hold comes from."""
    rendered = render_chart({"monitoring": {"prometheusRule": {"enabled": True}}})
    rules = rule_exprs(rendered)
    assert set(rules) == ALERTS
    from_rules: set[str] = set()
    for expr in rules.values():
        from_rules |= metric_names(expr)
    from_dashboard: set[str] = set()
    for expr in dashboard_exprs():
        from_dashboard |= metric_names(expr)
    from_docs: set[str] = set()
    for name, kind in documented_metrics().items():
        from_docs |= histogram_series(name) if kind == "histogram" else {name}
    return {"rules": from_rules, "dashboard": from_dashboard, "docs": from_docs}


async def _health_port(log: Path) -> int:
    async def started() -> list[dict[str, object]]:
        text = await asyncio.to_thread(lambda: log.read_text() if log.exists() else "")
        return [
            line
            for line in (json.loads(raw) for raw in text.splitlines() if raw.startswith("{"))
            if line.get("event") == "runtime started"
        ]

    (line,) = await eventually(
        started, lambda lines: len(lines) == 1, timeout_s=60, what="the worker to start"
    )
    port = line["health_port"]
    assert isinstance(port, int)
    return port


async def test_every_metric_the_dashboard_the_alerts_and_the_docs_name_is_in_a_live_scrape(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path
) -> None:
    expected = _expected_names()
    # The parsing found what it should (an empty set would pass vacuously).
    assert {"gitstore_consumer_pending", "gitstore_dead_letters_total"} <= expected["rules"]
    assert "messaging_process_duration_seconds_bucket" in expected["rules"]
    assert {"gitstore_sandbox_outcomes_total", "gitstore_nats_reconnects_total"} <= expected[
        "dashboard"
    ]
    assert "messaging_client_operation_duration_seconds_bucket" in expected["dashboard"]
    assert {"gitstore_worker_ready", "gitstore_nats_connected"} <= expected["docs"]
    wanted = set().union(*expected.values())

    config = runtime_config(nats_url, topology, tmp_path, health={"port": 0, "host": "127.0.0.1"})
    config_file = write_config(tmp_path / "gitstore.yaml", config)
    log = tmp_path / "worker.log"
    js = nc.jetstream()
    # A process of its own: its instruments hold only what this worker did.
    process = start_worker(config_file, [PLANNER, MARKDOWN_COMPILER], log)
    try:
        port = await _health_port(log)
        await publish_event(js, topology, make_event(1))
        await eventually(lambda: validation_requests(js, topology), lambda found: len(found) == 1)
        await wait_settled(js, config, [PLANNER, MARKDOWN_COMPILER])
        # Fetch batch sizes are recorded when a pull request ends (1 s here).
        response = await eventually(
            lambda: _get(port, "/metrics"),
            lambda got: wanted <= scraped_names(got),
            timeout_s=20,
            what="every metric to be scraped",
        )
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert response.startswith("HTTP/1.1 200")
    scraped = scraped_names(response)
    for source, names in expected.items():
        assert names - scraped == set(), f"{source} names metrics the worker does not expose"


def test_counters_report_zero_for_every_label_value_known_at_start(
    nats_url: str, topology: Topology, tmp_path: Path
) -> None:
    config = runtime_config(nats_url, topology, tmp_path)
    reader = ScrapeReader()
    # Instruments of their own: the process's are shared with every other test.
    instruments = Instruments(MeterProvider(metric_readers=[reader]).get_meter("preset-test"))
    roles = (PLANNER, MARKDOWN_COMPILER, ENRICHER)
    durables = [PLANNER, f"{PLANNER}-dead-letters", MARKDOWN_COMPILER, ENRICHER]
    instruments.preset(config, roles, durables=durables, ready=lambda: False)

    text = render(reader.scrape())

    for role, kind in (
        (PLANNER, GIT_PUSH),
        (MARKDOWN_COMPILER, MARKDOWN_COMPILE),
        (ENRICHER, CATALOG_ENRICH),
    ):
        assert _value(text, f'gitstore_dead_letters_total{{kind="{kind}",role="{role}"}}') == 0
        for code in PRESET_RETRY_CODES:
            assert _value(text, f'gitstore_task_retries_total{{code="{code}",role="{role}"}}') == 0
        decisions = ("tasks-planned",) if role == PLANNER else ("published", "refused")
        for decision in (*decisions, "failed", "retried", "dead-lettered", "duplicate-skipped"):
            series = f'gitstore_decisions_total{{decision="{decision}",role="{role}"}}'
            assert _value(text, series) == 0
    assert (
        _value(text, f'gitstore_duplicates_skipped_total{{role="{PLANNER}",state="planned"}}') == 0
    )
    for state in ("succeeded", "failed"):
        series = f'gitstore_duplicates_skipped_total{{role="{ENRICHER}",state="{state}"}}'
        assert _value(text, series) == 0
    for run in Outcome:
        series = f'gitstore_sandbox_outcomes_total{{kind="{MARKDOWN_COMPILE}",outcome="{run}"}}'
        assert _value(text, series) == 0
    for durable in durables:
        assert _value(text, f'gitstore_in_flight{{durable="{durable}"}}') == 0
        for settle, outcome in PRESET_OUTCOMES:
            labels = f'durable="{durable}",outcome="{outcome}",settle="{settle}"'
            assert _value(text, f"gitstore_messages_settled_total{{{labels}}}") == 0
    assert _value(text, "gitstore_worker_ready") == 0
    # The planner runs no module; codes outside the documented sets stay lazy.
    assert f'kind="{GIT_PUSH}",outcome=' not in text
    assert 'code="deliveries-exhausted"' not in text


async def test_processing_and_publish_durations_are_recorded_with_their_error_type(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path
) -> None:
    modules = default_modules(tmp_path)
    modules[MARKDOWN_COMPILE] = write_module(tmp_path, "trap", stderr_trap_module("boom"))
    config = runtime_config(nats_url, topology, tmp_path, modules=modules, follow_ups=())
    js = nc.jetstream()
    process, send, outcomes = (
        INSTRUMENTS.process_duration,
        INSTRUMENTS.send_duration,
        INSTRUMENTS.sandbox_outcomes,
    )
    before = (
        process.count(PLANNER, ""),
        process.count(MARKDOWN_COMPILER, "trap"),
        send.count(""),
        outcomes.value(MARKDOWN_COMPILE, "trap"),
    )
    async with running(config, [PLANNER, MARKDOWN_COMPILER]):
        await publish_event(js, topology, make_event(1))
        await eventually(lambda: diagnostics(js, topology), lambda found: len(found) == 1)
        await wait_settled(js, config, [PLANNER, MARKDOWN_COMPILER])
        text = _scrape()
    after = (
        process.count(PLANNER, ""),
        process.count(MARKDOWN_COMPILER, "trap"),
        send.count(""),
        outcomes.value(MARKDOWN_COMPILE, "trap"),
    )
    planned, trapped, sent, traps = (a - b for a, b in zip(after, before, strict=True))
    assert (planned, trapped, traps) == (1, 1, 1), "one record per delivery, one count per run"
    # The planner's tasks, the diagnostic and audit flushes: each a confirmed batch.
    assert sent >= 3
    semconv = 'messaging_operation_name="process",messaging_system="nats"'
    group = f'messaging_consumer_group_name="{MARKDOWN_COMPILER}",{semconv}'
    failed = f'error_type="trap",{group}'
    assert _value(text, f"messaging_process_duration_seconds_count{{{failed}}}") >= 1
    series = f'messaging_process_duration_seconds_bucket{{error_type="trap",le="+Inf",{group}}}'
    assert _value(text, series) >= 1
    acked = f'messaging_consumer_group_name="{PLANNER}",{semconv}'
    assert _value(text, f"messaging_process_duration_seconds_count{{{acked}}}") >= 1
    sends = 'messaging_operation_name="send",messaging_system="nats"'
    assert _value(text, f"messaging_client_operation_duration_seconds_count{{{sends}}}") >= 3
    assert re.search(r"^# TYPE messaging_process_duration_seconds histogram$", text, re.M)


async def test_each_worker_samples_its_durables_lag(
    nats_url: str, nc: Client, topology: Topology
) -> None:
    js = nc.jetstream()
    subjects = f"{topology.prefix}.lag.>"
    await js.add_stream(name=topology.tasks_stream, subjects=[subjects])
    durable = f"lag-{uuid.uuid4().hex[:8]}"
    await js.add_consumer(
        topology.tasks_stream,
        ConsumerConfig(durable_name=durable, ack_policy=AckPolicy.EXPLICIT, ack_wait=30),
    )
    release = asyncio.Event()

    async def held(delivery: Delivery) -> Decision:
        await release.wait()
        return Decision(settle=Settle.ACK)

    worker = PullWorker(
        nc,
        WorkerSettings(
            name="lag",
            stream=topology.tasks_stream,
            durable=durable,
            concurrency=1,
            batch=1,
            ack_wait_s=30,
            fetch_expires_s=1.0,
            fetch_heartbeat_s=0.25,
            pending_sample_s=0.1,
        ),
        held,
    )
    for number in range(6):
        await js.publish(f"{topology.prefix}.lag.{number}", b"x")
    stop = asyncio.Event()
    serving = asyncio.create_task(worker.run(stop, drain_grace_s=2.0))
    try:
        # One running, one held for the slot: the rest is the lag.
        await eventually(
            _sampled(durable),
            lambda values: values == (4, 2),
            what="the sampled num_pending and num_ack_pending",
        )
        release.set()
        await eventually(_sampled(durable), lambda values: values == (0, 0), what="no lag")
    finally:
        release.set()
        stop.set()
        await serving
    text = _scrape()
    assert _value(text, f'gitstore_consumer_pending{{durable="{durable}"}}') == 0
    assert _value(text, f'gitstore_consumer_ack_pending{{durable="{durable}"}}') == 0


def _sampled(durable: str) -> Callable[[], Awaitable[tuple[int, int]]]:
    async def probe() -> tuple[int, int]:
        return INSTRUMENTS.pending.value(durable), INSTRUMENTS.ack_pending.value(durable)

    return probe


async def test_connection_gauges_follow_a_server_restart(
    nats_server: NatsServer, topology: Topology, tmp_path: Path
) -> None:
    config = runtime_config(nats_server.url, topology, tmp_path, follow_ups=())
    async with running(config, [PLANNER]) as runtime:
        text = await eventually(
            _scraped,
            lambda got: _value(got, "gitstore_worker_ready") == 1,
            what="the worker to be ready",
        )
        assert _value(text, "gitstore_nats_connected") == 1
        reconnects = _value(text, "gitstore_nats_reconnects_total")
        nats_server.kill()
        down = await eventually(
            _scraped,
            lambda got: _value(got, "gitstore_nats_connected") == 0,
            what="the gauge to see the lost connection",
        )
        assert _value(down, "gitstore_worker_ready") == 0
        nats_server.start()
        up = await eventually(
            _scraped,
            lambda got: _value(got, "gitstore_worker_ready") == 1,
            timeout_s=20,
            what="ready again after the restart",
        )
        assert runtime.ready
    assert _value(up, "gitstore_nats_connected") == 1
    assert _value(up, "gitstore_nats_reconnects_total") == reconnects + 1


async def _scraped() -> str:
    return _scrape()
