"""CI-sized fault run (v): a 3-node cluster with R3 streams, the tasks stream's leader killed."""

from __future__ import annotations

from pathlib import Path

from bench.fault_cluster import run_cluster


async def test_a_killed_and_restarted_node_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    report = await run_cluster(
        events=60, kills=1, down_s=2.0, modules="test", seed=3, workdir=tmp_path, timeout_s=120
    )
    assert report.disruptions == 1
    assert report.events_in == 60
    assert (report.missing, report.duplicates) == (0, 0)
    assert (report.unacked, report.pending, report.dead_letters) == (0, 0, 0)
    assert report.distinct_tasks_with_result == report.tasks_expected == 180
    assert report.exactly_once
