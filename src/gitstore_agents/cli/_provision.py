"""``gitstore-agents provision``: create or update the whole topology (idempotent)."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from ..config import ROLES
from ..consumers import provision
from ..telemetry import configure_logging
from ._config_args import add_connection_arguments, connected, connection_config


def register(commands: Any) -> None:
    """Add the ``provision`` command."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "provision",
        help=(
            "create/update streams (migrating old results into slots), consumers and "
            "object stores; upload modules"
        ),
        description=(
            "Idempotent: safe to run on every deploy (the Helm hook job runs it). Existing "
            "durable consumers keep their deliver policy and start position."
        ),
    )
    parser.add_argument(
        "--role", action="append", choices=ROLES, help="roles to provision (default: all)"
    )
    parser.add_argument(
        "--no-modules", action="store_true", help="do not upload the reference modules"
    )
    add_connection_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``provision``."""
    configure_logging(json=False, level=args.log_level)
    config = connection_config(args)
    roles = tuple(args.role or [r for r in ROLES if r in config.roles])

    async def go() -> int:
        async with connected(config, "provision") as nc:
            js = nc.jetstream(timeout=config.nats.request_timeout_s)
            modules = await provision(js, config, roles, upload_modules=not args.no_modules)
        topology = config.topology
        print(
            json.dumps(
                {
                    "streams": [c.name for c in topology.stream_configs()],
                    "object_stores": [topology.modules_bucket, topology.content_bucket],
                    "roles": list(roles),
                    "modules": modules,
                },
                indent=2,
            )
        )
        return 0

    return asyncio.run(go())
