"""CI-sized fault run (iii): every event published 3x, and 3x again after the duplicate window."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.fault_duplicates import run_duplicates

from .fault_support import exactly_once, outcome

pytestmark = pytest.mark.slow


async def test_copies_inside_and_beyond_the_window_yield_one_result_per_task(
    tmp_path: Path,
) -> None:
    events = 40
    report = await run_duplicates(events=events, modules="test", workdir=tmp_path, timeout_s=90)
    assert report.events_published == 6 * events
    # JetStream kept one copy per window: one from each phase (events in)...
    assert outcome(report) == exactly_once(events=events, disruptions=0, events_in=2 * events)
    # ...and the second phase's re-planned tasks found their slots taken:
    # nothing was stored twice, and no task ran again.
    assert report.tasks_stored == report.tasks_expected
    assert report.slot_taken == events, "one re-planned event each"
