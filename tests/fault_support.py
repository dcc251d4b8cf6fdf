"""What a CI-sized fault run must end with, as one value a test compares."""

from __future__ import annotations

from bench._faults import FaultReport

_NOTHING_LEFT = ("missing", "duplicates", "unacked", "pending", "dead_letters")


def outcome(report: FaultReport) -> dict[str, object]:
    """The counts that decide a fault run: what came in, what was done, what was left behind."""
    deciding = ("events_in", "disruptions", "tasks_expected", "distinct_tasks_with_result")
    counts = {name: getattr(report, name) for name in deciding + _NOTHING_LEFT}
    return counts | {"exactly_once": report.exactly_once}


def exactly_once(
    *, events: int, disruptions: int, events_in: int | None = None
) -> dict[str, object]:
    """The :func:`outcome` of ``events`` events (three tasks each) that kept every guarantee.

    Args:
        events: Events the run published (each maybe several times).
        disruptions: Disturbances the scenario made.
        events_in: Events stored, when not one per event.
    """
    tasks = 3 * events
    return {
        "events_in": events if events_in is None else events_in,
        "disruptions": disruptions,
        "tasks_expected": tasks,
        "distinct_tasks_with_result": tasks,
        **dict.fromkeys(_NOTHING_LEFT, 0),
        "exactly_once": True,
    }
