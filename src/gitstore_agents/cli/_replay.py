"""``gitstore-agents replay``: re-execute a stream's history, or verify it reproduces."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

import msgspec

from ..guardrails import OPERATOR
from ..ops import replay_stream
from ..service import Runtime
from ..telemetry import configure_logging
from ._config_args import add_connection_arguments, connection_config


def register(commands: Any) -> None:
    """Add the ``replay`` command."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "replay",
        help="re-execute history from a stream sequence; --verify checks determinism",
        description=(
            "Reads STREAM from --from-seq through an ephemeral ordered consumer. Without "
            "--verify each message goes through its role's handler (results already stored "
            "keep unchanged work from producing duplicates). With --verify nothing is "
            "published: every task is re-run in-process and its output digest compared with "
            "the result stored in its slot; any difference is reported and the exit code is 1."
        ),
    )
    parser.add_argument("--stream", required=True, help="EVENTS, TASKS, or a full stream name")
    parser.add_argument("--from-seq", type=int, required=True, help="first stream sequence")
    parser.add_argument("--to-seq", type=int, default=None, help="last stream sequence")
    parser.add_argument("--verify", action="store_true", help="compare, publish nothing")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    add_connection_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``replay``."""
    configure_logging(json=False, level=args.log_level)
    config = connection_config(args)
    # A replay is a tool run, not a worker: no health server.
    config = msgspec.structs.replace(
        config, health=msgspec.structs.replace(config.health, port=None)
    )

    async def go() -> int:
        # Its audit records go under the operator's name: the trail says who
        # re-executed the history (each record still names the role it decided as).
        runtime = Runtime(config, audit_as=OPERATOR)
        try:
            # A tool run fails at once where a worker would wait and retry.
            await runtime.start(retry=False, tool=True)
            report = await replay_stream(
                runtime, args.stream, args.from_seq, to_seq=args.to_seq, verify=args.verify
            )
        finally:
            await runtime.close()
        if args.json:
            print(json.dumps(msgspec.to_builtins(report), indent=2, sort_keys=True))
        else:
            for m in report.mismatches:
                print(
                    f"MISMATCH {m.idempotency_key} kind={m.kind} path={m.path} "
                    f"stored={m.stored_state}:{m.stored_digest} "
                    f"replay={m.replay_code}:{m.replay_digest}"
                )
            for error in report.errors:
                print(f"ERROR {error}")
            summary = {k: v for k, v in msgspec.to_builtins(report).items() if k != "mismatches"}
            summary["mismatches"] = len(report.mismatches)
            print(json.dumps(summary, sort_keys=True))
        return 1 if report.mismatches else 0

    return asyncio.run(go())
