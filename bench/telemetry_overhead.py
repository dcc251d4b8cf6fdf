"""What tracing, metrics and the audit trail cost per task.

Run from the repository root::

    python -m bench.telemetry_overhead [--tasks 20000] [--events 1000] [--repeats 3]

Two measurements:

* **in-process**: the telemetry calls one successful task makes in the
  pipeline (the process span, the sandbox stage span with the run's usage,
  its one decision through the observer, its audit record encoded, the send
  span with context injection, the receive link, metrics), in a tight loop,
  against the same loop with a log line only (``LogObserver``). Logs go to
  ``/dev/null``; no span exporter (the default: light spans, ids only) and,
  as a second row, a batch processor feeding a no-op exporter (real spans:
  the cost an OTLP exporter adds before its own thread).
* **end to end**: ``--events`` git events (one product file each, the
  reference ``markdown-compile`` module, no follow-ups) drained by one worker
  process running the planner and the markdown-compiler, once with
  everything on (the default) and once without spans and metrics
  (``OTEL_SDK_DISABLED=true`` and the log-only observer; the audit trail is
  the pipeline's own and stays). Each configuration runs in its own process
  against the same nats-server (``sync_interval: always``;
  ``BENCH_SYNC=periodic`` for the server's default), alternating,
  ``--repeats`` times; the fastest run of each is reported (other load on the
  machine only ever slows a run down).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence

import msgspec
import structlog
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from gitstore_agents.config import MARKDOWN_COMPILER, PLANNER, load_config
from gitstore_agents.consumers import provision
from gitstore_agents.envelopes import AuditDecision, Blob, GitEvent, git_blob_oid
from gitstore_agents.service import Runtime
from gitstore_agents.telemetry import (
    INSTRUMENTS,
    DecisionRecord,
    LogObserver,
    Observer,
    ReceiveBatch,
    TelemetryObserver,
    annotate,
    audit_record,
    configure_logging,
    encode_record,
    inject,
    process_span,
    record_outcome,
    record_run,
    send_span,
    setup_telemetry,
    use_light_spans,
)

from ._harness import BenchServer, wait_stream_count

_EVENT_ID = "0193f1c2-7a4b-7c3d-9e8f-0a1b2c3d4e5f"
_KEY = "sha256:" + "7" * 64
SYNC_ALWAYS = os.environ.get("BENCH_SYNC", "always") == "always"
_TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


# -- in-process ---------------------------------------------------------------


def _published(role: str) -> DecisionRecord:
    return DecisionRecord(
        decision=AuditDecision.PUBLISHED,
        role=role,
        worker_id="bench-1",
        stream="GITSTORE_TASKS",
        stream_seq=42,
        attempt=1,
        event_id=_EVENT_ID,
        idempotency_key=_KEY,
        task_id="7" * 32,
        kind="markdown.compile",
        refs={
            "validation_seq": "9",
            "output_digest": _KEY,
            "fuel": "661704",
            "wall_time_us": "1744",
            "peak_memory_bytes": "1179648",
        },
        at="2026-11-29T08:00:00.000Z",
    )


def _task_with_telemetry(observer: TelemetryObserver, receive: ReceiveBatch) -> None:
    """The telemetry calls the pipeline makes for one successful task (see pipeline/_task)."""
    headers = {"Nats-Msg-Id": _KEY, "traceparent": _TRACEPARENT}
    subject = "gitstore.tasks.markdown.compile." + "7" * 64
    receive.received(headers)
    INSTRUMENTS.in_flight.add(MARKDOWN_COMPILER)
    with process_span(
        subject=subject,
        headers=headers,
        durable=MARKDOWN_COMPILER,
        stream_seq=42,
        attempt=1,
        size=1500,
    ) as span:
        annotate(role=MARKDOWN_COMPILER, event_id=_EVENT_ID, idempotency_key=_KEY, kind="m.c")
        with observer.stage("sandbox", subject):
            record_run("ok", fuel=661704, wall_time_us=1744, peak_memory_bytes=1179648)
        record = _published(MARKDOWN_COMPILER)
        with send_span(["gitstore.validation.markdown.compile." + "7" * 64], [_KEY]):
            inject({})
        observer.decided(record)
        audit = audit_record(record)
        assert audit is not None
        encode_record(audit)
        record_outcome(span, settle="ack", code="ok")
        INSTRUMENTS.settled.add(MARKDOWN_COMPILER, "ack", "ok")
    INSTRUMENTS.in_flight.add(MARKDOWN_COMPILER, amount=-1)


def _task_before(observer: LogObserver) -> None:
    """Without spans and metrics: the task's one log line."""
    observer.decided(_published(MARKDOWN_COMPILER))


