"""``gitstore-agents sandbox run`` and ``sandbox test``: modules checked as a worker checks them.

``sandbox run`` runs one module once and prints a JSON result; with
``--kind`` the input goes through everything a worker of that kind applies
(the kind's limits, admission, the policy's output check: ``kit.WorkerChecks``).
``sandbox test DIR`` runs a module project's fixtures the same way and
compares each result with the expected one.

A module may write megabytes (up to the 4 MiB stdout cap): the result shows
stdout and stderr in full only while they are small, and otherwise a preview
(the start of stdout, the end of stderr: where a result and last words are)
with the byte count, so a flood stays a few KiB on the terminal. ``--full``
prints everything.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import msgspec

from ..config import load_config
from ..consumers import ContentUnavailableError
from ..envelopes import Limits
from ..guardrails import Policy, load_policy
from ..kit import FixtureResult, WorkerChecks, find_fixtures, find_module, run_fixtures
from ..kit._fixtures import canonical_input, task_path
from ..pipeline import judge
from ..sandbox import (
    CompiledModule,
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
    limits_help = "(default: {}; with --kind: the kind's configured limits)"
    run_parser.add_argument(
        "--fuel", type=int, default=None, help=limits_help.format(_DEFAULTS.fuel)
    )
    run_parser.add_argument(
        "--timeout-ms", type=int, default=None, help=limits_help.format(_DEFAULTS.timeout_ms)
    )
    run_parser.add_argument(
        "--memory-mb", type=int, default=None, help=limits_help.format(_DEFAULTS.memory_bytes >> 20)
    )
    run_parser.add_argument(
        "--kind",
        default=None,
        help="run the input as a task of this kind, through every check a worker applies "
        "(limits, admission, the policy's output check), e.g. extension.run",
    )
    run_parser.add_argument(
        "--path",
        default=None,
        help="with --kind: the catalog file the task is about "
        "(default: the input's compiled.source.path or path)",
    )
    _policy_arguments(run_parser)
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

    test_parser = group.add_parser(
        "test",
        help="run a module project's fixtures through the worker's checks, diff the results",
        description=(
            "Runs every DIR/fixtures/<case>.input.json as a task of --kind through exactly "
            "what a worker applies (the kind's limits scaled to the input, admission, the "
            "run, canonical form, the policy's output check) and compares the result with "
            "<case>.output.json (ok) or <case>.rejected.json (exit 65, input-rejected). "
            "One line per fixture, then a summary; exits 1 when any fixture fails."
        ),
    )
    test_parser.add_argument("directory", type=Path, help="the module project")
    test_parser.add_argument(
        "--module", type=Path, default=None, help="the .wasm file (default: the one in DIR)"
    )
    test_parser.add_argument(
        "--kind", default="extension.run", help="task kind of the fixtures (default: %(default)s)"
    )
    test_parser.add_argument(
        "--update",
        action="store_true",
        help="write each fixture's expected result from its actual one (ok or input-rejected)",
    )
    _policy_arguments(test_parser)
    test_parser.set_defaults(run=run_test)


def _policy_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="worker configuration (default: $GITSTORE_CONFIG; built-in defaults without one)",
    )
    parser.add_argument(
        "--policy",
        type=Path,
        default=None,
        help="guardrail policy (default: the configuration's policy_file, else the built-in one)",
    )


def _checks(
    args: argparse.Namespace, kind: str, module: CompiledModule, sandbox: Sandbox
) -> WorkerChecks:
    policy: Policy | None = load_policy(args.policy) if args.policy is not None else None
    return WorkerChecks(load_config(args.config), kind, module, sandbox, policy=policy)


def run_test(args: argparse.Namespace) -> int:
    """Execute ``sandbox test``."""
    directory: Path = args.directory
    path = args.module if args.module is not None else find_module(directory)
    wasm = read_input(path, "module")
    fixtures = find_fixtures(directory)
    sandbox = Sandbox()
    try:
        module = sandbox.compile(wasm)
        checks = _checks(args, args.kind, module, sandbox)
        results = asyncio.run(run_fixtures(checks, fixtures, update=args.update))
    finally:
        sandbox.close()
    width = max(len(r.name) for r in results)
    for result in results:
        print(_fixture_line(result, width))
    failed = sum(not r.passed for r in results)
    print(
        f"{len(results)} fixtures: {len(results) - failed} passed, {failed} failed "
        f"({path.name} {module.digest}, kind {args.kind}, {checks.policy.source})"
    )
    return 1 if failed else 0


def _fixture_line(result: FixtureResult, width: int) -> str:
    fuel = f" fuel={result.fuel}" if result.fuel is not None else ""
    if result.passed:
        return f"PASS {result.name:<{width}}  {result.code}{fuel}"
    where = f" at {result.stage}" if result.stage else ""
    line = f"FAIL {result.name:<{width}}  {result.code}{where}{fuel}: {result.message}"
    if result.diff:
        line += "\n" + "\n".join(f"     {text}" for text in result.diff.splitlines())
    return line


def run(args: argparse.Namespace) -> int:
    """Execute ``sandbox run``."""
    wasm = read_input(args.module, "module")
    stdin = sys.stdin.buffer.read() if args.input == "-" else read_input(Path(args.input), "input")
    if args.kind is not None:
        return _run_as_task(args, wasm, stdin)
    limits = SandboxLimits(
        fuel=_DEFAULTS.fuel if args.fuel is None else args.fuel,
        timeout_ms=_DEFAULTS.timeout_ms if args.timeout_ms is None else args.timeout_ms,
        memory_bytes=(_DEFAULTS.memory_bytes if args.memory_mb is None else args.memory_mb << 20),
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
    sys.stdout.write(_json(report))
    return 0 if ok else 1


def _run_as_task(args: argparse.Namespace, wasm: bytes, stdin: bytes) -> int:
    """``sandbox run --kind``: the input as a worker's task of that kind, every check applied."""
    sandbox = Sandbox()
    try:
        try:
            module = sandbox.compile(wasm, args.digest)
        except ModuleError as exc:
            report = refusal_report(exc.outcome, exc.message, module_digest(wasm))
            sys.stdout.write(_json(report))
            return 1
        checks = _checks(args, args.kind, module, sandbox)
        try:
            task_input = canonical_input(stdin)
        except ValueError as exc:
            # A worker's tasks always carry canonical inputs: this one cannot be a task.
            raise ContentUnavailableError(
                f"input {args.input} is {exc}", code="canonical-form", retryable=False
            ) from None
        derived = checks.task(task_input, "")
        limits = _override(args, derived.task.limits)
        path = args.path or task_path(stdin, "fixtures/input.md")
        checked = asyncio.run(checks.run(task_input, path=path, limits=limits))
    finally:
        sandbox.close()
    execution = checked.execution
    if checked.result is not None:
        report = run_report(checked.result, module.digest)
        if not args.full:
            _bound(report, checked.result)
    else:
        report = {"module_digest": module.digest, "exit_code": None, "usage": None}
    report["outcome"] = execution.code
    report["stage"] = str(execution.stage)
    report["detail"] = execution.message
    report["deterministic"] = not execution.retryable
    report["output_digest"] = execution.output_digest
    report["task"] = {
        "kind": checked.task.kind,
        "path": checked.task.path,
        "limits": msgspec.to_builtins(checked.task.limits),
        "policy": checks.policy.source,
    }
    sys.stdout.write(_json(report))
    return 0 if execution.ok else 1


def _override(args: argparse.Namespace, limits: Limits) -> Limits | None:
    """The limits the command line asks for instead of the kind's (None: none asked)."""
    if args.fuel is None and args.timeout_ms is None and args.memory_mb is None:
        return None
    return Limits(
        fuel=limits.fuel if args.fuel is None else args.fuel,
        timeout_ms=limits.timeout_ms if args.timeout_ms is None else args.timeout_ms,
        memory_bytes=limits.memory_bytes if args.memory_mb is None else args.memory_mb << 20,
    )


def _json(report: dict[str, Any]) -> str:
    return msgspec.json.format(msgspec.json.encode(report), indent=2).decode() + "\n"


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
