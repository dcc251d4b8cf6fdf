"""Helpers for telemetry, audit and status tests: recorded spans, audit trails, failing modules."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence

import wasmtime
from nats.aio.client import Client
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gitstore_agents.config import Topology
from gitstore_agents.envelopes import AuditDecision, AuditRecord
from gitstore_agents.telemetry import (
    light_spans,
    read_event_trail,
    setup_telemetry,
    use_light_spans,
)


class _Recorder(SpanProcessor):
    """Hands finished spans to the test's exporter while one is recording (else drops them)."""

    def __init__(self) -> None:
        self.exporter: InMemorySpanExporter | None = None

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Nothing to do when a span starts."""

    def on_end(self, span: ReadableSpan) -> None:
        """Export ``span`` to the current test's exporter, if any."""
        exporter = self.exporter
        if exporter is not None:
            exporter.export((span,))


_recorder: _Recorder | None = None
_lock = threading.Lock()


def span_recorder() -> _Recorder:
    """The process-wide recorder attached to the SDK tracer provider (installed once).

    The global tracer provider can be set once per process; whichever test
    installs the SDK first, the recorder is added to that provider.
    """
    global _recorder  # noqa: PLW0603 - one per process, like the tracer provider
    with _lock:
        if _recorder is None:
            setup_telemetry()
            provider = trace.get_tracer_provider()
            assert isinstance(provider, TracerProvider), "the SDK tracer provider is installed"
            _recorder = _Recorder()
            provider.add_span_processor(_recorder)
        return _recorder


def by_name(spans: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    """Finished spans called ``name``."""
    return [s for s in spans if s.name == name]


def one(spans: Sequence[ReadableSpan], name: str) -> ReadableSpan:
    """The single finished span called ``name``."""
    found = by_name(spans, name)
    assert len(found) == 1, f"expected one span {name!r}, got {[s.name for s in spans]}"
    return found[0]


def hex_trace(span: ReadableSpan) -> str:
    """The span's trace id as 32 hex digits."""
    assert span.context is not None
    return format(span.context.trace_id, "032x")


def hex_span(span: ReadableSpan) -> str:
    """The span's id as 16 hex digits."""
    assert span.context is not None
    return format(span.context.span_id, "016x")


def parent_id(span: ReadableSpan) -> str | None:
    """The span's parent span id as 16 hex digits (None for a root)."""
    return format(span.parent.span_id, "016x") if span.parent is not None else None


async def audit_records(nc: Client, topology: Topology, event_id: str) -> list[AuditRecord]:
    """Every audit record of ``event_id``, in stream order."""
    entries = await read_event_trail(nc, topology, event_id)
    return [e.record for e in entries]


def decisions(records: Sequence[AuditRecord], key: str | None = None) -> list[AuditDecision]:
    """The decisions of ``records`` (only those about task ``key`` when given)."""
    return [r.decision for r in records if key is None or r.idempotency_key == key]


_FAIL = """(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "{text}")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const {length}))
    (drop (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))
    unreachable))
"""


def stderr_trap_module(stderr: str) -> bytes:
    """Writes ``stderr`` to stderr, then traps (a deterministic, permanent failure)."""
    escaped = stderr.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return wasmtime.wat2wasm(_FAIL.format(text=escaped, length=len(stderr.encode())))


@contextlib.contextmanager
def recording_spans() -> Iterator[InMemorySpanExporter]:
    """Record every span that ends inside the block (for one test)."""
    recorder = span_recorder()
    exporter = InMemorySpanExporter()
    recorder.exporter = exporter
    # Spans are only ids while nothing exports them; this block exports them.
    light = light_spans()
    use_light_spans(False)
    try:
        yield exporter
    finally:
        recorder.exporter = None
        use_light_spans(light)
