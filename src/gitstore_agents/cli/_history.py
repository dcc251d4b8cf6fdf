"""``gitstore-agents preview`` and ``backfill``: a module upgrade and the history it applies to."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from ..config import Config
from ..ops import BATCH, BackfillReport, PreviewReport, Window, backfill, count_line, preview
from ..service import Runtime
from ..telemetry import LOG_LEVEL_ENV, configure_logging
from ._config_args import add_connection_arguments, connection_config


def _timestamp(text: str) -> datetime.datetime:
    """``argparse`` type of an RFC 3339 time (``2026-12-01T00:00:00Z``)."""
    try:
        at = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an RFC 3339 time (e.g. 2026-12-01T00:00:00Z)"
        ) from None
    if at.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r}: give a time zone (Z or +hh:mm)")
    return at


def _window_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kind", required=True, help="task kind, e.g. catalog.enrich")
    parser.add_argument(
        "--since", type=_timestamp, default=None, help="history stored at or after this time"
    )
    parser.add_argument(
        "--until", type=_timestamp, default=None, help="history stored before this time"
    )
    parser.add_argument(
        "--extension",
        default=None,
        help="with --kind extension.run: only this configured extension's inputs",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    add_connection_arguments(parser)
    # A report, not a worker: the runtime's start and stop lines are noise here.
    parser.set_defaults(log_level=os.environ.get(LOG_LEVEL_ENV, "WARNING"))


def register(commands: Any) -> None:
    """Add the ``preview`` and ``backfill`` commands."""
    preview_parser: argparse.ArgumentParser = commands.add_parser(
        "preview",
        help="run history with a candidate module, publish nothing, report what would change",
        description=(
            "Runs every past input of --kind (git events for markdown.compile, stored compile "
            "results for its follow-ups) with the --module candidate, exactly as a worker "
            "would, and compares each outcome with the result the configured module stored. "
            "Prints counts (unchanged, changed, added, removed, failing, not stored), the "
            "output fields that change, the catalog segments the changes concentrate in, and "
            "a diff of the first changed resources. Nothing is published."
        ),
    )
    preview_parser.add_argument(
        "--module", required=True, help="candidate: file:PATH, sha256:DIGEST or reference:NAME"
    )
    preview_parser.add_argument(
        "--diffs",
        type=int,
        default=20,
        help="changed, removed and added resources shown, each (default 20)",
    )
    _window_arguments(preview_parser)
    preview_parser.set_defaults(run=run_preview)

    backfill_parser: argparse.ArgumentParser = commands.add_parser(
        "backfill",
        help="give every past input of a kind a task for the configured module",
        description=(
            "After a module upgrade: derives, for every past input of --kind, the task the "
            "configuration in force runs, and publishes it to its slot. A kind whose module "
            "changed gets one new task per past input (the workers run them); a kind whose "
            "module did not change stores nothing. Run it again, or after an interruption: "
            "what was stored stays stored, the rest is stored now."
        ),
    )
    backfill_parser.add_argument(
        "--batch",
        type=int,
        default=BATCH,
        help=f"tasks published and confirmed together (default {BATCH})",
    )
    _window_arguments(backfill_parser)
    backfill_parser.set_defaults(run=run_backfill)


def run_preview(args: argparse.Namespace) -> int:
    """Execute ``preview``."""

    async def go(runtime: Runtime, window: Window) -> int:
        report = await preview(runtime, args.kind, args.module, window, max_diffs=args.diffs)
        print(_json(report) if args.json else render_preview(report, max(args.diffs, 0)))
        return 0

    return _with_runtime(args, go)


def run_backfill(args: argparse.Namespace) -> int:
    """Execute ``backfill``."""

    async def go(runtime: Runtime, window: Window) -> int:
        report = await backfill(
            runtime, args.kind, window, request_id="backfill", batch_size=max(args.batch, 1)
        )
        print(_json(report) if args.json else render_backfill(report))
        return 0

    return _with_runtime(args, go)


def _with_runtime(
    args: argparse.Namespace, body: Callable[[Runtime, Window], Awaitable[int]]
) -> int:
    configure_logging(json=False, level=args.log_level)
    config: Config = connection_config(args)
    # A tool run, not a worker: no health server, and no consumer is bound.
    config = msgspec.structs.replace(
        config, health=msgspec.structs.replace(config.health, port=None)
    )
    window = Window(since=args.since, until=args.until, extension=args.extension)

    async def go() -> int:
        runtime = Runtime(config)
        try:
            await runtime.start(retry=False, tool=True)
            return await body(runtime, window)
        finally:
            await runtime.close()

    return asyncio.run(go())


def _json(report: PreviewReport | BackfillReport) -> str:
    return json.dumps(msgspec.to_builtins(report), indent=2, sort_keys=True)


def render_preview(report: PreviewReport, max_shown: int = 20) -> str:
    """The preview for people: counts, fields, segments, and the first changes of each sort."""
    lines = [
        f"preview of {report.kind}"
        + (f" ({report.extension})" if report.extension else "")
        + f": configured {report.configured_module}",
        f"                      candidate  {report.candidate_module}",
        count_line(report) + f" in {report.seconds:g} s ({report.runs_per_s:g} runs/s)",
    ]
    if report.removed_by_code:
        lines.append(
            "removed (would fail): "
            + ", ".join(f"{c} {n}" for c, n in sorted(report.removed_by_code.items()))
        )
    if report.fields:
        lines.append("fields that change (results):")
        lines += [f"  {path}: {n}" for path, n in report.fields.items()]
    if report.segments:
        lines.append("where the changes concentrate (changed / inputs):")
        lines += [f"  {s.name}: {s.changes} / {s.inputs}" for s in report.segments[:15]]
    shown: dict[str, int] = {}
    for change in report.changes:
        shown[change.change] = shown.get(change.change, 0) + 1
        if shown[change.change] > max_shown:
            continue
        lines.append(
            f"{change.change.upper()} {change.path} ({change.stored} -> {change.candidate})"
        )
        if change.message:
            lines.append(f"  {change.message}")
        if change.diff:
            lines += [f"  {line}" for line in change.diff.splitlines()]
    lines += [
        f"... and {n - max_shown} more {change} (--json lists every one)"
        for change, n in shown.items()
        if n > max_shown
    ]
    if report.skipped.counts:
        lines.append(f"skipped history: {report.skipped.counts}")
        lines += [f"  {example}" for example in report.skipped.examples]
    return "\n".join(lines)


def render_backfill(report: BackfillReport) -> str:
    """The backfill for people: one line, and what was skipped."""
    lines = [
        f"backfill of {report.kind} with {report.module}: {report.inputs} past inputs, "
        f"{report.published} tasks published, {report.already_stored} already stored "
        f"({report.seconds:g} s)"
    ]
    if report.skipped.counts:
        lines.append(f"skipped history: {report.skipped.counts}")
        lines += [f"  {example}" for example in report.skipped.examples]
    return "\n".join(lines)
