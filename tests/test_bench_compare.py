"""CI-sized comparison run: every row of ``python -m bench`` measures something, and prints."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from bench._harness import RowResult
from bench.compare import WHAT_IF_NO_AUDIT, parse_args, report, run, scaling_ceiling
from bench.workers.without_audit_trail import skip_audit_storage

from gitstore_agents.config import MARKDOWN_COMPILE
from gitstore_agents.consumers import Settle
from gitstore_agents.pipeline._audit import AuditLog

from .pipeline_support import task_delivery, task_pipeline
from .test_pipeline import make_task, wire
from .wasm_modules import echo_module


@pytest.mark.slow
async def test_the_comparison_prints_every_row_with_ratios_and_targets() -> None:
    argv = ["--messages", "60", "--latency-messages", "20", "--rate", "50"]
    argv += ["--rows", "raw nats-py", "noop", "compile", "--processes", "1", "2"]
    args = parse_args(argv)
    results, probes = await run(args)
    out = report(args, results, probes)
    assert "fsync=always (production: always)" in out
    assert "fsyncs/s" in out
    rows: dict[str, list[str]] = {}
    for line in out.splitlines():
        for name in (
            "raw nats-py",
            "ours: no-op task",
            "ours: markdown-compile x1",
            "ours: markdown-compile x2",
        ):
            if line.startswith(name + " "):
                rows[name] = line[len(name) :].split()
    assert set(rows) == {
        "raw nats-py",
        "ours: no-op task",
        "ours: markdown-compile x1",
        "ours: markdown-compile x2",
    }
    for name, cells in rows.items():
        msgs_per_s, p50, p99, rss = (float(c.replace(",", "")) for c in cells[:4])
        assert msgs_per_s > 0, name
        assert 0 < p50 <= p99, name
        assert rss > 10, name
        assert cells[4].endswith("x"), name
    # Every paced message was matched to its result (no "latency samples" note).
    assert "latency samples" not in out
    assert "peak RSS is the sum of" in out
    assert "markdown-compile 1 -> 2 processes" in out
    # The bound a second process can reach, from the CPU per event of one.
    ceiling = out.split("markdown-compile 1 -> 2 ceiling here")[1]
    assert float(ceiling.split("x")[0]) > 0
    assert "us CPU per event" in ceiling
    assert "no-op vs raw nats-py" in out
    ratio = float(out.split("no-op vs raw nats-py")[1].split("x")[0])
    assert not math.isnan(ratio)


def test_the_scaling_ceiling_is_the_machine_rate_over_one_process_rate() -> None:
    # 1,000 + 250 us per event on 2 cores: at most 1,600 events/s; one process does 800.
    one = RowResult("x1", 800.0, 1.0, 2.0, 50.0, worker_us=1000.0, server_us=250.0)
    (line,) = scaling_ceiling(one, 2)
    assert " 2.00x " in line
    assert scaling_ceiling(RowResult("x1", 800.0, 1.0, 2.0, 50.0), 2) == []


async def test_the_what_if_worker_stores_no_audit_records_and_decides_as_shipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = echo_module("echoed")
    task = make_task(MARKDOWN_COMPILE, module, {"content": "# x", "path": "products/shoe.md"})
    monkeypatch.setattr(AuditLog, "commit", AuditLog.commit)  # restored after the test
    skip_audit_storage()
    with task_pipeline(tmp_path, module=module) as p:
        decision = await p.handler(task_delivery(task, wire(task)))
    assert (decision.settle, decision.code) == (Settle.ACK, "ok")
    assert len(p.streams.on("mem.validation.")) == 1
    assert p.streams.on("mem.audit.") == []


def test_a_what_if_run_says_so_above_its_table() -> None:
    row = RowResult("ours: no-op task", 800.0, 1.0, 2.0, 50.0)
    shipped = report(parse_args([]), [row], [1000.0, 1000.0])
    what_if = report(parse_args(["--without-audit-trail"]), [row], [1000.0, 1000.0])
    assert "WHAT-IF" not in shipped
    assert f"WHAT-IF: {WHAT_IF_NO_AUDIT}" in what_if.splitlines()
