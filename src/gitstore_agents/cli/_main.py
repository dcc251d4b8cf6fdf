"""Argument parsing and dispatch; each command lives in its own module."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import GitStoreAgentsError
from . import (
    _dev,
    _dlq,
    _modules,
    _policy,
    _provision,
    _replay,
    _sandbox,
    _schema,
    _status,
    _trace,
    _worker,
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (one sub-command per module)."""
    parser = argparse.ArgumentParser(
        prog="gitstore-agents",
        description="GitStore's worker runtime: git events to validated catalog proposals.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _dev.register(commands)
    _worker.register(commands)
    _provision.register(commands)
    _dlq.register(commands)
    _replay.register(commands)
    _modules.register(commands)
    _sandbox.register(commands)
    _schema.register(commands)
    _policy.register(commands)
    _trace.register(commands)
    _status.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except GitStoreAgentsError as exc:
        print(f"gitstore-agents: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code
