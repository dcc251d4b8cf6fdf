"""``gitstore-agents worker``: run roles against an existing NATS deployment."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from typing import Any

from ..consumers import ROLES, Runtime, Topology
from ..telemetry import configure_logging


def register(commands: Any) -> None:
    """Add the ``worker`` command."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "worker", help="run one or more roles against a NATS server"
    )
    parser.add_argument(
        "--role",
        action="append",
        choices=ROLES,
        help="role to run (repeatable; default: all)",
    )
    parser.add_argument(
        "--nats-url",
        default=os.environ.get("NATS_URL", "nats://127.0.0.1:4222"),
        help="NATS server URL (default: $NATS_URL or %(default)s)",
    )
    parser.add_argument("--log-level", default="INFO")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``worker``."""
    configure_logging(json=True, level=args.log_level)
    roles = tuple(args.role or ROLES)

    async def serve() -> int:
        runtime = Runtime(args.nats_url, Topology(), roles)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await runtime.start()
        try:
            await runtime.run(stop)
        finally:
            await runtime.close()
        return 0

    return asyncio.run(serve())
