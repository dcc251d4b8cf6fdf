"""``gitstore-agents schema export DIR``: the envelopes' JSON Schemas for the Go side."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..envelopes import export_schemas, stale_schemas


def register(commands: Any) -> None:
    """Add the ``schema`` command group."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "schema", help="JSON Schemas of the envelopes (for the Go control plane)"
    )
    actions = parser.add_subparsers(dest="schema_command", required=True, metavar="ACTION")
    export = actions.add_parser(
        "export",
        help="write one JSON Schema per envelope into DIR",
        description=(
            "Write <Envelope>.json (JSON Schema draft 2020-12) for every envelope and "
            "payload into DIR. With --check, write nothing and exit 1 if DIR is stale."
        ),
    )
    export.add_argument("dir", type=Path, metavar="DIR", help="output folder (e.g. schemas)")
    export.add_argument(
        "--check", action="store_true", help="only compare DIR with the code; exit 1 on drift"
    )
    export.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``schema export``."""
    if args.check:
        stale = stale_schemas(args.dir)
        for name in stale:
            print(f"stale: {args.dir / name}")
        return 1 if stale else 0
    for path in export_schemas(args.dir):
        print(path)
    return 0
