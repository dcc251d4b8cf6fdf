"""RSS soak: 100k tasks through one worker process, resident memory sampled over time.

Publishes task requests straight to the tasks stream (by default
``markdown.compile`` tasks on varied product files, run by the reference
module; ``--kind noop`` uses the no-op module of row 3), keeping a bounded
backlog ahead of one ``gitstore-agents worker`` process, and samples the
worker's RSS every ``--sample-s`` seconds. Prints the RSS at each tenth of the
run and the growth from the end of the warm-up (the first tenth: module cache,
sandbox pool and connection buffers filled) to the end; the target is under
10%. Exit code 0 only when every task produced its result and the growth is
under the target.

    python -m bench.soak                          # 100,000 markdown.compile tasks
    python -m bench.soak --tasks 20000 --kind noop
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from nats.js import JetStreamContext

from gitstore_agents.config import CATALOG_ENRICH, ENRICHER, MARKDOWN_COMPILE, MARKDOWN_COMPILER
from gitstore_agents.envelopes import Subjects, canonical_json, slot_token
from gitstore_agents.pipeline import plan_tasks
from gitstore_agents.sandbox import module_digest, reference_module_path
from gitstore_agents.telemetry import configure_logging

from ._harness import BenchServer, WorkerProcess, connect, publish_all, wait_stream_count
from ._ours import (
    OurSettings,
    Workers,
    bench_config,
    noop_roles,
    noop_task,
    noop_wasm,
    reset_topology,
)
from ._products import product_event

TARGET_GROWTH = 0.10
# Tasks published ahead of the worker: enough to keep it busy, few enough to
# keep the stream (and this process) small.
_AHEAD = 4000
_CHUNK = 1000


@dataclass
class SoakResult:
    """RSS samples of one soak run."""

    tasks: int
    kind: str
    seconds: float = 0.0
    results: int = 0
    # (tasks done, RSS MiB) per sample.
    samples: list[tuple[int, float]] = field(default_factory=list)

    def rss_at(self, fraction: float) -> float:
        """RSS of the first sample at or past ``fraction`` of the tasks."""
        for done, rss in self.samples:
            if done >= fraction * self.tasks:
                return rss
        return self.samples[-1][1] if self.samples else float("nan")

    @property
    def warm_rss(self) -> float:
        """RSS when the first tenth of the tasks is done."""
        return self.rss_at(0.1)

    @property
    def final_rss(self) -> float:
        """RSS of the last sample."""
        return self.samples[-1][1] if self.samples else float("nan")

    @property
    def growth(self) -> float:
        """Relative RSS growth from the warm-up to the end."""
        return (self.final_rss - self.warm_rss) / self.warm_rss

    @property
    def passed(self) -> bool:
        """Every task has its result and RSS grew less than the target."""
        return self.results >= self.tasks and self.growth < TARGET_GROWTH


Batch = Callable[[int, int, str, Subjects], list[tuple[str, bytes, str]]]


def _compile_batch(
    start: int, count: int, digest: str, subjects: Subjects
) -> list[tuple[str, bytes, str]]:
    out = []
    for number in range(start, start + count):
        event = product_event(number, run="soak")
        for derived in plan_tasks(event, event.event_id, {MARKDOWN_COMPILE: digest}):
            task = derived.task
            subject = subjects.task(task.kind, slot_token(task.idempotency_key))
            out.append((subject, derived.payload, task.idempotency_key))
    return out


def _noop_batch(
    start: int, count: int, digest: str, subjects: Subjects
) -> list[tuple[str, bytes, str]]:
    tasks = (noop_task(n, digest, run="soak") for n in range(start, start + count))
    return [
        (
            subjects.task(CATALOG_ENRICH, slot_token(t.idempotency_key)),
            canonical_json(t),
            t.idempotency_key,
        )
        for t in tasks
    ]


async def run_soak(
    *,
    tasks: int = 100_000,
    kind: str = "compile",
    sample_s: float = 2.0,
    fsync_always: bool = True,
    progress: bool = False,
) -> SoakResult:
    """Run ``tasks`` tasks through one worker and sample its RSS."""
    result = SoakResult(tasks=tasks, kind=kind)
    with BenchServer(sync_always=fsync_always) as bench, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        settings = OurSettings()
        make: Batch
        if kind == "noop":
            wasm = folder / "noop.wasm"
            wasm.write_bytes(noop_wasm())
            digest = module_digest(wasm.read_bytes())
            config = bench_config(bench.url, noop_roles(wasm, settings))
            role, make = ENRICHER, _noop_batch
        else:
            digest = module_digest(reference_module_path("markdown-compile").read_bytes())
            config = bench_config(bench.url, {})
            role, make = MARKDOWN_COMPILER, _compile_batch
        nc = await connect(bench.url)
        js = nc.jetstream(publish_async_max_pending=4000)
        validation = config.topology.validation_stream
        workers = Workers(config, folder, [role], 1, settings=settings, label="soak")
        try:
            await reset_topology(js, config)
            await workers.start()
            proc = workers.procs[0]
            started = time.monotonic()

            async def publish(first: int, count: int) -> None:
                await publish_all(js, make(first, count, digest, config.topology.subjects))

            await _drive(
                js,
                validation,
                proc=proc,
                result=result,
                publish=publish,
                sample_s=sample_s,
                progress=progress,
            )
            await wait_stream_count(js, validation, tasks, timeout_s=60)
            result.samples.append((tasks, proc.rss_mb()))
            result.seconds = round(time.monotonic() - started, 1)
            result.results = (await js.stream_info(validation)).state.messages
        finally:
            workers.stop()
            with contextlib.suppress(Exception):
                await nc.close()
    return result


async def _drive(
    js: JetStreamContext,
    validation: str,
    *,
    proc: WorkerProcess,
    result: SoakResult,
    publish: Callable[[int, int], Awaitable[None]],
    sample_s: float,
    progress: bool,
) -> None:
    """Keep a bounded backlog ahead of the worker and sample its RSS until all is done."""
    published = done = 0
    next_sample = 0.0
    while done < result.tasks:
        done = (await js.stream_info(validation)).state.messages
        if published < result.tasks and published - done < _AHEAD:
            count = min(_CHUNK, result.tasks - published)
            await publish(published, count)
            published += count
        now = time.monotonic()
        if now >= next_sample:
            result.samples.append((done, proc.rss_mb()))
            next_sample = now + sample_s
            if progress and len(result.samples) % 15 == 1:
                print(f"  {done:>7,} tasks  RSS {result.samples[-1][1]:6.1f} MiB", flush=True)
        if proc.proc.poll() is not None:
            raise RuntimeError(f"worker exited: {proc.stop()}")
        await asyncio.sleep(0.05)


def report(result: SoakResult) -> str:
    """RSS at each tenth of the run and the verdict."""
    lines = [f"{'tasks done':>12} {'RSS MiB':>9}"]
    for tenth in range(11):
        fraction = tenth / 10
        done = min(result.tasks, int(fraction * result.tasks))
        lines.append(f"{done:>12,} {result.rss_at(fraction):>9.1f}")
    lines.append(
        f"{result.results:,} results for {result.tasks:,} {result.kind} tasks in {result.seconds}s "
        f"({result.tasks / result.seconds:,.0f} tasks/s)"
        if result.seconds
        else ""
    )
    lines.append(
        f"RSS after warm-up (10%): {result.warm_rss:.1f} MiB, "
        f"at the end: {result.final_rss:.1f} MiB, growth {result.growth:+.1%} "
        f"(target < {TARGET_GROWTH:.0%}): " + ("met" if result.passed else "NOT met")
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line entry."""
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--kind", choices=("compile", "noop"), default="compile")
    parser.add_argument("--sample-s", type=float, default=2.0)
    parser.add_argument("--fsync", choices=("always", "periodic"), default="always")
    args = parser.parse_args(argv)
    configure_logging(json=False, level="WARNING")
    print(f"RSS soak: {args.tasks:,} {args.kind} tasks through one worker, fsync={args.fsync}")
    result = asyncio.run(
        run_soak(
            tasks=args.tasks,
            kind=args.kind,
            sample_s=args.sample_s,
            fsync_always=args.fsync == "always",
            progress=True,
        )
    )
    print(report(result))
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
