"""CI-sized RSS soak: samples the worker's memory and reports its growth."""

from __future__ import annotations

import pytest
from bench.soak import report, run_soak

pytestmark = pytest.mark.slow


async def test_soak_samples_rss_and_reports_growth() -> None:
    result = await run_soak(tasks=400, kind="noop", sample_s=0.2)
    assert result.results == 400
    assert len(result.samples) >= 3
    assert all(rss > 10 for _, rss in result.samples)
    assert result.samples[-1][0] == 400
    text = report(result)
    assert "growth" in text
    assert "target < 10%" in text
