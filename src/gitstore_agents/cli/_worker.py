"""``gitstore-agents worker``: run roles against a NATS deployment until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

from ..config import ROLES
from ..service import Runtime, settle_heap
from ..telemetry import configure_logging
from ._config_args import add_connection_arguments, connection_config


def register(commands: Any) -> None:
    """Add the ``worker`` command."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "worker",
        help="run one or more roles against a NATS server",
        description=(
            "Run roles until SIGTERM/SIGINT, then drain: stop pulling, finish or nak in-flight "
            "work within drain_grace_s, exit 0. Health: /healthz and /readyz on health.port."
        ),
    )
    parser.add_argument(
        "--role",
        action="append",
        choices=ROLES,
        help="role to run (repeatable; default: every configured role)",
    )
    add_connection_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``worker``."""
    configure_logging(json=True, level=args.log_level)
    config = connection_config(args)
    return asyncio.run(serve(Runtime(config, args.role)))


async def serve(runtime: Runtime) -> int:
    """Start ``runtime``, serve until SIGTERM/SIGINT, drain, close; the exit code."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        try:
            await runtime.start(stop)
        except Exception:
            if stop.is_set():
                return 0  # asked to stop while still starting
            raise
        settle_heap()
        await runtime.run(stop)
    finally:
        await runtime.close()
    return 0
