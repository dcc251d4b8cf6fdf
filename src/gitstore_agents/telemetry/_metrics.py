"""The runtime's OpenTelemetry metrics: one set of instruments per process.

Instruments come from the global meter provider (a proxy until
``setup_telemetry`` installs the SDK one), so recording costs nothing before
that and call sites need no handle. ``/metrics`` on the health server renders
them in the Prometheus text format (``_prometheus.py``).

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

from opentelemetry import metrics

METER_NAME = "gitstore_agents"

_FUEL_BUCKETS = (1e5, 1e6, 1e7, 1e8, 1e9, 1e10)
_WALL_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Instruments:
    """Every instrument the runtime records to (see the module table)."""

    def __init__(self, meter: metrics.Meter) -> None:
        self.settled = meter.create_counter(
            "gitstore.messages.settled",
            unit="{message}",
            description="Deliveries settled, by durable, settle (ack/nak/term) and outcome code",
        )
        self.decisions = meter.create_counter(
            "gitstore.decisions",
            unit="{decision}",
            description="Decisions made (the audit vocabulary), by role",
        )
        self.retries = meter.create_counter(
            "gitstore.task.retries",
            unit="{retry}",
            description="Deliveries handed back for a retry, by role and error code",
        )
        self.dead_letters = meter.create_counter(
            "gitstore.dead_letters",
            unit="{message}",
            description="Messages dead-lettered after their deliveries ran out",
        )
        self.duplicates = meter.create_counter(
            "gitstore.duplicates.skipped",
            unit="{task}",
            description="Deliveries of tasks the ledger already settled (not run again)",
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
        self.in_flight = meter.create_up_down_counter(
            "gitstore.in_flight",
            unit="{message}",
            description="Deliveries received and not yet settled",
        )


INSTRUMENTS = Instruments(metrics.get_meter(METER_NAME))
"""The process's instruments (bound to the global meter provider)."""
