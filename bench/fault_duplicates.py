"""Fault run: every git event published three times, and three times again after the window.

The topology uses a short duplicate window (``SHORT_WINDOW_S``, with role
timings tight enough for the configuration rule ``duplicate_window_s >=
ack_wait_s + max(backoff_s) + deadline + publish_timeout_s``). Phase 1
publishes every event three times back to back with the same
``Nats-Msg-Id`` (JetStream stores one copy) while a worker runs. When every
durable is drained the harness waits out the window, then phase 2 publishes
every event three times again: one more copy of each is stored, the planner
re-plans it, its compile task is stored again (its first copy is older than
the window too), and the ledger (``succeeded``) turns every such delivery
into a skip. Prints the fault-suite counts; must end with
``lost: 0, duplicated: 0``.

    python -m bench.fault_duplicates                   # 2,000 events
    python -m bench.fault_duplicates --events 200 --modules test
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from pathlib import Path

from gitstore_agents.consumers import provision
from gitstore_agents.embedded import NatsServer

from ._faults import (
    SHORT_WINDOW_S,
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
    wait_drained,
    write_config,
)

COPIES = 3


async def run_duplicates(
    *,
    events: int = 2000,
    modules: str = "auto",
    concurrency: int = 4,
    workdir: Path | None = None,
    timeout_s: float = 900.0,
    progress: bool = False,
) -> FaultReport:
    """Run both phases and count what they left behind."""
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        folder = workdir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        server = stack.enter_context(NatsServer(folder / "nats"))
        refs, module_kind = module_refs(modules, folder / "modules")
        config = fault_config(server.url, refs, concurrency=concurrency, short_window=True)
        config_file = write_config(config, folder / "gitstore.yaml")
        expected = events * tasks_per_event(config)
        log = folder / "worker.log"
        nc = await connect_harness(server.url)
        try:
            js = nc.jetstream()
            await provision(js, config)
            worker = start_worker(config_file, log)
            try:
                published = await publish_events(js, config, range(events), copies=COPIES)
                await wait_drained(
                    js,
                    config,
                    expected=expected,
                    worker=lambda: worker,
                    timeout_s=timeout_s,
                    log=log,
                )
                if progress:
                    print(f"  phase 1: {published} publishes drained", flush=True)
                # Every message this run published is now older than the window...
                window = config.topology.duplicate_window_s
                await asyncio.sleep(window + 1.0)  # waiting out the window is the scenario
                # ...so these copies are stored again, and only the ledger stops them.
                published += await publish_events(js, config, range(events), copies=COPIES)
                await wait_drained(
                    js,
                    config,
                    expected=expected,
                    worker=lambda: worker,
                    timeout_s=timeout_s,
                    log=log,
                )
                if progress:
                    print(
                        f"  phase 2: after the {window:g}s window, {COPIES} more copies of "
                        "every event drained",
                        flush=True,
                    )
            finally:
                stop_worker(worker)
            return await count(
                js,
                config,
                scenario=(
                    f"every event published {COPIES}x, and {COPIES}x again after the "
                    f"{SHORT_WINDOW_S:g}s duplicate window"
                ),
                events_published=published,
                expected=expected,
                log=log,
                disruptions=0,
                modules=module_kind,
                started=started,
            )
        finally:
            await nc.close()


def main(argv: list[str] | None = None) -> int:
    """Command line entry: run, print the counts, exit 0 only on exactly-once."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--modules", choices=("auto", "reference", "test"), default="auto")
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args(argv)
    quiet_logs()
    print(f"fault run: {args.events} events, each published {COPIES}x twice", flush=True)
    report = asyncio.run(
        run_duplicates(
            events=args.events,
            modules=args.modules,
            concurrency=args.concurrency,
            progress=True,
        )
    )
    return print_report(report)


if __name__ == "__main__":
    sys.exit(main())
