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

import asyncio
import random
import sys
from typing import Unpack

from ._faults import FaultOptions, FaultReport, fault_parser, fault_run, run_main, single_server


async def run_restarts(
    *,
    restarts: int = 4,
    down_s: float = 1.0,
    seed: int | None = None,
    **options: Unpack[FaultOptions],
) -> FaultReport:
    """Run the scenario and count what it left behind."""
    rng = random.Random(seed)
    async with fault_run(single_server, **options) as run:
        server = run.servers
        await run.publish()
        run.start_worker()
        async for number, stored in run.moments(rng.uniform(0.05, 0.85) for _ in range(restarts)):
            crash = number % 2 == 1
            (server.kill if crash else server.stop)()
            await asyncio.sleep(down_s)  # the outage itself, not synchronization
            server.start()
            how = "SIGKILL" if crash else "SIGTERM"
            run.disrupted(
                f"  restart #{number} ({how}, down {down_s:g}s) at {stored}/{run.expected} results"
            )
        await run.wait_drained()
        return await run.report("nats-server restarted mid-run (file storage, fsync always)")


def main(argv: list[str] | None = None) -> int:
    """Command line entry: run, print the counts, exit 0 only on exactly-once."""
    parser = fault_parser(__doc__, seed=True)
    parser.add_argument("--restarts", type=int, default=4)
    parser.add_argument("--down-s", type=float, default=1.0, help="how long the server is down")
    args = parser.parse_args(argv)
    header = f"fault run: {args.events} events, {args.restarts} nats-server restarts"
    return run_main(header, run_restarts(**vars(args), progress=True))


if __name__ == "__main__":
    sys.exit(main())
