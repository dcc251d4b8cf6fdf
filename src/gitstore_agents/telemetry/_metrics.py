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
* ``gitstore.in_flight`` up-down counter (``durable``): delivered, not yet settled;
* ``gitstore.sandbox.outcomes`` counter (``kind``, ``outcome``): module runs;
* ``gitstore.consumer.pending`` and ``gitstore.consumer.ack_pending`` gauges
  (``durable``): the durable's ``num_pending`` (its lag) and ``num_ack_pending``,
  sampled by each worker (``consumer_info`` every few seconds, off the hot path);
* ``gitstore.nats.connected`` gauge (0/1), ``gitstore.nats.reconnects`` counter;
* ``gitstore.worker.ready`` gauge (0/1): what ``/readyz`` answers;
* ``messaging.process.duration`` histogram in seconds
  (``messaging_process_duration_seconds``; ``messaging.system``,
  ``messaging.operation.name``, ``messaging.consumer.group.name``, ``error.type``
  on failure): one per delivery, from its ``process`` span's start to its settle;
* ``messaging.client.operation.duration`` histogram in seconds (``messaging.system``,
  ``messaging.operation.name`` = ``send``, ``error.type`` on failure): one per
  publish batch, confirmed or failed.

The last two follow the OpenTelemetry messaging semantic conventions. Every
counter series whose label values the runtime knows at start (roles, kinds,
durables, decisions, settle values, the sandbox outcomes and the codes of
``PRESET_OUTCOMES`` and ``PRESET_RETRY_CODES``) exists at 0 from the first
scrape (``preset``): an alert's ``increase()`` sees the first dead letter, not
a series appearing at 1. Other codes appear when first counted.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from nats.aio.client import Client
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

from .. import __version__, codes
from ..config import GIT_PUSH, PLANNER, Config
from ..envelopes import AuditDecision
from ..sandbox import Outcome

METER_NAME = "gitstore_agents"

_FUEL_BUCKETS = (1e5, 1e6, 1e7, 1e8, 1e9, 1e10)
_WALL_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
# The messaging conventions' recommended boundaries (5 ms ... 10 s), extended
# below (a no-op task takes about a millisecond) and above (module runs may
# take minutes).
_DURATION_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
)
_NATS = {"messaging.system": "nats"}

PRESET_OUTCOMES = (
    ("ack", codes.OK),
    ("ack", codes.DUPLICATE),
    ("term", codes.DUPLICATE),
    ("nak", "handed-back"),
)
"""``(settle, outcome)`` of ``gitstore.messages.settled`` at 0 for every durable from the start.

Failure codes are not preset (there are dozens): a code's series appears with
its first delivery, which rate-based alerts on failures tolerate.
"""
PRESET_RETRY_CODES = ("publish-failed", "audit-failed")
"""Codes of ``gitstore.task.retries`` at 0 for every role from the start
(task roles also ``deadline-exceeded``); other codes appear when first counted."""

