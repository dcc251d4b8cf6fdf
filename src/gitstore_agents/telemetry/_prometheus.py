"""``/metrics``: the SDK's metrics in the Prometheus text exposition format (0.0.4).

A pull reader collects on each scrape; rendering follows the OpenTelemetry
to Prometheus conventions (dots become underscores, the unit is appended as a
suffix, counters end in ``_total``, histogram buckets are cumulative). No
second web server and no extra dependency: the health server serves the text.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry.sdk.metrics.export import (
    Gauge,
    Histogram,
    HistogramDataPoint,
    MetricReader,
    MetricsData,
    NumberDataPoint,
    Sum,
)
from opentelemetry.sdk.resources import Resource

from ._metrics import with_distributions

_INVALID_NAME = re.compile(r"[^a-zA-Z0-9_:]")
_INVALID_LABEL = re.compile(r"[^a-zA-Z0-9_]")
_UNITS = {"s": "seconds", "ms": "milliseconds", "By": "bytes", "1": "ratio"}


class ScrapeReader(MetricReader):
    """A metric reader that collects when asked (each ``/metrics`` request).

    Args:
        resource: The meter provider's resource (for the local histograms).
    """

    def __init__(self, resource: Resource | None = None) -> None:
        super().__init__()
        self._resource = resource or Resource.get_empty()
        self._lock = threading.Lock()
        self._latest: MetricsData | None = None

    def scrape(self) -> MetricsData | None:
        """Collect now and return what the SDK holds (None before it is registered)."""
        with self._lock:
            self._latest = None
            self.collect()
            return self._latest

    def _receive_metrics(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> None:
        self._latest = with_distributions(metrics_data, self._resource)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """Nothing to flush: scrapes pull."""


def metric_name(name: str, unit: str, *, counter: bool) -> str:
    """The Prometheus name of an OpenTelemetry instrument."""
    base = _INVALID_NAME.sub("_", name)
    if unit and not unit.startswith("{"):
        suffix = _UNITS.get(unit, _INVALID_NAME.sub("_", unit))
        if not base.endswith(f"_{suffix}"):
            base = f"{base}_{suffix}"
    if counter and not base.endswith("_total"):
        base = f"{base}_total"
    return base


def render(data: MetricsData | None) -> str:
    """``data`` as Prometheus text (one ``# HELP``/``# TYPE`` block per metric)."""
    lines: list[str] = []
    seen: set[str] = set()
    for resource in data.resource_metrics if data is not None else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points, unit = metric.data, metric.unit or ""
                if isinstance(points, Sum):
                    counter = points.is_monotonic
                    name = metric_name(metric.name, unit, counter=counter)
                    kind = "counter" if counter else "gauge"
                elif isinstance(points, Gauge):
                    name, kind = metric_name(metric.name, unit, counter=False), "gauge"
                elif isinstance(points, Histogram):
                    name = metric_name(metric.name, unit, counter=False)
                    kind = "histogram"
                else:
                    continue  # exponential histograms: none are configured
                if name not in seen:
                    seen.add(name)
                    lines.append(f"# HELP {name} {_escape_help(metric.description or '')}")
                    lines.append(f"# TYPE {name} {kind}")
                for point in points.data_points:
                    if isinstance(point, HistogramDataPoint):
                        lines.extend(_histogram(name, point))
                    elif isinstance(point, NumberDataPoint):
                        lines.append(f"{name}{_labels(point.attributes)} {_number(point.value)}")
    return "\n".join(lines) + "\n" if lines else ""


def _histogram(name: str, point: HistogramDataPoint) -> Iterable[str]:
    cumulative = 0
    attributes = dict(point.attributes or {})
    bounds = [*point.explicit_bounds, math.inf]
    for bound, count in zip(bounds, point.bucket_counts, strict=False):
        cumulative += count
        le = "+Inf" if math.isinf(bound) else _number(bound)
        yield f"{name}_bucket{_labels({**attributes, 'le': le})} {cumulative}"
    yield f"{name}_sum{_labels(attributes)} {_number(point.sum)}"
    yield f"{name}_count{_labels(attributes)} {point.count}"


def _labels(attributes: Mapping[str, Any] | None) -> str:
    if not attributes:
        return ""
    pairs = ",".join(
        _INVALID_LABEL.sub("_", key) + '="' + _escape_value(str(value)) + '"'
        for key, value in sorted(attributes.items())
    )
    return "{" + pairs + "}"


def _number(value: float) -> str:
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return str(int(value))
    return repr(float(value))


def _escape_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")
