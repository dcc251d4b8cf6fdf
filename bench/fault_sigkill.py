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

import asyncio
import random
import sys
from typing import Unpack

from ._faults import FaultOptions, FaultReport, fault_parser, fault_run, run_main, single_server

__all__ = ["FaultReport", "run_fault"]


async def run_fault(
    *, kills: int = 5, seed: int | None = None, **options: Unpack[FaultOptions]
) -> FaultReport:
    """Run the fault scenario and count what it left behind."""
    rng = random.Random(seed)
    async with fault_run(single_server, **options) as run:
        await run.publish()
        run.start_worker()
        # Kill when the stored results reach random fractions of the total.
        async for number, stored in run.moments(rng.uniform(0.05, 0.9) for _ in range(kills)):
            await asyncio.sleep(rng.uniform(0, 0.05))
            run.kill_worker()
            run.disrupted(f"  SIGKILL #{number} at {stored}/{run.expected} results")
            run.start_worker()
        await run.wait_drained()
        return await run.report("worker SIGKILLed at random moments")


def main(argv: list[str] | None = None) -> int:
    """Command line entry: run, print the counts, exit 0 only on exactly-once."""
    parser = fault_parser(__doc__, seed=True)
    parser.add_argument("--kills", type=int, default=5)
    args = parser.parse_args(argv)
    header = f"fault run: {args.events} events, {args.kills} SIGKILLs"
    return run_main(header, run_fault(**vars(args), progress=True))


if __name__ == "__main__":
    sys.exit(main())
