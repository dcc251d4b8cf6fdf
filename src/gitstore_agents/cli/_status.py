"""``gitstore-agents status event ID`` / ``status key KEY`` / ``status ping``: the status API."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from ..ops import ask_status, ping_status
from ..service import status_subject
from ..telemetry import configure_logging
from ._config_args import add_connection_arguments, connected, connection_config


def register(commands: Any) -> None:
    """Add the ``status`` command group."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "status",
        help="ask the workers' status micro service about a git event or a task",
        description=(
            "Ask the status API every worker serves (NATS micro service gitstore-agents-status "
            "on <prefix>.status.event and <prefix>.status.key). Prints its JSON answer."
        ),
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    event = actions.add_parser("event", help="status of a git event: its tasks and trace id")
    event.add_argument("event_id", help="the git event's event_id")
    key = actions.add_parser("key", help="status of one task by idempotency key")
    key.add_argument("idempotency_key", help="sha256:<hex> idempotency key")
    key.add_argument(
        "--event-id", default=None, help="the task's event (default: read from the task's slot)"
    )
    probe = actions.add_parser("ping", help="exit 0 when a status service instance answers")
    for action in (event, key, probe):
        add_connection_arguments(action, waits_for_answers=True)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``status``."""
    configure_logging(json=False, level=args.log_level)
    config = connection_config(args)
    prefix = config.topology.prefix

    async def go() -> int:
        async with connected(config, "status") as nc:
            if args.action == "ping":
                info = await ping_status(nc, prefix, timeout_s=args.timeout)
                if info is None:
                    print(f"no status service for prefix {prefix!r} answered in {args.timeout:g}s")
                    return 1
                print(
                    f"status service {info.get('name')} {info.get('version')} answered "
                    f"(id {info.get('id')}, worker {info.get('metadata', {}).get('worker_id')})"
                )
                return 0
            if args.action == "event":
                subject, body = status_subject(prefix, "event"), {"event_id": args.event_id}
            else:
                subject = status_subject(prefix, "key")
                body = {"idempotency_key": args.idempotency_key}
                if args.event_id:
                    body["event_id"] = args.event_id
            reply = await ask_status(nc, subject, body, timeout_s=args.timeout)
        answer = json.loads(reply.data)
        sys.stdout.write(json.dumps(answer, indent=2, sort_keys=True) + "\n")
        return 0 if answer.get("found") else 1

    return asyncio.run(go())
