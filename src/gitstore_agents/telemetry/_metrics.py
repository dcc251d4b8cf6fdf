"""The runtime's OpenTelemetry metrics: one set of instruments per process.

Instruments come from the global meter provider (a proxy until
``setup_telemetry`` installs the SDK one), so call sites need no handle.
Counters are ``Tally`` objects behind observable instruments: counting on the
hot path is a dict update, and the SDK sees the totals when it collects.
``/metrics`` on the health server renders them in the Prometheus text format
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
* ``gitstore.in_flight`` up-down counter (``durable``): delivered, not yet settled.
"""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

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
                "Deliveries of tasks the ledger already settled (not run again)",
            ),
        ):
            meter.create_observable_counter(
                name, callbacks=[tally.observe], unit=unit, description=description
            )
        meter.create_observable_up_down_counter(
            "gitstore.in_flight",
            callbacks=[self.in_flight.observe],
            unit="{message}",
            description="Deliveries received and not yet settled",
        )
        self.fuel = meter.create_histogram(
            "gitstore.sandbox.fuel",
            unit="{fuel}",
            description="Fuel a successful module run consumed",
            explicit_bucket_boundaries_advisory=_FUEL_BUCKETS,
        )
        self.wall_time = meter.create_histogram(
            "gitstore.sandbox.wall_time",
            unit="s",
            description="Wall-clock time of a successful module run",
            explicit_bucket_boundaries_advisory=_WALL_BUCKETS,
        )
        self.batch_size = meter.create_histogram(
            "gitstore.fetch.batch_size",
            unit="{message}",
            description="Messages one pull request delivered",
            explicit_bucket_boundaries_advisory=_BATCH_BUCKETS,
        )


INSTRUMENTS = Instruments(metrics.get_meter(METER_NAME))
"""The process's instruments (bound to the global meter provider)."""
