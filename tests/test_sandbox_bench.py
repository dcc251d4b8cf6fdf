"""The sandbox benchmark runs end to end at CI size (`python -m bench.sandbox` for figures)."""

from __future__ import annotations

import pytest
from bench import sandbox as bench_sandbox

pytestmark = pytest.mark.slow


def test_benchmark_prints_costs_ratio_and_throughput(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_sandbox.main(["--tasks", "20", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "ours (Sandbox.run)" in out
    assert "raw, stdout file" in out
    assert "ratio against the fastest raw loop" in out
    assert "2 threads" in out
