"""``gitstore-agents tasks new``: scaffold a module project (docs/extensions.md)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..kit import LANGUAGES, scaffold


def register(commands: Any) -> None:
    """Add the ``tasks`` command group."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "tasks", help="module projects for extension authors"
    )
    group = parser.add_subparsers(dest="tasks_command", required=True, metavar="SUBCOMMAND")
    new = group.add_parser(
        "new",
        help="scaffold a module project: source, build script, fixtures, README",
        description=(
            "Creates DIR (default: ./NAME) with an extension named NAME in C or Zig, the "
            "helper library, a build script using the ziglang package, fixtures with their "
            "expected results and a README. Then: python build.py; gitstore-agents sandbox "
            "test DIR."
        ),
    )
    new.add_argument("name", help="extension name: lower-case letters, digits and '-'")
    new.add_argument("--lang", required=True, choices=LANGUAGES, help="C or Zig")
    new.add_argument("--dir", type=Path, default=None, help="where (default: ./NAME)")
    new.set_defaults(run=run_new)


def run_new(args: argparse.Namespace) -> int:
    """Execute ``tasks new``."""
    directory: Path = args.dir if args.dir is not None else Path(args.name)
    written = scaffold(args.name, args.lang, directory)
    print(f"created {directory} ({len(written)} files); next:")
    print(f"  cd {directory} && python build.py && gitstore-agents sandbox test .")
    return 0
