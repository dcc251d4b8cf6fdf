"""Fault run: the whole events stream replayed through a new planner durable, twice.

N git events run through a worker until every durable is drained. Then an
operator replays history the way ``docs/operations.md`` describes, with the
``nats`` CLI (here: the same JetStream API calls)::

    nats consumer rm GITSTORE_EVENTS planner -f
    nats consumer add GITSTORE_EVENTS planner --pull --ack explicit \\
      --filter 'gitstore.events.git.push.>' --deliver all --replay instant --defaults

with the worker stopped meanwhile (SIGTERM, drained) and started again. The
new durable delivers every event once more; the planner re-derives the same
tasks with the same keys. Replay 1 runs right away; replay 2 after the
(short) duplicate window, when the re-planned tasks are stored again and only
the ledger can stop them. Prints the fault-suite counts; must end with
``lost: 0, duplicated: 0``.

    python -m bench.fault_replay                       # 2,000 events
    python -m bench.fault_replay --events 200 --modules test
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, ReplayPolicy

from gitstore_agents.config import PLANNER, Config
from gitstore_agents.consumers import provision, role_consumer
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
    wait_drained,
    write_config,
)

REPLAYS = 2


async def replace_planner_durable(js: JetStreamContext, config: Config) -> None:
    """``nats consumer rm`` + ``nats consumer add … --deliver all`` on the planner's durable.

    Only what an operator types: ack explicit, the same filter, deliver all,
    instant replay, defaults for the rest (the worker's provisioning then
    brings ack wait, backoff, max deliver and max ack pending in line and
    keeps the deliver policy).
    """
    spec = role_consumer(config, PLANNER)
    await js.delete_consumer(spec.stream, spec.durable)
    await js.add_consumer(
        spec.stream,
        ConsumerConfig(
            durable_name=spec.durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            replay_policy=ReplayPolicy.INSTANT,
            filter_subject=spec.filter_subject,
        ),
    )


async def run_replay(
    *,
    events: int = 2000,
    modules: str = "auto",
    concurrency: int = 4,
    workdir: Path | None = None,
    timeout_s: float = 900.0,
    progress: bool = False,
) -> FaultReport:
    """Run, replay twice, count what it left behind."""
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
            published = await publish_events(js, config, range(events))
            # The current worker process (the last one started).
            workers: list[subprocess.Popen[bytes]] = [start_worker(config_file, log)]
            try:
                await wait_drained(
                    js,
                    config,
                    expected=expected,
                    worker=lambda: workers[-1],
                    timeout_s=timeout_s,
                    log=log,
                )
                for replay in range(1, REPLAYS + 1):
                    if replay == REPLAYS:
                        # Waiting out the window is the scenario: the re-planned
                        # tasks are then stored again, and only the ledger stops them.
                        await asyncio.sleep(config.topology.duplicate_window_s + 1.0)
                    stop_worker(workers[-1])
                    await replace_planner_durable(js, config)
                    workers.append(start_worker(config_file, log))
                    await wait_drained(
                        js,
                        config,
                        expected=expected,
                        worker=lambda: workers[-1],
                        timeout_s=timeout_s,
                        log=log,
                    )
                    if progress:
                        tasks = (await js.stream_info(config.topology.tasks_stream)).state
                        print(
                            f"  replay {replay}: every event delivered again through a new "
                            f"planner durable; tasks stream holds {tasks.messages}",
                            flush=True,
                        )
            finally:
                stop_worker(workers[-1])
            return await count(
                js,
                config,
                scenario=(
                    "events stream replayed through a new durable (deliver all), "
                    "at once and after the duplicate window"
                ),
                events_published=published,
                expected=expected,
                log=log,
                disruptions=REPLAYS,
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
    print(f"fault run: {args.events} events, events stream replayed {REPLAYS}x", flush=True)
    report = asyncio.run(
        run_replay(
            events=args.events, modules=args.modules, concurrency=args.concurrency, progress=True
        )
    )
    return print_report(report)


if __name__ == "__main__":
    sys.exit(main())
