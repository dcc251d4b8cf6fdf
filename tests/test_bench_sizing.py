"""A tiny ``python -m bench.sizing`` run: every role, every stream measured, the table printed."""

from __future__ import annotations

import re

import pytest
from bench.sizing import measure, parse_args, render


async def test_the_sizing_bench_prints_bytes_per_event_and_task_for_every_stream() -> None:
    # What `python -m bench.sizing --events 10` runs (main() also sets the log level).
    args = parse_args(["--events", "10", "--invalid-every", "20"])
    # 10 events, the second one invalid: 9 x 3 tasks + 1 rejected compile.
    sizing = await measure(args.events, invalid_every=args.invalid_every, timeout_s=60)
    assert sizing.notes == []
    out = render(sizing, project=args.project)
    assert "sizing: 10 events" in out
    assert "1 invalid), 28 tasks" in out
    rows = {
        m["label"]: [float(c.replace(",", "")) for c in m["cells"].split(" | ")[:4]]
        for m in re.finditer(
            r"^\| (?P<label>[A-Za-z]+) \(`[^`]+`\) \| (?P<cells>.+) \|$", out, re.MULTILINE
        )
    }
    assert sorted(rows) == sorted(
        ["EVENTS", "TASKS", "VALIDATION", "FAILURES", "AUDIT", "ADVISORIES", "content"]
    )
    per_event = {label: cells[0] for label, cells in rows.items()}
    assert per_event["EVENTS"] == 1.0
    assert per_event["TASKS"] == 2.8
    assert per_event["VALIDATION"] == 2.7
    assert per_event["FAILURES"] == 0.1
    assert per_event["AUDIT"] > 3
    for label in ("EVENTS", "TASKS", "VALIDATION", "FAILURES", "AUDIT"):
        messages, per_event_bytes, per_task_bytes, per_message_bytes = rows[label]
        assert per_message_bytes > 200, label
        assert per_event_bytes == pytest.approx(per_message_bytes * messages, rel=0.01), label
        assert per_task_bytes == pytest.approx(per_event_bytes * 10 / 28, rel=0.01), label
    assert re.search(r"^\| total \| \| [\d,]+ \| [\d,]+ \| \| [\d.]+ GiB \|$", out, re.MULTILINE)
    assert "modules store" in out
    assert "note:" not in out
