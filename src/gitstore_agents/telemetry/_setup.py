"""Install the OpenTelemetry SDK once per process, configured by the standard ``OTEL_*`` variables.

* **Traces**: always an SDK tracer provider (so every delivery gets real
  trace and span ids, which logs and audit records carry); spans are recorded
  and exported only when asked (otherwise they are ids only,
  ``use_light_spans``): ``OTEL_TRACES_EXPORTER`` (``otlp``, ``console``, ``none``,
  comma-separated), or, when that is unset, ``otlp`` if an OTLP endpoint
  (``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is
  set. OTLP goes over HTTP/protobuf; the exporter reads its own
  ``OTEL_EXPORTER_OTLP_*`` settings (endpoint, headers, timeout, ...).
* **Metrics**: an SDK meter provider with the ``/metrics`` scrape reader, plus
  OTLP push when ``OTEL_METRICS_EXPORTER`` names ``otlp``.
* ``OTEL_SDK_DISABLED=true`` installs nothing; sampling (``OTEL_TRACES_SAMPLER``)
  and the resource (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``) are the
  SDK's own settings. The service name defaults to ``gitstore-agents``.

A provider someone installed before (an embedding application, a test) is
kept as it is.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import structlog
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricReader,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)

from ._metrics import with_distributions
from ._prometheus import ScrapeReader, render
from ._tracing import use_light_spans

log = structlog.get_logger(__name__)

DEFAULT_SERVICE_NAME = "gitstore-agents"

_lock = threading.Lock()
_scrape_reader: ScrapeReader | None = None


def _env_list(name: str) -> list[str]:
    return [v.strip().lower() for v in os.environ.get(name, "").split(",") if v.strip()]


def _trace_exporter_names() -> list[str]:
    names = _env_list("OTEL_TRACES_EXPORTER")
    if names:
        return [n for n in names if n != "none"]
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    # Nothing is exported unless asked: a worker must not spray a collector
    # that was never configured (the SDK's own default would be OTLP).
    return ["otlp"] if endpoint else []


def _warn_protocol(signal: str) -> None:
    protocol = os.environ.get(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL") or os.environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
    )
    if protocol != "http/protobuf":
        log.warning(
            "only OTLP over http/protobuf is supported; exporting with it anyway "
            "(point the endpoint at the collector's HTTP port, usually 4318)",
            protocol=protocol,
        )


def _span_exporter(name: str) -> SpanExporter | None:
    if name == "otlp":
        _warn_protocol("TRACES")
        # Imported on demand: the exporter pulls in requests and protobuf.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter,
        )

        return OTLPSpanExporter()
    if name == "console":
        return ConsoleSpanExporter()
    log.warning("unknown OTEL_TRACES_EXPORTER entry ignored", exporter=name)
    return None


def _resource() -> Resource:
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    return resource


class PeriodicReader(PeriodicExportingMetricReader):
    """The periodic OTLP reader, exporting the local histograms too.

    Args:
        exporter: Where the metrics go.
        resource: The meter provider's resource (for the local histograms).
        export_interval_millis: Time between exports (None: the SDK's default).
    """

    def __init__(
        self,
        exporter: MetricExporter,
        resource: Resource | None = None,
        export_interval_millis: float | None = None,
    ) -> None:
        super().__init__(exporter, export_interval_millis=export_interval_millis)
        self._resource = resource or Resource.get_empty()

    def _receive_metrics(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> None:
        super()._receive_metrics(
            with_distributions(metrics_data, self._resource), timeout_millis, **kwargs
        )


def setup_telemetry() -> None:
    """Install the SDK tracer and meter providers (once per process; idempotent)."""
    global _scrape_reader  # noqa: PLW0603 - one reader per process, like the providers
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return
    with _lock:
        resource: Resource | None = None
        if not isinstance(trace.get_tracer_provider(), TracerProvider):
            resource = _resource()
            provider = TracerProvider(resource=resource)
            exporting = False
            for name in _trace_exporter_names():
                exporter = _span_exporter(name)
                if exporter is not None:
                    provider.add_span_processor(BatchSpanProcessor(exporter))
                    exporting = True
            trace.set_tracer_provider(provider)
            # Spans nobody exports are ids only (see _tracing): the trace still
            # links event, tasks and results through every traceparent.
            use_light_spans(not exporting)
        if not isinstance(metrics.get_meter_provider(), MeterProvider):
            resource = resource or _resource()
            reader = ScrapeReader(resource)
            readers: list[MetricReader] = [reader]
            if "otlp" in _env_list("OTEL_METRICS_EXPORTER"):
                _warn_protocol("METRICS")
                from opentelemetry.exporter.otlp.proto.http.metric_exporter import (  # noqa: PLC0415
                    OTLPMetricExporter,
                )

                readers.append(PeriodicReader(OTLPMetricExporter(), resource))
            metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=readers))
            _scrape_reader = reader


def metrics_text() -> tuple[int, str]:
    """The ``/metrics`` route: (HTTP status, Prometheus text)."""
    reader = _scrape_reader
    if reader is None:
        return 404, "metrics are not collected in this process (OTEL_SDK_DISABLED?)\n"
    return 200, render(reader.scrape())
