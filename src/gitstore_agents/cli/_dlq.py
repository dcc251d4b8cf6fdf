"""``gitstore-agents dlq list`` / ``dlq requeue ID``: dead letters."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from typing import Any

import msgspec

from ..ops import DeadLetterEntry, list_dead_letters, requeue_dead_letter
from ..telemetry import configure_logging
from ._config_args import add_connection_arguments, connected, connection_config


def register(commands: Any) -> None:
    """Add the ``dlq`` command group."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "dlq", help="list and requeue dead letters (messages whose deliveries ran out)"
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="show every dead letter and its requeues")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    add_connection_arguments(listing)
    requeue = actions.add_parser("requeue", help="republish a dead letter's original message")
    requeue.add_argument("id", help="dead letter id, e.g. GITSTORE_TASKS-42")
    requeue.add_argument("--by", default=None, help="who requeues (default: the OS user)")
    add_connection_arguments(requeue)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``dlq``."""
    configure_logging(json=False, level=args.log_level)
    config = connection_config(args)

    async def go() -> int:
        async with connected(config, "dlq") as nc:
            js = nc.jetstream(timeout=config.nats.request_timeout_s)
            if args.action == "list":
                _print_entries(await list_dead_letters(js, config.topology), as_json=args.json)
                return 0
            record = await requeue_dead_letter(js, config.topology, args.id, by=args.by or _user())
        print(
            f"requeued {record.id}: {record.subject} -> {record.stream} seq {record.stream_seq} "
            f"(Nats-Msg-Id {record.msg_id})"
        )
        return 0

    return asyncio.run(go())


def _print_entries(entries: list[DeadLetterEntry], *, as_json: bool) -> None:
    if as_json:
        for entry in entries:
            sys.stdout.write(json.dumps(msgspec.to_builtins(entry), sort_keys=True) + "\n")
        return
    if not entries:
        print("no dead letters")
        return
    print(f"{'ID':<28} {'KIND':<18} {'NAME':<34} {'ATTEMPTS':>8}  {'QUARANTINED AT':<24} STATUS")
    for entry in entries:
        letter = entry.letter
        status = (
            f"requeued {len(entry.requeues)}x (last {entry.requeues[-1].requeued_at})"
            if entry.requeues
            else "quarantined"
        )
        print(
            f"{letter.id:<28} {letter.kind:<18} {letter.name:<34} {letter.attempts:>8}  "
            f"{letter.quarantined_at:<24} {status}"
        )
        print(f"    last error: {letter.last_error}")


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"
