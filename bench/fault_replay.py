"""Fault run: the whole events stream replayed through a new planner durable, twice.

N git events run through a worker until every durable is drained. Then an
operator replays history the way ``docs/operations.md`` describes, with the
``nats`` CLI (here: the same JetStream API calls)::

    nats consumer rm GITSTORE_EVENTS planner -f
    nats consumer add GITSTORE_EVENTS planner --pull --ack explicit \\
      --filter 'gitstore.events.git.push.>' --deliver all --replay instant --defaults

with the worker stopped meanwhile (SIGTERM, drained) and started again. The
new durable delivers every event once more; the planner re-derives the same
tasks with the same keys and finds each task's slot taken: nothing new is
stored or run. Replay 1 runs right away; replay 2 after the (short)
duplicate window, when nothing but the slots can stop them. Prints the
fault-suite counts; must end with ``lost: 0, duplicated: 0``.

    python -m bench.fault_replay                       # 2,000 events
    python -m bench.fault_replay --events 200 --modules test
"""

from __future__ import annotations

import asyncio
import sys
from typing import Unpack

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, ReplayPolicy

from gitstore_agents.config import PLANNER, Config
from gitstore_agents.consumers import role_consumer

from ._faults import (
    FaultOptions,
    FaultReport,
    fault_parser,
    fault_run,
    run_main,
    single_server,
    stream_count,
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


async def run_replay(**options: Unpack[FaultOptions]) -> FaultReport:
    """Run, replay twice, count what it left behind."""
    async with fault_run(single_server, short_window=True, **options) as run:
        await run.publish()
        run.start_worker()
        await run.wait_drained()
        for replay in range(1, REPLAYS + 1):
            if replay == REPLAYS:
                # Waiting out the window is the scenario: the re-planned
                # tasks then meet the slots alone.
                await asyncio.sleep(run.config.topology.duplicate_window_s + 1.0)
            run.stop_worker()
            await replace_planner_durable(run.js, run.config)
            run.start_worker()
            await run.wait_drained()
            tasks = await stream_count(run.js, run.config.topology.tasks_stream)
            run.disrupted(
                f"  replay {replay}: every event delivered again through a new "
                f"planner durable; tasks stream holds {tasks}"
            )
        return await run.report(
            "events stream replayed through a new durable (deliver all), "
            "at once and after the duplicate window"
        )


def main(argv: list[str] | None = None) -> int:
    """Command line entry: run, print the counts, exit 0 only on exactly-once."""
    args = fault_parser(__doc__).parse_args(argv)
    header = f"fault run: {args.events} events, events stream replayed {REPLAYS}x"
    return run_main(header, run_replay(**vars(args), progress=True))


if __name__ == "__main__":
    sys.exit(main())
