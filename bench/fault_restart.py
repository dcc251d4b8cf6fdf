"""Fault run: nats-server (file storage) restarted while a worker is busy.

Starts a bundled nats-server with ``sync_interval: always``, provisions the
topology, publishes N git events, runs a real ``gitstore-agents worker`` with
every role, and restarts the server R times, each time when the stored
validation results reach a random fraction of the total. Restarts alternate
between a crash (SIGKILL: no shutdown notice, pull requests silently gone) and
a clean stop (SIGTERM: ``409`` to open pull requests), the server stays down
for a moment, then comes back on the same port with the same store. The
worker is never restarted: it must reconnect, re-send its pull requests and
settle everything. When every durable is drained it prints the fault-suite
counts and ends with ``lost: 0, duplicated: 0``.

    python -m bench.fault_restart                       # 2,000 events, 4 restarts
    python -m bench.fault_restart --events 200 --restarts 2 --modules test
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import tempfile
import time
from pathlib import Path

from gitstore_agents.consumers import provision
from gitstore_agents.embedded import NatsServer

from ._faults import (
    FaultReport,
    connect_harness,
    count,
    fault_config,
    module_refs,
    print_report,
    publish_events,
    quiet_logs,
    start_worker,
    stop_worker,
    tasks_per_event,
    wait_count,
    wait_drained,
    write_config,
)


async def run_restarts(
    *,
    events: int = 2000,
    restarts: int = 4,
    down_s: float = 1.0,
    modules: str = "auto",
    concurrency: int = 4,
    seed: int | None = None,
    workdir: Path | None = None,
    timeout_s: float = 900.0,
    progress: bool = False,
) -> FaultReport:
    """Run the scenario and count what it left behind."""
    rng = random.Random(seed)
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        folder = workdir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        server = stack.enter_context(NatsServer(folder / "nats"))
        refs, module_kind = module_refs(modules, folder / "modules")
        config = fault_config(server.url, refs, concurrency=concurrency)
        config_file = write_config(config, folder / "gitstore.yaml")
        expected = events * tasks_per_event(config)
        log = folder / "worker.log"
        nc = await connect_harness(server.url)
        try:
            js = nc.jetstream()
            await provision(js, config)
            published = await publish_events(js, config, range(events))
            targets = sorted(rng.uniform(0.05, 0.85) * expected for _ in range(restarts))
            worker = start_worker(config_file, log)
            try:
                for number, target in enumerate(targets, start=1):
                    stored = await wait_count(js, config.topology.validation_stream, target)
                    crash = number % 2 == 1
                    (server.kill if crash else server.stop)()
                    await asyncio.sleep(down_s)  # the outage itself, not synchronization
                    server.start()
                    if progress:
                        how = "SIGKILL" if crash else "SIGTERM"
                        print(
                            f"  restart #{number} ({how}, down {down_s:g}s) "
                            f"at {stored}/{expected} results",
                            flush=True,
                        )
                    if worker.poll() is not None:
                        raise RuntimeError(f"worker exited with {worker.returncode}; see {log}")
                await wait_drained(
                    js,
                    config,
                    expected=expected,
                    worker=lambda: worker,
                    timeout_s=timeout_s,
                    log=log,
                )
            finally:
                stop_worker(worker)
            return await count(
                js,
                config,
                scenario="nats-server restarted mid-run (file storage, fsync always)",
                events_published=published,
                expected=expected,
                log=log,
                disruptions=len(targets),
                modules=module_kind,
                started=started,
            )
        finally:
            await nc.close()


def main(argv: list[str] | None = None) -> int:
    """Command line entry: run, print the counts, exit 0 only on exactly-once."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--restarts", type=int, default=4)
    parser.add_argument("--down-s", type=float, default=1.0, help="how long the server is down")
    parser.add_argument("--modules", choices=("auto", "reference", "test"), default="auto")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    quiet_logs()
    print(f"fault run: {args.events} events, {args.restarts} nats-server restarts", flush=True)
    report = asyncio.run(
        run_restarts(
            events=args.events,
            restarts=args.restarts,
            down_s=args.down_s,
            modules=args.modules,
            concurrency=args.concurrency,
            seed=args.seed,
            progress=True,
        )
    )
    return print_report(report)


if __name__ == "__main__":
    sys.exit(main())
