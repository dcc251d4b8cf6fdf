"""CI-sized fault run (ii): nats-server restarted (crash, then clean stop) under a busy worker."""

from __future__ import annotations

from pathlib import Path

from bench.fault_restart import run_restarts


async def test_server_restarts_mid_run_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    report = await run_restarts(
        events=100, restarts=2, down_s=0.5, modules="test", seed=9, workdir=tmp_path, timeout_s=90
    )
    assert report.disruptions == 2
    assert report.events_in == 100
    assert (report.missing, report.duplicates) == (0, 0)
    assert (report.unacked, report.pending, report.dead_letters) == (0, 0, 0)
    assert report.distinct_tasks_with_result == report.tasks_expected == 300
    assert report.exactly_once
