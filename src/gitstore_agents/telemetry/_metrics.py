"""The runtime's OpenTelemetry metrics: one set of instruments per process.

Instruments come from the global meter provider (a proxy until
``setup_telemetry`` installs the SDK one), so call sites need no handle.
Counters are ``Tally`` objects behind observable instruments: counting on the
hot path is a dict update, and the SDK sees the totals when it collects.
Histograms are ``Distribution`` objects: a bucket count per value (the SDK's
``Histogram.record`` hashes attributes and takes a lock, about 8 us a call,
twice per task); the SDK has no observable histogram, so every reader adds
them to what it collected (``with_distributions``). ``/metrics`` on the
health server renders everything in the Prometheus text format
(``_prometheus.py``).

Instruments (Prometheus name; attributes):

* ``gitstore.messages.settled`` counter (``gitstore_messages_settled_total``;
  ``durable``, ``settle``, ``outcome``): deliveries by outcome;
* ``gitstore.decisions`` counter (``role``, ``decision``);
* ``gitstore.task.retries`` counter (``role``, ``code``);
* ``gitstore.dead_letters`` counter (``role``, ``kind``);
* ``gitstore.duplicates.skipped`` counter (``role``, ``state``);
* ``gitstore.sandbox.fuel`` histogram (``kind``);
* ``gitstore.sandbox.wall_time`` histogram in seconds
  (``gitstore_sandbox_wall_time_seconds``; ``kind``);
* ``gitstore.fetch.batch_size`` histogram (``durable``): messages per pull request;
* ``gitstore.build.info`` gauge (``gitstore_build_info``; ``version``): always 1;
* ``gitstore.in_flight`` up-down counter (``durable``): delivered, not yet settled.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections.abc import Iterable

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from .. import __version__

METER_NAME = "gitstore_agents"

_FUEL_BUCKETS = (1e5, 1e6, 1e7, 1e8, 1e9, 1e10)
_WALL_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Tally:
    """Counts by attribute values, handed to the SDK only when metrics are collected.

    Counting is a dict update (the SDK's own ``Counter.add`` costs microseconds
    per call, several times per task); an observable instrument reports the
    totals on each scrape. Updated from the event loop's thread only.

    Args:
        names: Attribute names, in the order ``add`` takes their values.
    """

    def __init__(self, *names: str) -> None:
        self._names = names
        self._counts: dict[tuple[str, ...], int] = {}

    def add(self, *values: str, amount: int = 1) -> None:
        """Add ``amount`` to the count of ``values`` (one per attribute name)."""
        self._counts[values] = self._counts.get(values, 0) + amount

    def value(self, *values: str) -> int:
        """The current count of ``values``."""
        return self._counts.get(values, 0)

    def observe(self, _options: CallbackOptions) -> Iterable[Observation]:
        """The observable instrument's callback: every count with its attributes."""
        for values, count in list(self._counts.items()):
            yield Observation(count, dict(zip(self._names, values, strict=True)))


class _Series:
    __slots__ = ("counts", "max", "min", "sum")

    def __init__(self, buckets: int) -> None:
        self.counts = [0] * buckets
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf


class Distribution:
    """A histogram aggregated here: recording is a bisect and three additions.

    Cumulative, with explicit bucket boundaries, exported as an OpenTelemetry
    histogram by every reader (``with_distributions``). Recorded from the
    event loop's thread only; collection copies under a lock.

    Args:
        name: Instrument name (``gitstore.sandbox.fuel``).
        unit: UCUM unit.
        description: What it measures.
        boundaries: Upper bounds of the buckets (a value equal to a bound
            falls in its bucket, as OpenTelemetry's explicit buckets do).
        names: Attribute names, in the order ``record`` takes their values.
    """

    def __init__(
        self, name: str, unit: str, description: str, boundaries: Iterable[float], *names: str
    ) -> None:
        self.name = name
        self.unit = unit
        self.description = description
        self.boundaries = tuple(boundaries)
        self._names = names
        self._series: dict[tuple[str, ...], _Series] = {}
        self._start_ns = time.time_ns()
        self._lock = threading.Lock()

    def record(self, value: float, *values: str) -> None:
        """Count ``value`` for the attribute ``values`` (one per name)."""
        series = self._series.get(values)
        if series is None:
            with self._lock:
                series = self._series.setdefault(values, _Series(len(self.boundaries) + 1))
        series.counts[bisect.bisect_left(self.boundaries, value)] += 1
        series.sum += value
        series.min = min(series.min, value)
        series.max = max(series.max, value)

    def count(self, *values: str) -> int:
        """How many values were recorded for ``values``."""
        series = self._series.get(values)
        return sum(series.counts) if series is not None else 0

    def metric(self, now_ns: int) -> Metric | None:
        """The OpenTelemetry histogram of everything recorded (None before the first value)."""
        with self._lock:
            items = list(self._series.items())
        points = [
            HistogramDataPoint(
                attributes=dict(zip(self._names, values, strict=True)),
                start_time_unix_nano=self._start_ns,
                time_unix_nano=now_ns,
                count=sum(series.counts),
                sum=series.sum,
                bucket_counts=list(series.counts),
                explicit_bounds=self.boundaries,
                min=series.min,
                max=series.max,
            )
            for values, series in items
        ]
        if not points:
            return None
        return Metric(
            name=self.name,
            description=self.description,
            unit=self.unit,
            data=Histogram(
                data_points=points, aggregation_temporality=AggregationTemporality.CUMULATIVE
            ),
        )


