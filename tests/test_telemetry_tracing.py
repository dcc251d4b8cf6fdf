"""Tracing pieces: case-insensitive extraction, span names, exporters chosen by OTEL_* variables."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import ConsoleSpanExporter

from gitstore_agents.telemetry import _setup, destination, extract, inject, message_ids, tracer

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize("name", ["traceparent", "Traceparent", "TRACEPARENT", "TraceParent"])
def test_traceparent_is_read_whatever_the_header_spelling(name: str) -> None:
    context = trace.get_current_span(extract({name: TRACEPARENT})).get_span_context()
    assert context.is_valid
    assert format(context.trace_id, "032x") == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert format(context.span_id, "016x") == "00f067aa0ba902b7"
    assert context.is_remote


@pytest.mark.parametrize(
    "value",
    [
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",  # no flags
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # zero trace id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # invalid version
        "not a traceparent",
    ],
)
def test_malformed_traceparent_starts_a_new_trace(value: str) -> None:
    context = trace.get_current_span(extract({"traceparent": value})).get_span_context()
    assert not context.is_valid
    assert not trace.get_current_span(extract(None)).get_span_context().is_valid
    assert message_ids({"traceparent": value}) == (None, None)


def test_message_ids_are_those_of_the_traceparent() -> None:
    assert message_ids({"TraceParent": TRACEPARENT}) == (
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "00f067aa0ba902b7",
    )


def test_inject_writes_the_current_span() -> None:
    _setup.setup_telemetry()
    with tracer().start_as_current_span("send x", context=extract({"traceparent": TRACEPARENT})):
        carrier = inject({"Nats-Msg-Id": "k"})
        span = trace.get_current_span().get_span_context()
    assert carrier["traceparent"] == (
        f"00-4bf92f3577b34da6a3ce929d0e0e4736-{format(span.span_id, '016x')}-01"
    )
    assert carrier["Nats-Msg-Id"] == "k"


def test_destinations_in_span_names_have_low_cardinality() -> None:
    assert destination("gitstore.tasks.markdown.compile") == "gitstore.tasks.markdown.compile"
    assert (
        destination("acme.prod.events.git.push.0193f1c2-0000-7000-8000-00000000c0de")
        == "acme.prod.events.git.push.{repository_id}"
    )
    assert (
        destination("gitstore.audit.0193f1c2-7a4b-7c3d-9e8f-0a1b2c3d4e5f")
        == "gitstore.audit.{event_id}"
    )
    assert destination("gitstore.validation.catalog.enrich") == "gitstore.validation.catalog.enrich"
    key = "ab" * 32
    assert destination(f"gitstore.tasks.markdown.compile.{key}") == (
        "gitstore.tasks.markdown.compile.{key}"
    )
    assert destination(f"gitstore.tasks.markdown.compile.{key}-rq42") == (
        "gitstore.tasks.markdown.compile.{key}"
    )
    assert destination("gitstore.failures.git.push.GITSTORE_EVENTS-7") == (
        "gitstore.failures.git.push.{input}"
    )
    assert (
        destination("gitstore.audit.planner.0193f1c2-7a4b-7c3d-9e8f-0a1b2c3d4e5f")
        == "gitstore.audit.planner.{event_id}"
    )


_OTEL = (
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, []),  # nothing is exported unless asked
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, ["otlp"]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, ["otlp"]),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, []),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, ["otlp"]),
        ({"OTEL_TRACES_EXPORTER": "console, otlp"}, ["console", "otlp"]),
    ],
)
def test_exporters_come_from_otel_variables(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: list[str]
) -> None:
    for name in _OTEL:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert _setup._trace_exporter_names() == expected


def test_exporter_kinds_and_service_name(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _OTEL:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    exporter = _setup._span_exporter("otlp")
    assert isinstance(exporter, OTLPSpanExporter)
    exporter.shutdown()
    assert isinstance(_setup._span_exporter("console"), ConsoleSpanExporter)
    assert _setup._span_exporter("zipkin") is None
    assert _setup._resource().attributes["service.name"] == "gitstore-agents"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "gitstore-agents-planner")
    assert _setup._resource().attributes["service.name"] == "gitstore-agents-planner"
