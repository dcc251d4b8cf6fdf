"""Rows 1 and 2: the same job in raw nats-py and in FastStream."""

from __future__ import annotations

import json

from nats.js.api import AckPolicy, ConsumerConfig

from ._harness import (
    BenchServer,
    CpuMeter,
    RowResult,
    WorkerProcess,
    connect,
    latencies_ms,
    percentile,
    publish_all,
    publish_paced,
    python_module,
    recreate_stream,
    stored_times,
    throughput,
    wait_stream_count,
)
from ._job import DURABLE, IN_STREAM, IN_SUBJECTS, OUT_STREAM, OUT_SUBJECTS

BASELINES = {
    "raw nats-py": "bench.workers.raw",
    "FastStream": "bench.workers.faststream_worker",
}


def _payload(i: int, size: int) -> bytes:
    body = {"id": i, "content": "x" * max(0, size - 40)}
    return json.dumps(body, separators=(",", ":")).encode()


async def run_baseline(
    name: str,
    bench: BenchServer,
    *,
    messages: int,
    rate: float,
    latency_messages: int,
    payload_bytes: int,
) -> RowResult:
    """Measure one baseline worker: backlog throughput, then latency at a fixed offered load."""
    url = bench.url
    nc = await connect(url)
    js = nc.jetstream(publish_async_max_pending=4000)
    try:
        await recreate_stream(js, IN_STREAM, [IN_SUBJECTS])
        await recreate_stream(js, OUT_STREAM, [OUT_SUBJECTS])
        await js.add_consumer(
            IN_STREAM,
            ConsumerConfig(
                durable_name=DURABLE,
                ack_policy=AckPolicy.EXPLICIT,
                max_ack_pending=10_000,
                ack_wait=30,
            ),
        )
        backlog = [(f"bench.in.{i}", _payload(i, payload_bytes), f"t-{i}") for i in range(messages)]
        await publish_all(js, backlog)
        worker = WorkerProcess(python_module(BASELINES[name], "--nats-url", url))
        meter = CpuMeter(bench, [worker])
        meter.start()
        try:
            await wait_stream_count(js, OUT_STREAM, messages, timeout_s=600)
            cpu = meter.stop(messages)
            drained = await stored_times(js, OUT_STREAM)
            paced = [
                (f"bench.in.l{i}", _payload(i, payload_bytes), f"l-{i}")
                for i in range(latency_messages)
            ]
            await publish_paced(js, paced, rate)
            await wait_stream_count(js, OUT_STREAM, messages + latency_messages, timeout_s=600)
            inputs = await stored_times(js, IN_STREAM)
            outputs = await stored_times(js, OUT_STREAM)
            rss = worker.peak_rss_mb()
        finally:
            tail = worker.stop()
        latency = latencies_ms(
            {k: v for k, v in inputs.items() if k.startswith("l-")},
            {k: v for k, v in outputs.items() if k.startswith("l-")},
        )
        notes = [cpu]
        if len(latency) != latency_messages:
            notes.append(f"latency samples: {len(latency)}")
        if tail and worker.proc.returncode not in (0, -15):
            notes.append(f"worker exit {worker.proc.returncode}: {tail[-200:]}")
        return RowResult(
            name=name,
            msgs_per_s=throughput([drained[k] for k in drained if k.startswith("t-")]),
            p50_ms=percentile(latency, 50),
            p99_ms=percentile(latency, 99),
            peak_rss_mb=rss,
            notes=notes,
            worker_us=meter.worker_us,
            server_us=meter.server_us,
        )
    finally:
        await nc.close()
