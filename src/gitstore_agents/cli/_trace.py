"""``gitstore-agents trace EVENT_ID [--json]``: a git event's whole story from the audit stream."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

import msgspec

from ..telemetry import build_story, configure_logging, read_event_trail, render_story
from ._config_args import add_connection_arguments, connected, connection_config


def register(commands: Any) -> None:
    """Add the ``trace`` command."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "trace",
        help="print what happened to a git event (from its audit records)",
        description=(
            "Read <prefix>.audit.*.<event_id> from the audit stream and print the event's story "
            "as a tree: event -> tasks -> attempts -> every decision, with the validation "
            "message or the failure (stage, code, message, stderr) of each task. Exit 1 when "
            "nothing is recorded about the event."
        ),
    )
    parser.add_argument("event_id", help="the git event's event_id")
    parser.add_argument("--json", action="store_true", help="the story as one JSON document")
    add_connection_arguments(parser, waits_for_answers=True)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``trace``."""
    configure_logging(json=False, level=args.log_level)
    config = connection_config(args)
    topology = config.topology
    topology.subjects.audit_of_event(args.event_id)  # a bad id fails here, before connecting

    async def go() -> int:
        async with connected(config, "trace") as nc:
            entries = await read_event_trail(nc, topology, args.event_id, timeout_s=args.timeout)
        story = build_story(args.event_id, entries)
        if args.json:
            sys.stdout.write(json.dumps(msgspec.to_builtins(story), indent=2) + "\n")
        else:
            sys.stdout.write(render_story(story))
        return 0 if story.records else 1

    return asyncio.run(go())
