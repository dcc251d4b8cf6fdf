"""Metrics: OpenTelemetry instruments, scraped as Prometheus text from the health server."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from nats.aio.client import Client
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricsData,
)

from gitstore_agents import __version__
from gitstore_agents.config import MARKDOWN_COMPILE, MARKDOWN_COMPILER, PLANNER, Topology
from gitstore_agents.envelopes import AuditDecision
from gitstore_agents.telemetry import (
    INSTRUMENTS,
    DecisionRecord,
    Distribution,
    PeriodicReader,
    ScrapeReader,
    TelemetryObserver,
    metric_name,
    metrics_text,
    render,
    setup_telemetry,
)

from .runtime_support import (
    make_event,
    publish_event,
    running,
    runtime_config,
    validation_requests,
    wait_settled,
)
from .support import eventually


class _Collected(MetricExporter):
    """An exporter that keeps what it was given (stands in for OTLP)."""

    def __init__(self) -> None:
        super().__init__(preferred_temporality={})
        self.exported: list[MetricsData] = []

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: object
    ) -> MetricExportResult:
        self.exported.append(metrics_data)
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: object) -> None:
        return None


def _value(text: str, series: str) -> float:
    """The value of one exposition line (``name{labels}``), failing if absent."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{series} not in:\n{text}")


async def _get(port: int, path: str) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    response = (await reader.read()).decode()
    writer.close()
    await writer.wait_closed()
    return response


def test_text_exposition_follows_prometheus_conventions() -> None:
    reader = ScrapeReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("test")
    counter = meter.create_counter("gitstore.things.done", unit="{thing}", description="Done")
    counter.add(2, {"role": 'say "hi"\n'})
    gauge = meter.create_up_down_counter("gitstore.busy", unit="{message}")
    gauge.add(3)
    gauge.add(-1)
    histogram = meter.create_histogram(
        "gitstore.wait", unit="s", explicit_bucket_boundaries_advisory=(0.1, 1.0)
    )
    for seconds in (0.05, 0.5, 0.7, 3.0):
        histogram.record(seconds, {"kind": "markdown.compile"})

    text = render(reader.scrape())

    assert "# TYPE gitstore_things_done_total counter" in text
    assert "# HELP gitstore_things_done_total Done" in text
    assert 'gitstore_things_done_total{role="say \\"hi\\"\\n"} 2' in text
    assert "# TYPE gitstore_busy gauge" in text
    assert _value(text, "gitstore_busy") == 2
    assert "# TYPE gitstore_wait_seconds histogram" in text
    labels = 'kind="markdown.compile"'
    assert _value(text, f'gitstore_wait_seconds_bucket{{{labels},le="0.1"}}') == 1
    assert _value(text, f'gitstore_wait_seconds_bucket{{{labels},le="1"}}') == 3
    assert _value(text, f'gitstore_wait_seconds_bucket{{{labels},le="+Inf"}}') == 4
    assert _value(text, f"gitstore_wait_seconds_count{{{labels}}}") == 4
    assert _value(text, f"gitstore_wait_seconds_sum{{{labels}}}") == 4.25
    assert metric_name("gitstore.sandbox.fuel", "{fuel}", counter=False) == "gitstore_sandbox_fuel"


