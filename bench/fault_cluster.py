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

import asyncio
import contextlib
import random
import sys
from pathlib import Path
from typing import Unpack

from nats.js import JetStreamContext

from ._cluster import NatsCluster
from ._faults import TRANSIENT, FaultOptions, FaultReport, fault_parser, fault_run, run_main


async def leader_of(js: JetStreamContext, stream: str) -> str:
    """``server_name`` of the node leading ``stream`` (retried during elections)."""
    while True:
        with contextlib.suppress(*TRANSIENT):
            info = await js.stream_info(stream)
            if info.cluster is not None and info.cluster.leader:
                return info.cluster.leader
        await asyncio.sleep(0.1)


def three_nodes(folder: Path) -> NatsCluster:
    """The 3-node cluster, its nodes' stores under ``folder``."""
    return NatsCluster(folder / "cluster")


async def run_cluster(
    *,
    kills: int = 2,
    down_s: float = 3.0,
    seed: int | None = None,
    **options: Unpack[FaultOptions],
) -> FaultReport:
    """Run the scenario and count what it left behind."""
    rng = random.Random(seed)
    # A stream leader's crash leaves the stream without a leader for about
    # 5 s (nats-server 2.15): the retry delays must outlast an election, as
    # the product's defaults (1, 5, 30 s) do.
    async with fault_run(three_nodes, replicas=3, backoff_s=[1.0, 5.0, 10.0], **options) as run:
        tasks_stream = run.config.topology.tasks_stream
        await run.publish()
        run.start_worker()
        async for _, stored in run.moments(rng.uniform(0.05, 0.8) for _ in range(kills)):
            name = await leader_of(run.js, tasks_stream)
            node = run.servers.node(name)
            # A crash: no shutdown notice to clients or peers.
            node.kill()
            await asyncio.sleep(down_s)  # the outage itself, not synchronization
            node.start()
            run.disrupted(
                f"  node {name} (leader of {tasks_stream}) "
                f"SIGKILLed at {stored}/{run.expected} results, back after {down_s:g}s"
            )
        await run.wait_drained()
        return await run.report("3-node cluster, R3 streams, stream leader SIGKILLed and restarted")


def main(argv: list[str] | None = None) -> int:
    """Command line entry: run, print the counts, exit 0 only on exactly-once."""
    parser = fault_parser(__doc__, seed=True)
    parser.add_argument("--kills", type=int, default=2)
    parser.add_argument("--down-s", type=float, default=3.0, help="how long a node is down")
    args = parser.parse_args(argv)
    header = f"fault run: {args.events} events, 3-node cluster, {args.kills} node kills"
    return run_main(header, run_cluster(**vars(args), progress=True))


if __name__ == "__main__":
    sys.exit(main())
