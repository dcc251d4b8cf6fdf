"""Fault run: git events through a worker that is SIGKILLed at random moments.

Starts a bundled nats-server, provisions the topology, publishes N git events
(one product file each), then runs a real ``gitstore-agents worker`` process
with every role and kills it with SIGKILL K times, each time when the number of
stored validation results reaches a random fraction of the total, restarting
it at once (as Kubernetes would). When every consumer is drained it prints:

* events in, tasks expected (compile + enrich + one per extension, per file),
* validation results stored, distinct task keys among them, duplicates, missing,
* diagnostics and dead letters, messages left unacknowledged or pending,
* redeliveries, kills, wall time.

Exit code 0 only with exactly one validation result per task and nothing unacked.

    python -m bench.fault_sigkill                      # 2,000 events, 5 kills
    python -m bench.fault_sigkill --events 200 --kills 2 --modules test
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

from nats.js import JetStreamContext

from gitstore_agents.config import Config
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
    stream_count,
    tasks_per_event,
    wait_drained,
    write_config,
)

__all__ = ["FaultReport", "fault_config", "run_fault"]


async def run_fault(
    *,
    events: int = 2000,
    kills: int = 5,
    modules: str = "auto",
    concurrency: int = 4,
    seed: int | None = None,
    workdir: Path | None = None,
    timeout_s: float = 900.0,
    progress: bool = False,
) -> FaultReport:
    """Run the fault scenario and count what it left behind."""
    rng = random.Random(seed)
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        folder = workdir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        server = stack.enter_context(NatsServer(folder / "nats"))
        refs, module_kind = module_refs(modules, folder / "modules")
        config = fault_config(server.url, refs, concurrency=concurrency)
        config_file = write_config(config, folder / "gitstore.yaml")
        expected = events * tasks_per_event(config)

        nc = await connect_harness(server.url)
        try:
            js = nc.jetstream()
            await provision(js, config)
            published = await publish_events(js, config, range(events))
            # Kill when the stored results reach random fractions of the total.
            targets = sorted(rng.uniform(0.05, 0.9) * expected for _ in range(kills))
            log = folder / "worker.log"
            done_kills = await _drive(
                js,
                config,
                config_file=config_file,
                log=log,
                targets=targets,
                expected=expected,
                rng=rng,
                timeout_s=timeout_s,
                progress=progress,
            )
            return await count(
                js,
                config,
                scenario="worker SIGKILLed at random moments",
                events_published=published,
                expected=expected,
                log=log,
                disruptions=done_kills,
                modules=module_kind,
                started=started,
            )
        finally:
            await nc.close()


async def _drive(
    js: JetStreamContext,
    config: Config,
    *,
    config_file: Path,
    log: Path,
    targets: list[float],
    expected: int,
    rng: random.Random,
    timeout_s: float,
    progress: bool,
) -> int:
    """Run the worker, SIGKILL and restart it at each target, wait until all is settled."""
    validation = config.topology.validation_stream
    worker = start_worker(config_file, log)
    kills = 0
    try:
        for target in targets:
            while (stored := await stream_count(js, validation)) < target:
                if worker.poll() is not None:
                    raise RuntimeError(f"worker exited with {worker.returncode}; see {log}")
                await asyncio.sleep(0.05)
            await asyncio.sleep(rng.uniform(0, 0.05))
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            kills += 1
            if progress:
                print(f"  SIGKILL #{kills} at {stored}/{expected} results", flush=True)
            worker = start_worker(config_file, log)
        await wait_drained(
            js, config, expected=expected, worker=lambda: worker, timeout_s=timeout_s, log=log
        )
    finally:
        stop_worker(worker)
    return kills


def main(argv: list[str] | None = None) -> int:
    """Command line entry: run, print the counts, exit 0 only on exactly-once."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument(
        "--modules",
        choices=("auto", "reference", "test"),
        default="auto",
        help="reference modules, echo stand-ins, or reference when built (default)",
    )
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    quiet_logs()
    print(f"fault run: {args.events} events, {args.kills} SIGKILLs", flush=True)
    report = asyncio.run(
        run_fault(
            events=args.events,
            kills=args.kills,
            modules=args.modules,
            concurrency=args.concurrency,
            seed=args.seed,
            progress=True,
        )
    )
    return print_report(report)


if __name__ == "__main__":
    sys.exit(main())