# Decisions each kind of role makes (the audit vocabulary the runtime writes).
_PLANNER_DECISIONS = (
    AuditDecision.TASKS_PLANNED,
    AuditDecision.DUPLICATE_SKIPPED,
    AuditDecision.FAILED,
    AuditDecision.RETRIED,
    AuditDecision.DEAD_LETTERED,
)
_TASK_DECISIONS = (
    AuditDecision.PUBLISHED,
    AuditDecision.DUPLICATE_SKIPPED,
    AuditDecision.FAILED,
    AuditDecision.REFUSED,
    AuditDecision.RETRIED,
    AuditDecision.DEAD_LETTERED,
)


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

    def preset(self, *values: str) -> None:
        """Report ``values`` at 0 until they are first counted (an alert sees no gap)."""
        self._counts.setdefault(values, 0)

    def set(self, *values: str, to: int) -> None:
        """Make the count of ``values`` ``to`` (a sampled gauge)."""
        self._counts[values] = to

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
        names: Attribute names, in the order ``record`` takes their values;
            an empty value leaves its attribute out (``error.type`` of a success).
        constants: Attributes every data point carries (``messaging.system``),
            added when collected rather than passed with every value.
    """

    def __init__(
        self,
        name: str,
        unit: str,
        description: str,
        boundaries: Iterable[float],
        *names: str,
        constants: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.unit = unit
        self.description = description
        self.boundaries = tuple(boundaries)
        self._names = names
        self._constants = dict(constants or {})
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
                attributes={
                    **self._constants,
                    **{n: v for n, v in zip(self._names, values, strict=True) if v},
                },
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
        self.sandbox_outcomes = Tally("kind", "outcome")
        self.in_flight = Tally("durable")
        self.pending = Tally("durable")
        self.ack_pending = Tally("durable")
        # What the connection and readiness gauges read: the runtime that
        # preset last (one per worker process; tests start many in turn).
        self._ready: Callable[[], bool] | None = None
        self._connection: Callable[[], Client | None] | None = None
        # Reconnects of connections no longer watched, so the counter never goes back.
        self._past_reconnects = 0
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
            (
                "gitstore.sandbox.outcomes",
                self.sandbox_outcomes,
                "{run}",
                "Module runs, by task kind and outcome (ok or the sandbox outcome code)",
            ),
        ):
            meter.create_observable_counter(
                name, callbacks=[tally.observe], unit=unit, description=description
            )
        meter.create_observable_counter(
            "gitstore.nats.reconnects",
            callbacks=[self._observe_reconnects],
            unit="{reconnect}",
            description="Times the worker's NATS connection was re-established",
        )
        for name, callback, description in (
            (
                "gitstore.nats.connected",
                self._observe_connected,
                "1 while the worker is connected to NATS, else 0",
            ),
            (
                "gitstore.worker.ready",
                self._observe_ready,
                "1 while /readyz answers 200 (connected, every consumer bound, not draining)",
            ),
        ):
            meter.create_observable_gauge(
                name, callbacks=[callback], unit="", description=description
            )
        for name, tally, description in (
            (
                "gitstore.consumer.pending",
                self.pending,
                "Messages the durable has not delivered yet (num_pending: its lag), sampled",
            ),
            (
                "gitstore.consumer.ack_pending",
                self.ack_pending,
                "Messages delivered and not yet acknowledged (num_ack_pending), sampled",
            ),
        ):
            meter.create_observable_gauge(
                name, callbacks=[tally.observe], unit="{message}", description=description
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
        self.process_duration = Distribution(
            "messaging.process.duration",
            "s",
            "Duration of processing one delivery, from its process span's start to its settle",
            _DURATION_BUCKETS,
            "messaging.consumer.group.name",
            "error.type",
            constants={**_NATS, "messaging.operation.name": "process"},
        )
        self.send_duration = Distribution(
            "messaging.client.operation.duration",
            "s",
            "Duration of one publish batch, from the first send to the last PubAck or the failure",
            _DURATION_BUCKETS,
            "error.type",
            constants={**_NATS, "messaging.operation.name": "send"},
        )
        self.distributions = (
            self.fuel,
            self.wall_time,
            self.batch_size,
            self.process_duration,
            self.send_duration,
        )

    def preset(
        self,
        config: Config,
        roles: Sequence[str],
        *,
        durables: Sequence[str],
        ready: Callable[[], bool] | None = None,
        connection: Callable[[], Client | None] | None = None,
    ) -> None:
        """Report every series known at start at 0, and watch a runtime's connection.

        Args:
            config: The runtime's configuration (each role's task kinds).
            roles: The roles the process runs.
            durables: Every durable its workers pull from (roles' and dead-letter ones).
            ready: Whether the runtime is ready (``gitstore.worker.ready``).
            connection: The runtime's NATS connection, None before it connects
                (``gitstore.nats.connected``, ``gitstore.nats.reconnects``).
        """
        for durable in durables:
            self.in_flight.preset(durable)
            for settle, outcome in PRESET_OUTCOMES:
                self.settled.preset(durable, settle, outcome)
        for role in roles:
            planner = role == PLANNER
            kinds = (GIT_PUSH,) if planner else tuple(sorted(config.role(role).kinds))
            for decision in _PLANNER_DECISIONS if planner else _TASK_DECISIONS:
                self.decisions.preset(role, decision)
            for kind in kinds:
                self.dead_letters.preset(role, kind)
            states = (codes.PLANNED,) if planner else (codes.SUCCEEDED, codes.FAILED)
            for state in states:
                self.duplicates.preset(role, state)
            retried = (
                PRESET_RETRY_CODES if planner else (*PRESET_RETRY_CODES, Outcome.DEADLINE_EXCEEDED)
            )
            for code in retried:
                self.retries.preset(role, code)
            if not planner:
                for kind in kinds:
                    for outcome in Outcome:
                        self.sandbox_outcomes.preset(kind, outcome)
        if connection is not None:
            self._past_reconnects += _reconnects(self._connection)
            self._connection = connection
        if ready is not None:
            self._ready = ready

    def _observe_connected(self, _options: CallbackOptions) -> Iterable[Observation]:
        if self._connection is not None:
            nc = self._connection()
            yield Observation(1 if nc is not None and nc.is_connected else 0)

    def _observe_reconnects(self, _options: CallbackOptions) -> Iterable[Observation]:
        if self._connection is not None:
            yield Observation(self._past_reconnects + _reconnects(self._connection))

    def _observe_ready(self, _options: CallbackOptions) -> Iterable[Observation]:
        if self._ready is not None:
            yield Observation(1 if self._ready() else 0)


def _reconnects(connection: Callable[[], Client | None] | None) -> int:
    # nats-py counts the connections it re-established in its stats.
    nc = connection() if connection is not None else None
    return int(nc.stats.get("reconnects", 0)) if nc is not None else 0


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
