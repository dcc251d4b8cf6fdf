"""CI-sized fault run (iv): the events stream replayed through a new planner durable, twice."""

from __future__ import annotations

from pathlib import Path

from bench.fault_replay import run_replay


async def test_replaying_every_event_adds_no_result(tmp_path: Path) -> None:
    events = 40
    report = await run_replay(events=events, modules="test", workdir=tmp_path, timeout_s=90)
    assert report.events_in == events
    # The replay after the window stored every compile task again (the one
    # before it may have too, if the first drain outlasted the window): the
    # ledger skipped each of them.
    assert events <= report.ledger_skips <= 2 * events
    assert report.tasks_stored == report.tasks_expected + report.ledger_skips
    assert (report.missing, report.duplicates) == (0, 0)
    assert report.distinct_tasks_with_result == report.tasks_expected == 3 * events
    assert report.exactly_once
