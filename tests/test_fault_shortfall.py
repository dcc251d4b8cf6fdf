"""A fault run whose results stop short ends once the backlog settles, and counts them as lost."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench._faults import fault_run, print_report, publish_events, single_server

pytestmark = pytest.mark.slow


async def test_a_shortfall_ends_the_waits_and_fails_the_run(tmp_path: Path) -> None:
    events, published = 20, 10
    # The timeout is far longer than the settle time: a wait that ignored the
    # drained backlog would run into it and raise instead of returning.
    async with fault_run(
        single_server, events=events, modules="test", workdir=tmp_path, timeout_s=60, stall_s=1.0
    ) as run:
        # Only half the events go out: the other half's results can never come.
        await publish_events(run.js, run.config, range(published))
        run.start_worker()
        # A moment at 90% of the results never comes: no disturbance happens.
        assert [stored async for _, stored in run.moments([0.9])] == []
        await run.wait_drained()
        report = await run.report("half the events never published")
    assert report.validation_results_stored == 3 * published
    assert report.missing == 3 * (events - published)
    assert (report.duplicates, report.unacked, report.pending) == (0, 0, 0)
    assert not report.exactly_once
    assert print_report(report) == 1
