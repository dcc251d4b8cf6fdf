"""Logs: lines inside a task carry trace, span, event, key and role; stderr is followed."""

from __future__ import annotations

import io
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from nats.aio.client import Client
from structlog.testing import capture_logs

from gitstore_agents.config import MARKDOWN_COMPILER, PLANNER, Topology
from gitstore_agents.envelopes import TaskRequest
from gitstore_agents.guardrails import BasicAdmission, KindAllowance, Refusal
from gitstore_agents.telemetry import (
    add_trace_context,
    configure_logging,
    setup_telemetry,
    tracer,
)

from .runtime_support import (
    make_event,
    publish_event,
    running,
    runtime_config,
    validation_requests,
    wait_settled,
)
from .support import eventually

_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_HEX16 = re.compile(r"^[0-9a-f]{16}$")


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    saved = structlog.get_config()
    try:
        yield
    finally:
        structlog.configure(**saved)


class _ChattyAdmission(BasicAdmission):
    """Admits like the basic one and logs a line with no fields of its own."""

    def admit(self, task: TaskRequest, envelope_bytes: int = 0) -> Refusal | None:
        structlog.get_logger("test.admission").info("looked at a task")
        return super().admit(task, envelope_bytes)


def _chatty(_role: str, allowed: dict[str, KindAllowance]) -> BasicAdmission:
    return _ChattyAdmission(allowed)


@pytest.mark.parametrize("level", ["DEBUG", "INFO"])
async def test_every_line_inside_a_task_carries_trace_span_event_key_and_role(
    nats_url: str, nc: Client, topology: Topology, tmp_path: Path, level: str
) -> None:
    # A task that goes well logs one line, its outcome (its usage and digests
    # are in that line and in the audit trail); a module's own DEBUG line
    # inside the task carries the same context.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(level))
    config = runtime_config(nats_url, topology, tmp_path, follow_ups=())
    js = nc.jetstream()
    event = make_event(1)
    processors = [structlog.contextvars.merge_contextvars, add_trace_context]
    with capture_logs(processors=processors) as lines:
        async with running(config, [PLANNER, MARKDOWN_COMPILER], admission=_chatty):
            await publish_event(js, topology, event)
            (request,) = await eventually(
                lambda: validation_requests(js, topology), lambda found: len(found) == 1
            )
            await wait_settled(js, config, [PLANNER, MARKDOWN_COMPILER])

    (looked,) = [line for line in lines if line["event"] == "looked at a task"]
    assert looked["event_id"] == event.event_id
    assert looked["idempotency_key"] == request.idempotency_key
    assert looked["role"] == MARKDOWN_COMPILER
    assert _HEX32.match(looked["trace_id"])
    assert _HEX16.match(looked["span_id"])
    in_tasks = [line for line in lines if line.get("idempotency_key") == request.idempotency_key]
    events = [line["event"] for line in in_tasks]
    assert sorted(events) == ["looked at a task", "published"], events
    for line in in_tasks:
        assert line["trace_id"] == looked["trace_id"], line
        assert _HEX16.match(line["span_id"]), line
        assert (line["event_id"], line["role"]) == (event.event_id, MARKDOWN_COMPILER), line
    planner = [line for line in lines if line["event"] == "tasks-planned"]
    assert planner[0]["role"] == PLANNER
    assert planner[0]["trace_id"] == looked["trace_id"], "one trace from event to task"
    # Digests and sizes only: the file's text never reaches a log line.
    content = event.blobs[0].content
    assert content is not None
    assert not any(content.splitlines()[-1] in json.dumps(line, default=str) for line in lines)


def test_configure_logging_follows_the_current_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    setup_telemetry()
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    configure_logging(json=True)
    log = structlog.get_logger("test")
    log.info("one", size=3)
    # pytest swaps (and closes) stderr between tests; the next line must not go to the old one.
    monkeypatch.setattr(sys, "stderr", second)
    with tracer().start_as_current_span("a span") as span:
        log.info("two")
    assert [json.loads(line)["event"] for line in first.getvalue().splitlines()] == ["one"]
    (two,) = [json.loads(line) for line in second.getvalue().splitlines()]
    context = span.get_span_context()
    assert (two["event"], two["level"]) == ("two", "info")
    assert (two["trace_id"], two["span_id"]) == (
        format(context.trace_id, "032x"),
        format(context.span_id, "016x"),
    )


def test_console_logging_in_dev(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    configure_logging(json=False, level="WARNING")
    log = structlog.get_logger("test")
    log.info("hidden")
    log.warning("shown", key="value")
    text = out.getvalue()
    assert "hidden" not in text
    assert "shown" in text
    assert "key" in text
    assert not text.lstrip().startswith("{"), "readable, not JSON"


def test_json_lines_render_any_value_and_tracebacks_without_locals(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    configure_logging(json=True, level="INFO")
    log = structlog.get_logger("test.render")
    log.info("values", path=Path("/srv/catalog"), error=ValueError("boom"), count=3)
    credential = "s3cr3t-token-in-a-local"  # what must not reach a log line

    def fails(secret: str) -> None:
        raise RuntimeError(f"failed after {len(secret)} chars")

    try:
        fails(credential)
    except RuntimeError:
        log.exception("handler failed")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["path"] == "PosixPath('/srv/catalog')"
    assert first["error"] == "ValueError('boom')"
    assert first["count"] == 3
    (exception,) = second["exception"]
    assert exception["exc_type"] == "RuntimeError"
    assert exception["frames"], "the traceback's frames are there"
    assert credential not in stream.getvalue(), "frame locals stay out of the logs"
