"""``gitstore-agents modules push|list``: the object-store module registry."""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path
from typing import Any

import nats

from ..sandbox import MODULES_BUCKET, Sandbox, provision_module_store


def register(commands: Any) -> None:
    """Add the ``modules`` command group."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "modules", help="WASI modules in the object store, by sha256 digest"
    )
    connection = argparse.ArgumentParser(add_help=False)
    connection.add_argument(
        "--nats-url",
        default=os.environ.get("NATS_URL", "nats://127.0.0.1:4222"),
        help="NATS server URL (default: $NATS_URL or %(default)s)",
    )
    connection.add_argument(
        "--bucket", default=MODULES_BUCKET, help="object store bucket (default: %(default)s)"
    )
    group = parser.add_subparsers(dest="modules_command", required=True, metavar="SUBCOMMAND")
    push = group.add_parser(
        "push",
        parents=[connection],
        help="check FILE.wasm links in the sandbox, upload it, print its digest",
    )
    push.add_argument("file", type=Path, help="the .wasm file")
    push.set_defaults(run=run_push)
    listing = group.add_parser(
        "list", parents=[connection], help="print digest, size and description of each module"
    )
    listing.set_defaults(run=run_list)


def run_push(args: argparse.Namespace) -> int:
    """Execute ``modules push``."""
    wasm = args.file.read_bytes()
    # Refuse what no worker could run (not wasm, not a command, unknown imports).
    sandbox = Sandbox()
    try:
        sandbox.compile(wasm)
    finally:
        sandbox.close()

    async def push() -> str:
        nc = await nats.connect(args.nats_url, name="gitstore-agents-modules")
        try:
            store = await provision_module_store(nc.jetstream(), args.bucket)
            return await store.push(wasm, description=args.file.name)
        finally:
            await nc.close()

    print(asyncio.run(push()))
    return 0


def run_list(args: argparse.Namespace) -> int:
    """Execute ``modules list``."""

    async def listing() -> None:
        nc = await nats.connect(args.nats_url, name="gitstore-agents-modules")
        try:
            store = await provision_module_store(nc.jetstream(), args.bucket)
            for module in await store.list():
                print(f"{module.digest}  {module.size:>9}  {module.description}")
        finally:
            await nc.close()

    asyncio.run(listing())
    return 0
