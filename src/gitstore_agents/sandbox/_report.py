"""A run as a JSON document, for people and scripts (``sandbox run``)."""

from __future__ import annotations

from typing import Any

import msgspec

from ._outcome import Outcome, RunResult


def run_report(result: RunResult, module_digest: str | None) -> dict[str, Any]:
    """JSON-ready summary of ``result``.

    ``output`` is stdout decoded as JSON when it is JSON (the task protocol);
    otherwise it is None and ``stdout`` carries the text.
    """
    report: dict[str, Any] = {
        "module_digest": module_digest,
        "outcome": result.outcome.value,
        "deterministic": result.deterministic,
        "exit_code": result.exit_code,
        "detail": result.detail,
        "usage": {
            "fuel": result.fuel_used,
            "wall_time_us": result.wall_time_us,
            "peak_memory_bytes": result.peak_memory_bytes,
        },
        "stdout_dropped": result.stdout_dropped,
        "stderr_dropped": result.stderr_dropped,
    }
    try:
        report["output"] = msgspec.json.decode(result.stdout) if result.stdout else None
    except msgspec.DecodeError:
        report["output"] = None
    if report["output"] is None and result.stdout:
        report["stdout"] = result.stdout.decode("utf-8", errors="replace")
    report["stderr"] = result.stderr.decode("utf-8", errors="replace")
    return report


def refusal_report(outcome: Outcome, detail: str, module_digest: str | None) -> dict[str, Any]:
    """JSON-ready summary of a module that was refused before running."""
    return {
        "module_digest": module_digest,
        "outcome": outcome.value,
        "deterministic": outcome.deterministic,
        "exit_code": None,
        "detail": detail,
        "usage": {"fuel": 0, "wall_time_us": 0, "peak_memory_bytes": 0},
    }
