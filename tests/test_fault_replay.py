"""CI-sized fault run (iv): the events stream replayed through a new planner durable, twice."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.fault_replay import run_replay

from .fault_support import exactly_once, outcome

pytestmark = pytest.mark.slow


async def test_replaying_every_event_adds_no_result(tmp_path: Path) -> None:
    events = 40
    report = await run_replay(events=events, modules="test", workdir=tmp_path, timeout_s=90)
    assert outcome(report) == exactly_once(events=events, disruptions=2)
    # Every replayed event re-planned its task and found its slot taken, inside
    # the duplicate window and past it alike: the replays stored nothing.
    assert report.tasks_stored == report.tasks_expected
    assert report.slot_taken == 2 * events
