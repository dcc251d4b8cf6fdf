"""A CI-sized fault run: the bench scenario with fewer events and kills."""

from __future__ import annotations

from pathlib import Path

from bench.fault_sigkill import run_fault


async def test_fault_run_with_sigkills_ends_with_one_result_per_task(tmp_path: Path) -> None:
    report = await run_fault(
        events=120, kills=2, modules="test", seed=5, workdir=tmp_path, timeout_s=120
    )
    assert report.kills == 2
    assert report.events_in == 120
    assert report.duplicates == 0
    assert report.missing == 0
    assert (report.unacked, report.pending) == (0, 0)
    assert report.distinct_tasks_with_result == report.tasks_expected == 360
    assert report.exactly_once
