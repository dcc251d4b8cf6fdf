"""A CI-sized fault run: the bench scenario with fewer events and kills."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.fault_sigkill import run_fault

from .fault_support import exactly_once, outcome

pytestmark = pytest.mark.slow


async def test_fault_run_with_sigkills_ends_with_one_result_per_task(tmp_path: Path) -> None:
    report = await run_fault(
        events=120, kills=2, modules="test", seed=5, workdir=tmp_path, timeout_s=120
    )
    assert report.kills == 2
    assert outcome(report) == exactly_once(events=120, disruptions=2)