def in_process(tasks: int, *, batch_exporter: bool) -> dict[str, float]:
    """Per-task microseconds with telemetry and with a log line only.

    The two loops run in alternating rounds of 200 tasks (other load hits them
    alike) and the fastest round of each counts.
    """
    sink = io.StringIO()
    configure_logging(json=True)
    structlog.configure(logger_factory=structlog.WriteLoggerFactory(file=sink))
    setup_telemetry()
    if batch_exporter:
        _add_batch_exporter()
        use_light_spans(False)
    observer = TelemetryObserver()
    receive = ReceiveBatch("GITSTORE_TASKS", MARKDOWN_COMPILER)
    before = LogObserver()
    best = {"with_us": float("inf"), "before_us": float("inf")}
    per_round = 200
    for _ in range(max(tasks // per_round, 1)):
        for name, run in (
            ("with_us", lambda: _task_with_telemetry(observer, receive)),
            ("before_us", lambda: _task_before(before)),
        ):
            receive.requested()
            start = time.perf_counter()
            for _ in range(per_round):
                run()
            elapsed = (time.perf_counter() - start) / per_round * 1e6
            best[name] = min(best[name], elapsed)
            sink.seek(0)
            sink.truncate()
    receive.done()
    return {**best, "added_us": best["with_us"] - best["before_us"]}


def _add_batch_exporter() -> None:
    class _Drop(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    provider.add_span_processor(BatchSpanProcessor(_Drop()))


# -- end to end ---------------------------------------------------------------

_MODES = ("telemetry", "logs-only")
"""Everything on; no spans and no metrics (the audit trail is written either way)."""


def _event(number: int, tag: str) -> GitEvent:
    content = (
        "---\napiVersion: catalog.gitstore.dev/v1beta1\nkind: Product\n"
        f"metadata:\n  name: product-{number}\n  namespace: bench\n"
        f"spec:\n  title: Product {number}\n  price: {{amount: '19.90', currency: EUR}}\n"
        f"---\n# Product {number}\n\nA product used to measure telemetry overhead.\n"
    )
    blob = Blob(
        path=f"products/product-{number}.md",
        blob_oid=git_blob_oid(content.encode()),
        content=content,
    )
    return GitEvent(
        event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench-{tag}-{number}")),
        repository_id="0193f1c2-0000-7000-8000-00000000c0de",
        ref_name="refs/heads/main",
        old_commit_sha="0" * 40,
        new_commit_sha=f"{number:040x}",
        changed_paths=[blob.path],
        actor_subject="user:bench@example.com",
        blobs=[blob],
        occurred_at="2026-11-29T08:00:00Z",
    )


async def _child(url: str, events: int, mode: str) -> dict[str, float]:
    tag = uuid.uuid4().hex[:8]
    config = load_config(
        env={},
        overrides={
            "nats": {"url": url},
            "topology": {
                "prefix": f"b{tag}",
                **{
                    f"{name}_stream": f"B{tag}_{name.upper()}"
                    for name in ("events", "tasks", "validation", "failures", "advisories", "audit")
                },
            },
            "health": {"port": None},
            "roles": {PLANNER: {}, MARKDOWN_COMPILER: {"follow_ups": []}},
        },
    )
    configure_logging(json=True, level="WARNING")
    observer: Observer | None = None  # the default: everything on
    if mode == "logs-only":
        observer = LogObserver()
    runtime = Runtime(config, [PLANNER, MARKDOWN_COMPILER], observer=observer)
    stop = asyncio.Event()
    await runtime.start(stop)
    js = runtime.js
    await provision(js, config, (PLANNER, MARKDOWN_COMPILER), upload_modules=False)
    topology = config.topology
    futures = [
        await js.publish_async(
            topology.subjects.git_push(e.repository_id),
            msgspec.json.encode(e),
            headers={"Nats-Msg-Id": e.event_id, "traceparent": _TRACEPARENT},
        )
        for e in (_event(i, tag) for i in range(events))
    ]
    await asyncio.gather(*futures)
    start = time.perf_counter()
    serving = asyncio.create_task(runtime.run(stop))
    await wait_stream_count(js, topology.validation_stream, events, timeout_s=600)
    elapsed = time.perf_counter() - start
    audit_count = (await js.stream_info(topology.audit_stream)).state.messages
    stop.set()
    await serving
    await runtime.close()
    return {"seconds": elapsed, "per_task_ms": elapsed / events * 1000, "audit": audit_count}


def end_to_end(events: int, repeats: int) -> dict[str, list[dict[str, float]]]:
    """Run both configurations in fresh processes, alternating."""
    results: dict[str, list[dict[str, float]]] = {name: [] for name in _MODES}
    with BenchServer(sync_always=SYNC_ALWAYS) as bench:
        for _ in range(repeats):
            for name in _MODES:
                env = {**os.environ}
                if name == "logs-only":
                    env["OTEL_SDK_DISABLED"] = "true"
                with tempfile.TemporaryFile() as err:
                    out = subprocess.run(
                        [
                            sys.executable,
                            "-m",
                            "bench.telemetry_overhead",
                            "--child",
                            name,
                            "--url",
                            bench.url,
                            "--events",
                            str(events),
                        ],
                        env=env,
                        stdout=subprocess.PIPE,
                        stderr=err,
                        check=False,
                    )
                    if out.returncode:
                        err.seek(0)
                        raise SystemExit(err.read().decode(errors="replace")[-3000:])
                results[name].append(json.loads(out.stdout))
    return results


def main(argv: list[str] | None = None) -> int:
    """Entry point: print both measurements."""
    parser = argparse.ArgumentParser(prog="python -m bench.telemetry_overhead")
    parser.add_argument("--tasks", type=int, default=20_000, help="in-process loop size")
    parser.add_argument("--events", type=int, default=1_000, help="end-to-end backlog")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-end-to-end", action="store_true")
    parser.add_argument("--child", choices=list(_MODES), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        result = asyncio.run(_child(args.url, args.events, args.child))
        print(json.dumps(result))
        return 0

    plain = in_process(args.tasks, batch_exporter=False)
    print(
        f"in-process, per task: {plain['with_us']:.1f} us with telemetry (light spans), "
        f"{plain['before_us']:.1f} us with the log line only: +{plain['added_us']:.1f} us"
    )
    exported = in_process(args.tasks, batch_exporter=True)
    print(
        f"in-process, per task, real spans to a batch exporter: {exported['with_us']:.1f} us "
        f"(+{exported['added_us']:.1f} us over the log line only)"
    )
    if args.skip_end_to_end:
        return 0
    runs = end_to_end(args.events, args.repeats)
    # The fastest run of each: other load on the machine only ever slows a run down.
    with_ms = min(r["per_task_ms"] for r in runs["telemetry"])
    logs_ms = min(r["per_task_ms"] for r in runs["logs-only"])
    audit = runs["telemetry"][0]["audit"]
    print(
        f"end to end ({args.events} events, planner + markdown-compiler, one process, "
        f"sync_interval {'always' if SYNC_ALWAYS else 'periodic'}, best of {args.repeats}): "
        f"{with_ms:.3f} ms/task with telemetry ({audit} audit messages), "
        f"{logs_ms:.3f} ms/task with logs only: +{with_ms - logs_ms:.3f} ms/task "
        f"({(with_ms / logs_ms - 1) * 100:+.1f}%)"
    )
    print(json.dumps(runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
