"""``gitstore-agents dev``: run everything on a bundled nats-server."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from ..config import load_config
from ..embedded import run_dev
from ..telemetry import configure_logging


def register(commands: Any) -> None:
    """Add the ``dev`` command."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "dev",
        help="run nats-server and every role locally (Ctrl-C to stop)",
        description=(
            "Start a bundled nats-server with JetStream, provision streams and consumers, "
            "and run every role. With --demo, publish the sample git event, print the "
            "validation requests the configured modules produce for it (and its follow-ups' "
            "outcomes), and exit; after a module changes, run it again to see the new results."
        ),
    )
    parser.add_argument(
        "--demo", action="store_true", help="publish one event, print results, exit"
    )
    parser.add_argument(
        "--event",
        type=Path,
        default=None,
        help="git event JSON for --demo (default: the sample push shipped in the package)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".gitstore-dev"),
        help="folder for JetStream data and the server config (default: %(default)s)",
    )
    parser.add_argument("--port", type=int, default=-1, help="client port (default: a free one)")
    parser.add_argument("--timeout", type=float, default=30.0, help="--demo wait, seconds")
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="YAML configuration (default: $GITSTORE_CONFIG or built-in defaults); "
        "the NATS URL is always the bundled server's",
    )
    parser.add_argument("--log-level", default="WARNING", help="log level (default: %(default)s)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``dev``."""
    configure_logging(json=False, level=args.log_level)
    if args.event is not None and not args.demo:
        print("gitstore-agents dev: error: --event is the event --demo publishes", file=sys.stderr)
        return 2
    if args.event is not None and not args.event.is_file():
        print(f"gitstore-agents dev: error: --event {args.event} is not a file", file=sys.stderr)
        return 2
    # A configuration that cannot be read fails here, before a nats-server is
    # started that nothing would stop.
    load_config(args.config)
    return asyncio.run(
        run_dev(
            args.data_dir,
            demo=args.demo,
            demo_event=args.event,
            port=args.port,
            timeout_s=args.timeout,
            config_path=args.config,
        )
    )
