"""Argument parsing and dispatch; each command lives in its own module.

Every failure ends the same way, here: one line on stderr,
``gitstore-agents: error: <code>: <what failed and what to do>``, and an exit
code: 2 when the command line cannot be parsed (argparse), 1 when the command
ran and failed (an unreachable server, a missing file, an invalid policy, a
bug), 130 when interrupted. Tracebacks only with ``--debug``.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

from .. import __version__
from ..errors import GitStoreAgentsError
from . import (
    _dev,
    _dlq,
    _history,
    _modules,
    _policy,
    _provision,
    _publish,
    _replay,
    _rewind,
    _sandbox,
    _schema,
    _status,
    _tasks,
    _trace,
    _worker,
)

PROG = "gitstore-agents"
EXIT_FAILED = 1
"""The command ran and failed."""
EXIT_INTERRUPTED = 130
"""Ctrl-C (SIGINT), as a shell reports it: 128 + 2."""


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (one sub-command per module)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="GitStore's worker runtime: git events to validated catalog proposals.",
        epilog="Exit codes: 0 done, 1 failed (one line on stderr says why), 2 bad command "
        "line, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="print the traceback of a failure (before COMMAND)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _dev.register(commands)
    _worker.register(commands)
    _provision.register(commands)
    _publish.register(commands)
    _rewind.register(commands)
    _dlq.register(commands)
    _replay.register(commands)
    _history.register(commands)
    _modules.register(commands)
    _sandbox.register(commands)
    _tasks.register(commands)
    _schema.register(commands)
    _policy.register(commands)
    _trace.register(commands)
    _status.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 on a bad command line
    debug: bool = args.debug
    try:
        code: int = args.run(args)
    except KeyboardInterrupt:
        _error("interrupted", debug=debug)
        return EXIT_INTERRUPTED
    except GitStoreAgentsError as exc:
        # Raised on purpose: the message names what failed and what to do.
        _error(str(exc), debug=debug)
        return EXIT_FAILED
    except Exception as exc:
        # A bug, or a failure nobody anticipated: still one line, with what
        # it was, and where to look for more.
        hint = "" if debug else " (run with --debug for the traceback)"
        _error(f"{type(exc).__name__}: {_one_line(str(exc))}{hint}", debug=debug)
        return EXIT_FAILED
    return code


def _error(message: str, *, debug: bool) -> None:
    if debug:
        traceback.print_exc(file=sys.stderr)
    print(f"{PROG}: error: {message}", file=sys.stderr)


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "(no message)"
