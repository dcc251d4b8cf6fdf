"""CI-sized fault run (ii): nats-server restarted (crash, then clean stop) under a busy worker."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.fault_restart import run_restarts

from .fault_support import exactly_once, outcome

pytestmark = pytest.mark.slow


async def test_server_restarts_mid_run_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    report = await run_restarts(
        events=100, restarts=2, down_s=0.5, modules="test", seed=9, workdir=tmp_path, timeout_s=90
    )
    assert outcome(report) == exactly_once(events=100, disruptions=2)
