"""Fault run: every git event published three times, and three times again after the window.

The topology uses a short duplicate window (``SHORT_WINDOW_S``). Phase 1
publishes every event three times back to back with the same
``Nats-Msg-Id`` (JetStream stores one copy) while a worker runs. When every
durable is drained the harness waits out the window, then phase 2 publishes
every event three times again: one more copy of each is stored (the window
is over), the planner re-plans it, and every task it derives finds its slot
in the tasks stream taken: nothing more is stored or run. Prints the
fault-suite counts; must end with ``lost: 0, duplicated: 0``.

    python -m bench.fault_duplicates                   # 2,000 events
    python -m bench.fault_duplicates --events 200 --modules test
"""

from __future__ import annotations

import asyncio
import sys
from typing import Unpack

from ._faults import (
    SHORT_WINDOW_S,
    FaultOptions,
    FaultReport,
    fault_parser,
    fault_run,
    run_main,
    single_server,
)

COPIES = 3


async def run_duplicates(**options: Unpack[FaultOptions]) -> FaultReport:
    """Run both phases and count what they left behind."""
    async with fault_run(single_server, short_window=True, **options) as run:
        run.start_worker()
        published = await run.publish(copies=COPIES)
        await run.wait_drained()
        run.say(f"  phase 1: {published} publishes drained")
        # Every message this run published is now older than the window...
        window = run.config.topology.duplicate_window_s
        await asyncio.sleep(window + 1.0)  # waiting out the window is the scenario
        # ...so these copies are stored again, and only the slots stop their tasks.
        await run.publish(copies=COPIES)
        await run.wait_drained()
        run.say(
            f"  phase 2: after the {window:g}s window, {COPIES} more copies of every event drained"
        )
        return await run.report(
            f"every event published {COPIES}x, and {COPIES}x again after the "
            f"{SHORT_WINDOW_S:g}s duplicate window"
        )


def main(argv: list[str] | None = None) -> int:
    """Command line entry: run, print the counts, exit 0 only on exactly-once."""
    args = fault_parser(__doc__).parse_args(argv)
    header = f"fault run: {args.events} events, each published {COPIES}x twice"
    return run_main(header, run_duplicates(**vars(args), progress=True))


if __name__ == "__main__":
    sys.exit(main())
