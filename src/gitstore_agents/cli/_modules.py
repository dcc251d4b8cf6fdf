"""``gitstore-agents modules push|list``: the object-store module registry.

They connect like every runtime command (``--config``, ``GITSTORE_NATS_*``:
credentials and the identity's inbox prefix), so an operator runs them as the
provisioner identity the chart and ``policy nats-config`` generate.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ..sandbox import ModuleStore, Sandbox, provision_module_store
from ..telemetry import configure_logging
from ._config_args import add_connection_arguments, connected, connection_config
from ._files import read_input


def register(commands: Any) -> None:
    """Add the ``modules`` command group."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "modules", help="WASI modules in the object store, by sha256 digest"
    )
    group = parser.add_subparsers(dest="modules_command", required=True, metavar="SUBCOMMAND")
    push = group.add_parser(
        "push", help="check FILE.wasm links in the sandbox, upload it, print its digest"
    )
    push.add_argument("file", type=Path, help="the .wasm file")
    push.set_defaults(run=run_push)
    listing = group.add_parser("list", help="print digest, size and description of each module")
    listing.set_defaults(run=run_list)
    for command in (push, listing):
        add_connection_arguments(command, waits_for_answers=True)
        command.add_argument(
            "--bucket",
            default=None,
            help="object store bucket (default: the configuration's topology.modules_bucket)",
        )


def run_push(args: argparse.Namespace) -> int:
    """Execute ``modules push``."""
    wasm = read_input(args.file, "module")
    # Refuse what no worker could run (not wasm, not a command, unknown imports).
    sandbox = Sandbox()
    try:
        sandbox.compile(wasm)
    finally:
        sandbox.close()

    async def push(store: ModuleStore) -> None:
        print(await store.push(wasm, description=args.file.name))

    return _with_store(args, push)


def run_list(args: argparse.Namespace) -> int:
    """Execute ``modules list``."""

    async def listing(store: ModuleStore) -> None:
        for module in await store.list():
            print(f"{module.digest}  {module.size:>9}  {module.description}")

    return _with_store(args, listing)


def _with_store(args: argparse.Namespace, action: Callable[[ModuleStore], Awaitable[None]]) -> int:
    configure_logging(json=False, level=args.log_level)
    config = connection_config(args)

    async def go() -> int:
        async with connected(config, "modules") as nc:
            topology = config.topology
            store = await provision_module_store(
                nc.jetstream(timeout=args.timeout),
                args.bucket or topology.modules_bucket,
                replicas=topology.replicas,
            )
            await action(store)
        return 0

    return asyncio.run(go())
