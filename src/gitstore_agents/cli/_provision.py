"""``gitstore-agents provision``: create or update the whole topology (idempotent).

The audit stream is the exception: ``provision`` creates it when it is missing
and otherwise leaves it alone, failing at the end (after everything else is
provisioned) when it differs from the configuration. ``provision
--audit-stream``, run with the ``audit-admin`` identity, creates or updates it
and touches nothing else.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from ..config import ROLES
from ..consumers import (
    audit_stream_differs,
    audit_stream_drift,
    provision,
    provision_audit_stream,
)
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
            "durable consumers keep their deliver policy and start position. The audit "
            "stream is only created: when it differs from the configuration the command ends "
            "with audit-stream-differs after provisioning everything else; apply the change "
            "with --audit-stream as the audit-admin identity."
        ),
    )
    parser.add_argument(
        "--role", action="append", choices=ROLES, help="roles to provision (default: all)"
    )
    parser.add_argument(
        "--no-modules", action="store_true", help="do not upload the reference modules"
    )
    parser.add_argument(
        "--audit-stream",
        action="store_true",
        help="only create or update the audit stream (run as the audit-admin identity)",
    )
    add_connection_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``provision``."""
    configure_logging(json=False, level=args.log_level)
    config = connection_config(args)
    roles = tuple(args.role or [r for r in ROLES if r in config.roles])
    topology = config.topology

    async def go() -> int:
        async with connected(config, "provision") as nc:
            js = nc.jetstream(timeout=config.nats.request_timeout_s)
            if args.audit_stream:
                await provision_audit_stream(js, topology, update=True)
                print(json.dumps({"streams": [topology.audit_stream]}, indent=2))
                return 0
            modules = await provision(js, config, roles, upload_modules=not args.no_modules)
            differences = await audit_stream_drift(js, topology)
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
        if differences:
            raise audit_stream_differs(topology, differences)
        return 0

    return asyncio.run(go())