def _build_info(_options: CallbackOptions) -> Iterable[Observation]:
    yield Observation(1, {"version": __version__})


class Instruments:
    """Every instrument the runtime records to (see the module docstring)."""

    def __init__(self, meter: metrics.Meter) -> None:
        self.settled = Tally("durable", "settle", "outcome")
        self.decisions = Tally("role", "decision")
        self.retries = Tally("role", "code")
        self.dead_letters = Tally("role", "kind")
        self.duplicates = Tally("role", "state")
        self.in_flight = Tally("durable")
        for name, tally, unit, description in (
            (
                "gitstore.messages.settled",
                self.settled,
                "{message}",
                "Deliveries settled, by durable, settle (ack/nak/term) and outcome code",
            ),
            (
                "gitstore.decisions",
                self.decisions,
                "{decision}",
                "Decisions made (the audit vocabulary), by role",
            ),
            (
                "gitstore.task.retries",
                self.retries,
                "{retry}",
                "Deliveries handed back for a retry, by role and error code",
            ),
            (
                "gitstore.dead_letters",
                self.dead_letters,
                "{message}",
                "Messages dead-lettered after their deliveries ran out",
            ),
            (
                "gitstore.duplicates.skipped",
                self.duplicates,
                "{task}",
                "Deliveries whose result was stored before (a redelivery, replay or copy)",
            ),
        ):
            meter.create_observable_counter(
                name, callbacks=[tally.observe], unit=unit, description=description
            )
        # Always reports, so a collection is never empty (the SDK then skips
        # its readers, and the local histograms with them).
        meter.create_observable_gauge(
            "gitstore.build.info",
            callbacks=[_build_info],
            unit="",
            description="1, with the running version of gitstore-agents",
        )
        meter.create_observable_up_down_counter(
            "gitstore.in_flight",
            callbacks=[self.in_flight.observe],
            unit="{message}",
            description="Deliveries received and not yet settled",
        )
        self.fuel = Distribution(
            "gitstore.sandbox.fuel",
            "{fuel}",
            "Fuel a successful module run consumed",
            _FUEL_BUCKETS,
            "kind",
        )
        self.wall_time = Distribution(
            "gitstore.sandbox.wall_time",
            "s",
            "Wall-clock time of a successful module run",
            _WALL_BUCKETS,
            "kind",
        )
        self.batch_size = Distribution(
            "gitstore.fetch.batch_size",
            "{message}",
            "Messages one pull request delivered",
            _BATCH_BUCKETS,
            "durable",
        )
        self.distributions = (self.fuel, self.wall_time, self.batch_size)


INSTRUMENTS = Instruments(metrics.get_meter(METER_NAME))
"""The process's instruments (bound to the global meter provider)."""


def with_distributions(data: MetricsData, resource: Resource) -> MetricsData:
    """``data`` with the process's ``Distribution`` histograms added to our meter's scope.

    ``resource`` is the meter provider's: used when the SDK collected nothing yet.
    """
    local = [m for d in INSTRUMENTS.distributions if (m := d.metric(time.time_ns())) is not None]
    if not local:
        return data
    resources = list(data.resource_metrics) or [
        ResourceMetrics(resource=resource, scope_metrics=[], schema_url="")
    ]
    first = resources[0]
    scopes = list(first.scope_metrics)
    for index, scope in enumerate(scopes):
        if scope.scope.name == METER_NAME:
            scopes[index] = ScopeMetrics(
                scope=scope.scope, metrics=[*scope.metrics, *local], schema_url=scope.schema_url
            )
            break
    else:
        scopes.append(
            ScopeMetrics(scope=InstrumentationScope(METER_NAME), metrics=local, schema_url="")
        )
    resources[0] = ResourceMetrics(
        resource=first.resource, scope_metrics=scopes, schema_url=first.schema_url
    )
    return MetricsData(resource_metrics=resources)
