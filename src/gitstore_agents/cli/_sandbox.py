"""``gitstore-agents sandbox run``: run one module once, print a JSON result.

A module may write megabytes (up to the 4 MiB stdout cap): the result shows
stdout and stderr in full only while they are small, and otherwise a preview
(the start of stdout, the end of stderr: where a result and last words are)
with the byte count, so a flood stays a few KiB on the terminal. ``--full``
prints everything.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import msgspec

from ..pipeline import judge
from ..sandbox import (
    ModuleError,
    RunResult,
    Sandbox,
    SandboxLimits,
    logical_time_ns,
    module_digest,
    refusal_report,
    run_report,
)
from ._files import read_input

_DEFAULTS = SandboxLimits()
SHOWN_BYTES = 16 * 1024
"""stdout or stderr up to this size is shown in full."""
PREVIEW_BYTES = 2 * 1024
"""Above ``SHOWN_BYTES``, how much of it is shown."""


def register(commands: Any) -> None:
    """Add the ``sandbox`` command group."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "sandbox", help="run WASI task modules locally"
    )
    group = parser.add_subparsers(dest="sandbox_command", required=True, metavar="SUBCOMMAND")
    run_parser = group.add_parser(
        "run",
        help="run MODULE.wasm once with --input on stdin; print a JSON result",
        description=(
            "Run a WASI command module under the worker's limits and print the outcome, "
            "output and resource usage as JSON. Exits 0 when the outcome is ok, 1 otherwise."
        ),
    )
    run_parser.add_argument("module", type=Path, help="the .wasm file")
    run_parser.add_argument(
        "--input", required=True, help="file whose bytes are the module's stdin ('-': stdin)"
    )
    run_parser.add_argument("--fuel", type=int, default=_DEFAULTS.fuel, help="%(default)s")
    run_parser.add_argument(
        "--timeout-ms", type=int, default=_DEFAULTS.timeout_ms, help="%(default)s"
    )
    run_parser.add_argument(
        "--memory-mb", type=int, default=_DEFAULTS.memory_bytes >> 20, help="%(default)s"
    )
    run_parser.add_argument(
        "--logical-time",
        default="1970-01-01T00:00:00Z",
        help="what the module's clock reads, ISO 8601 (default: %(default)s)",
    )
    run_parser.add_argument("--seed", type=int, default=0, help="random_get seed (default: 0)")
    run_parser.add_argument("--digest", help="refuse the module unless it has this sha256 digest")
    run_parser.add_argument(
        "--full",
        action="store_true",
        help=f"show stdout and stderr however large (default: a {PREVIEW_BYTES}-byte preview "
        f"of either when it is over {SHOWN_BYTES} bytes)",
    )
    run_parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``sandbox run``."""
    wasm = read_input(args.module, "module")
    stdin = sys.stdin.buffer.read() if args.input == "-" else read_input(Path(args.input), "input")
    limits = SandboxLimits(
        fuel=args.fuel, timeout_ms=args.timeout_ms, memory_bytes=args.memory_mb << 20
    )
    clock = logical_time_ns(args.logical_time)
    sandbox = Sandbox()
    try:
        try:
            module = sandbox.compile(wasm, args.digest)
        except ModuleError as exc:
            report = refusal_report(exc.outcome, exc.message, module_digest(wasm))
            ok = False
        else:
            result = sandbox.run(module, stdin, limits, logical_time_ns=clock, seed=args.seed)
            report = run_report(result, module.digest)
            if not args.full:
                _bound(report, result)
            # What a worker would make of it: the same judgement, word for word.
            execution = judge(result)
            report["outcome"] = execution.code
            report["detail"] = execution.message
            report["deterministic"] = not execution.retryable
            report["output_digest"] = execution.output_digest
            ok = execution.ok
    finally:
        sandbox.close()
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(report), indent=2).decode() + "\n")
    return 0 if ok else 1


def _bound(report: dict[str, Any], result: RunResult) -> None:
    """Replace a large stdout (or parsed output) and stderr by previews and byte counts."""
    report["stdout_bytes"] = len(result.stdout)
    report["stderr_bytes"] = len(result.stderr)
    if len(result.stdout) > SHOWN_BYTES:
        report["output"] = None  # output_digest still identifies it
        report.pop("stdout", None)
        report["stdout_preview"] = _text(result.stdout[:PREVIEW_BYTES])
        report["stdout_truncated"] = True
    if len(result.stderr) > SHOWN_BYTES:
        report.pop("stderr", None)
        report["stderr_preview"] = _text(result.stderr[-PREVIEW_BYTES:])
        report["stderr_truncated"] = True


def _text(data: bytes) -> str:
    # Control bytes become \uXXXX escapes in JSON (six bytes each): show them
    # as U+FFFD so a preview of binary noise stays about its byte size.
    text = data.decode("utf-8", errors="replace")
    return "".join(c if c.isprintable() or c in "\n\t" else "\ufffd" for c in text)