def test_local_histograms_bucket_like_opentelemetry_and_join_every_reader() -> None:
    wait = Distribution("gitstore.test.wait", "s", "Waits", (0.1, 1.0), "kind")
    for seconds in (0.05, 0.1, 0.7, 3.0):
        wait.record(seconds, "markdown.compile")
    assert wait.count("markdown.compile") == 4
    metric = wait.metric(0)
    assert metric is not None
    (point,) = metric.data.data_points
    # A value equal to a bound counts in that bound's bucket, as the SDK's do.
    assert list(point.bucket_counts) == [2, 1, 1]
    assert (point.min, point.max, point.sum) == (0.05, 3.0, 3.85)
    assert Distribution("gitstore.test.none", "s", "", (1.0,)).metric(0) is None

    # Both readers (the scrape and the periodic OTLP one) see the process's
    # distributions next to the SDK's own instruments.
    setup_telemetry()
    INSTRUMENTS.fuel.record(12_345, "metrics-test-kind")
    exporter = _Collected()
    reader = PeriodicReader(exporter, export_interval_millis=60_000)
    provider = MeterProvider(metric_readers=[reader])
    provider.get_meter("test").create_counter("c").add(1)
    reader.force_flush()
    provider.shutdown()
    exported = exporter.exported[0]
    names = {m.name for r in exported.resource_metrics for s in r.scope_metrics for m in s.metrics}
    assert {"c", "gitstore.sandbox.fuel"} <= names
    status, text = metrics_text()
    assert status == 200
    assert _value(text, 'gitstore_sandbox_fuel_count{kind="metrics-test-kind"}') == 1
    assert _value(text, f'gitstore_build_info{{version="{__version__}"}}') == 1
    assert _value(text, 'gitstore_sandbox_fuel_bucket{kind="metrics-test-kind",le="100000"}') == 1


def test_decisions_feed_retry_dead_letter_and_duplicate_counters() -> None:
    setup_telemetry()
    observer = TelemetryObserver()
    role = "metrics-test-role"
    for decision, code in (
        (AuditDecision.RETRIED, "deadline-exceeded"),
        (AuditDecision.RETRIED, "deadline-exceeded"),
        (AuditDecision.DEAD_LETTERED, "deliveries-exhausted"),
        (AuditDecision.DUPLICATE_SKIPPED, "succeeded"),
    ):
        observer.decided(
            DecisionRecord(decision=decision, role=role, worker_id="w", code=code, kind="k.x")
        )
    status, text = metrics_text()
    assert status == 200
    labels = f'role="{role}"'
    assert _value(text, f'gitstore_task_retries_total{{code="deadline-exceeded",{labels}}}') == 2
    assert _value(text, f'gitstore_dead_letters_total{{kind="k.x",{labels}}}') == 1
    assert _value(text, f'gitstore_duplicates_skipped_total{{{labels},state="succeeded"}}') == 1
    assert _value(text, f'gitstore_decisions_total{{decision="retried",{labels}}}') == 2
    assert observer.total(AuditDecision.RETRIED) == 2


async def test_metrics_endpoint_on_the_health_server(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path
) -> None:
    config = runtime_config(
        nats_url, topology, tmp_path, follow_ups=(), health={"port": 0, "host": "127.0.0.1"}
    )
    js = nc.jetstream()
    async with running(config, [PLANNER, MARKDOWN_COMPILER]) as runtime:
        await publish_event(js, topology, make_event(1))
        await eventually(lambda: validation_requests(js, topology), lambda found: len(found) == 1)
        await wait_settled(js, config, [PLANNER, MARKDOWN_COMPILER])
        port = runtime.health_port
        assert port is not None
        durable = f'durable="{MARKDOWN_COMPILER}"'
        # A pull request's size is recorded when it ends (its expiry, 1 s here).
        response = await eventually(
            lambda: _get(port, "/metrics"),
            lambda got: f"gitstore_fetch_batch_size_count{{{durable}}}" in got,
            what="the first pull request to end",
        )

    head, _, text = response.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 200")
    assert _value(text, f'gitstore_messages_settled_total{{{durable},outcome="ok",settle="ack"}}')
    assert _value(text, f'gitstore_sandbox_fuel_count{{kind="{MARKDOWN_COMPILE}"}}') >= 1
    assert _value(
        text, f'gitstore_sandbox_wall_time_seconds_bucket{{kind="{MARKDOWN_COMPILE}",le="+Inf"}}'
    )
    assert _value(text, f"gitstore_fetch_batch_size_count{{{durable}}}") >= 1
    assert _value(text, f"gitstore_in_flight{{{durable}}}") == 0
    assert re.search(r'^gitstore_decisions_total\{decision="published",', text, re.M)
