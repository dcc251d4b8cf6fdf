"""Span attributes after the OpenTelemetry messaging conventions, and batch send span names.

Every messaging span says its ``messaging.operation.name`` and the server it
talks to (``server.address``, ``server.port``); a failed delivery, module run
or publish says its ``error.type`` (the stable code). A batch ``send`` span is
named after what all its subjects share, never after its first message only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from nats.aio.client import Client
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gitstore_agents.config import (
    CATALOG_ENRICH,
    MARKDOWN_COMPILE,
    MARKDOWN_COMPILER,
    PLANNER,
    Topology,
)
from gitstore_agents.consumers import PublishFailedError
from gitstore_agents.telemetry import batch_destination, send_span

from .runtime_support import (
    default_modules,
    diagnostics,
    make_event,
    publish_event,
    running,
    runtime_config,
    validation_requests,
    wait_settled,
    write_module,
)
from .support import eventually
from .telemetry_support import by_name, one, recording_spans, stderr_trap_module

KEY = "6d800d0a0e1866c1b63aff3fe6f088f9c3b46e4970d94fe526c730f34cb3bbb3"
OTHER = "fbad" + KEY[4:]


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Spans that end during the test."""
    with recording_spans() as exporter:
        yield exporter


def _server(nats_url: str) -> tuple[str, int]:
    url = urlparse(nats_url)
    assert url.hostname is not None
    assert url.port is not None
    return url.hostname, url.port


def _attributes(span: ReadableSpan) -> dict[str, object]:
    assert span.attributes is not None
    return dict(span.attributes)


def test_a_batch_is_named_after_what_its_subjects_share() -> None:
    # One subject: its template names the span, the subject is the destination.
    slot = f"gitstore.tasks.markdown.compile.{KEY}"
    assert batch_destination([slot])[0] == "gitstore.tasks.markdown.compile.{key}"
    assert batch_destination([slot])[1]["messaging.destination.name"] == slot

    # Tasks for several files: one template, no single destination name.
    name, attributes = batch_destination([slot, f"gitstore.tasks.markdown.compile.{OTHER}"])
    assert name == "gitstore.tasks.markdown.compile.{key}"
    assert "messaging.destination.name" not in attributes
    assert attributes["messaging.destination.template"] == name

    # A result with its follow-up task: the shared tokens and a wildcard.
    mixed = [
        f"gitstore.validation.markdown.compile.{KEY}",
        f"gitstore.tasks.catalog.enrich.{OTHER}",
    ]
    name, attributes = batch_destination(mixed)
    assert name == "gitstore.>"
    assert attributes["messaging.destination.template"] == "gitstore.>"
    assert attributes["gitstore.destination.templates"] == [
        "gitstore.tasks.catalog.enrich.{key}",
        "gitstore.validation.markdown.compile.{key}",
    ]
    # A template that is a prefix of another still leaves a token for ">" to match.
    assert batch_destination(["a.b", "a.b.c"])[0] == "a.>"
    # Nothing shared: the operation alone names the span.
    assert batch_destination(["x.one", "y.two"])[0] == ""


def test_a_failed_send_says_its_error_type(spans: InMemorySpanExporter) -> None:
    with pytest.raises(PublishFailedError), send_span(["gitstore.x.y", "gitstore.x.z"], [None]):
        raise PublishFailedError("no PubAck")
    (span,) = spans.get_finished_spans()
    assert span.name == "send gitstore.x.>"
    attributes = _attributes(span)
    assert attributes["error.type"] == "publish-failed"
    assert attributes["messaging.operation.name"] == "send"
    assert attributes["messaging.batch.message_count"] == 2


async def test_spans_carry_operation_names_and_the_server(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    # The compiler's result goes out with an enrich follow-up: a batch of two templates.
    config = runtime_config(nats_url, topology, tmp_path, follow_ups=(CATALOG_ENRICH,))
    js = nc.jetstream()
    prefix = topology.prefix
    async with running(config, [PLANNER, MARKDOWN_COMPILER]):
        await publish_event(js, topology, make_event(1))
        await eventually(lambda: validation_requests(js, topology), lambda found: len(found) == 1)
        await wait_settled(js, config, [PLANNER, MARKDOWN_COMPILER])
    finished = spans.get_finished_spans()
    address, port = _server(nats_url)

    result_send = one(finished, f"send {prefix}.>")
    attributes = _attributes(result_send)
    assert attributes["messaging.batch.message_count"] == 2
    assert attributes["gitstore.destination.templates"] == (
        f"{prefix}.tasks.{CATALOG_ENRICH}.{{key}}",
        f"{prefix}.validation.{MARKDOWN_COMPILE}.{{key}}",
    )
    assert by_name(finished, f"send {prefix}.validation.{MARKDOWN_COMPILE}.{{key}}") == [], (
        "not named after its first message"
    )
    plan_send = one(finished, f"send {prefix}.tasks.{MARKDOWN_COMPILE}.{{key}}")
    process = one(finished, f"process {prefix}.tasks.{MARKDOWN_COMPILE}.{{key}}")
    receive = by_name(finished, f"receive {MARKDOWN_COMPILER}")[0]
    for span, operation in (
        (result_send, "send"),
        (plan_send, "send"),
        (process, "process"),
        (receive, "receive"),
    ):
        attributes = _attributes(span)
        assert attributes["messaging.operation.name"] == operation, span.name
        assert (attributes["server.address"], attributes["server.port"]) == (address, port)
        assert "error.type" not in attributes, span.name


async def test_failed_deliveries_and_runs_say_their_error_type(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    modules = default_modules(tmp_path)
    modules[MARKDOWN_COMPILE] = write_module(tmp_path, "trap", stderr_trap_module("boom"))
    config = runtime_config(nats_url, topology, tmp_path, modules=modules, follow_ups=())
    js = nc.jetstream()
    prefix = topology.prefix
    async with running(config, [PLANNER, MARKDOWN_COMPILER]):
        await publish_event(js, topology, make_event(1))
        await eventually(lambda: diagnostics(js, topology), lambda found: len(found) == 1)
        await wait_settled(js, config, [PLANNER, MARKDOWN_COMPILER])
    finished = spans.get_finished_spans()
    address, port = _server(nats_url)

    process = _attributes(one(finished, f"process {prefix}.tasks.{MARKDOWN_COMPILE}.{{key}}"))
    assert (process["gitstore.settle"], process["error.type"]) == ("term", "trap")
    assert _attributes(one(finished, "gitstore.sandbox"))["error.type"] == "trap"
    term = _attributes(one(finished, f"term {prefix}.tasks.{MARKDOWN_COMPILE}.{{key}}"))
    assert (term["messaging.operation.type"], term["messaging.operation.name"]) == (
        "settle",
        "term",
    )
    assert (term["server.address"], term["server.port"]) == (address, port)
    # The diagnostic was stored: its send span did not fail.
    diagnostic_send = one(finished, f"send {prefix}.failures.{MARKDOWN_COMPILE}.{{key}}")
    assert "error.type" not in _attributes(diagnostic_send)
