"""CI-sized fault run (v): a 3-node cluster with R3 streams, the tasks stream's leader killed."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.fault_cluster import run_cluster

from .fault_support import exactly_once, outcome

pytestmark = pytest.mark.slow


async def test_a_killed_and_restarted_node_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    report = await run_cluster(
        events=60, kills=1, down_s=2.0, modules="test", seed=3, workdir=tmp_path, timeout_s=120
    )
    assert outcome(report) == exactly_once(events=60, disruptions=1)
