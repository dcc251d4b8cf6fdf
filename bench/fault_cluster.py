"""Fault run: a 3-node JetStream cluster (R3 streams), one node killed and restarted mid-run.

Starts three clustered ``nats-server`` processes on loopback ports
(``bench/_cluster.py``: routes between all three, JetStream and its own store
in each, ``sync_interval: always``), provisions the topology with
``topology.replicas: 3`` (every stream, the ledger KV bucket and the object
stores are R3), publishes N git events, and runs a real ``gitstore-agents
worker`` connected to all three nodes. K times, when the stored validation
results reach a random fraction of the total, the node leading the tasks
stream is SIGKILLed, stays down for a moment, and is restarted with its store:
the worker's connection (if it was on that node) fails over, stream and
consumer leaders move, the node catches up when it is back. When every durable
is drained it prints the fault-suite counts and ends with
``lost: 0, duplicated: 0``.

    python -m bench.fault_cluster                      # 2,000 events, 2 node kills
    python -m bench.fault_cluster --events 200 --kills 1 --modules test
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

from nats.js import JetStreamContext

from gitstore_agents.consumers import provision

from ._cluster import NatsCluster
from ._faults import (
    TRANSIENT,
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


async def leader_of(js: JetStreamContext, stream: str) -> str:
    """``server_name`` of the node leading ``stream`` (retried during elections)."""
    while True:
        with contextlib.suppress(*TRANSIENT):
            info = await js.stream_info(stream)
            if info.cluster is not None and info.cluster.leader:
                return info.cluster.leader
        await asyncio.sleep(0.1)


async def run_cluster(
    *,
    events: int = 2000,
    kills: int = 2,
    down_s: float = 3.0,
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
        cluster = stack.enter_context(NatsCluster(folder / "cluster"))
        await cluster.wait_jetstream()
        refs, module_kind = module_refs(modules, folder / "modules")
        # A stream leader's crash leaves the stream without a leader for about
        # 5 s (nats-server 2.15): the retry delays must outlast an election,
        # as the product's defaults (1, 5, 30 s) do.
        config = fault_config(
            cluster.url, refs, concurrency=concurrency, replicas=3, backoff_s=[1.0, 5.0, 10.0]
        )
        config_file = write_config(config, folder / "gitstore.yaml")
        expected = events * tasks_per_event(config)
        log = folder / "worker.log"
        nc = await connect_harness(cluster.url)
        try:
            js = nc.jetstream(timeout=5)
            await provision(js, config)
            published = await publish_events(js, config, range(events))
            targets = sorted(rng.uniform(0.05, 0.8) * expected for _ in range(kills))
            worker = start_worker(config_file, log)
            try:
                for target in targets:
                    stored = await wait_count(js, config.topology.validation_stream, target)
                    name = await leader_of(js, config.topology.tasks_stream)
                    node = cluster.node(name)
                    # A crash: no shutdown notice to clients or peers.
                    node.kill()
                    await asyncio.sleep(down_s)  # the outage itself, not synchronization
                    node.start()
                    if progress:
                        print(
                            f"  node {name} (leader of {config.topology.tasks_stream}) "
                            f"SIGKILLed at {stored}/{expected} results, back after {down_s:g}s",
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
                scenario="3-node cluster, R3 streams, stream leader SIGKILLed and restarted",
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
    parser.add_argument("--kills", type=int, default=2)
    parser.add_argument("--down-s", type=float, default=3.0, help="how long a node is down")
    parser.add_argument("--modules", choices=("auto", "reference", "test"), default="auto")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    quiet_logs()
    print(f"fault run: {args.events} events, 3-node cluster, {args.kills} node kills", flush=True)
    report = asyncio.run(
        run_cluster(
            events=args.events,
            kills=args.kills,
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
