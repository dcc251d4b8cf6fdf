"""Side-by-side throughput, latency and memory of our worker and what users would use instead.

Every row runs against the same real nats-server in one run; throughput is a
backlog drained by the worker, latency is measured at a fixed offered load,
both from the server's storage timestamps.

Rows: (1) raw nats-py with correct ack discipline, (2) FastStream, (3) our
worker running a no-op task with every guarantee on, (4) our worker compiling
realistic product files from git events, on 1 and 2 processes.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from gitstore_agents.telemetry import configure_logging

from ._baseline import BASELINES, run_baseline
from ._harness import BenchServer, RowResult
from ._ours import COMPILE_ROW, NOOP_ROW, OurSettings, run_compile_row, run_noop_row

RAW = "raw nats-py"
FASTSTREAM = "FastStream"
ROW_NAMES = (RAW, FASTSTREAM, "noop", "compile")

# The targets of the pipeline redesign (benchmarks, not timed tests), with
# fsync always; with fsync periodic only the FastStream ratio is a target.
NOOP_VS_RAW = 0.6
NOOP_VS_FASTSTREAM = 1.2
COMPILE_VS_RAW = 0.3
COMPILE_SCALING = 1.7

WHAT_IF_NO_AUDIT = "our workers store no audit records (not a configuration; targets do not count)"


def _fmt(value: float, digits: int = 0) -> str:
    return "n/a" if math.isnan(value) else f"{value:,.{digits}f}"


def _ratio(a: RowResult | None, b: RowResult | None) -> float:
    if a is None or b is None or not b.msgs_per_s or math.isnan(b.msgs_per_s):
        return math.nan
    return a.msgs_per_s / b.msgs_per_s


def render(rows: list[RowResult]) -> str:
    """The comparison table, with ratios against rows 1 and 2."""
    by_name = {r.name: r for r in rows}
    raw = by_name.get(RAW)
    fast = by_name.get(FASTSTREAM)
    header = (
        f"{'row':<34} {'msgs/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'peak RSS MiB':>13} "
        f"{'vs raw':>7} {'vs FastStream':>14}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(
            f"{row.name:<34} {_fmt(row.msgs_per_s):>9} {_fmt(row.p50_ms, 1):>8} "
            f"{_fmt(row.p99_ms, 1):>8} {_fmt(row.peak_rss_mb, 1):>13} "
            f"{_fmt(_ratio(row, raw), 2) + 'x':>7} {_fmt(_ratio(row, fast), 2) + 'x':>14}"
        )
        lines.extend(f"    note: {n}" for n in row.notes)
    return "\n".join(lines)


def targets(rows: list[RowResult], *, fsync: str = "always") -> list[str]:
    """One line per target of the issue: the measured ratio and whether it is met."""
    by_name = {r.name: r for r in rows}
    noop = by_name.get(NOOP_ROW)
    one = by_name.get(COMPILE_ROW.format(n=1))
    two = by_name.get(COMPILE_ROW.format(n=2))
    raw = by_name.get(RAW)
    checks = [
        ("no-op vs FastStream", _ratio(noop, by_name.get(FASTSTREAM)), NOOP_VS_FASTSTREAM),
    ]
    if fsync == "always":
        checks = [
            ("no-op vs raw nats-py", _ratio(noop, raw), NOOP_VS_RAW),
            *checks,
            ("markdown-compile x1 vs raw nats-py", _ratio(one, raw), COMPILE_VS_RAW),
            ("markdown-compile 1 -> 2 processes", _ratio(two, one), COMPILE_SCALING),
        ]
    lines = []
    for what, value, wanted in checks:
        if math.isnan(value):
            continue
        verdict = "met" if value >= wanted else "NOT met"
        lines.append(f"{what:<36} {value:5.2f}x  (target >= {wanted:g}x: {verdict})")
    if fsync == "always" and two is not None:
        lines += scaling_ceiling(one, os.cpu_count() or 1)
    return lines


def scaling_ceiling(one: RowResult | None, cores: int) -> list[str]:
    """The most a second process could add, from what one process and the server cost.

    Every event costs the workers ``W`` and nats-server ``S`` of CPU, so the
    machine's cores drain at most ``cores / (W + S)`` events a second, however
    many processes run; one process already drains ``x1``. Their ratio bounds
    the 1 -> N scaling (above it only if a process got cheaper per event).
    """
    if one is None or math.isnan(one.worker_us) or math.isnan(one.server_us):
        return []
    per_event = one.worker_us + one.server_us
    ceiling = cores / (per_event / 1e6) / one.msgs_per_s
    return [
        f"{'markdown-compile 1 -> 2 ceiling here':<36} {ceiling:5.2f}x  ({cores} cores / "
        f"(worker {one.worker_us:,.0f} + nats-server {one.server_us:,.0f} us CPU per event) "
        f"/ x1's {one.msgs_per_s:,.0f} events/s)"
    ]


async def run(args: argparse.Namespace) -> tuple[list[RowResult], list[float]]:
    """Run every selected row against one server; the rows and the disk's fsync pace."""
    selected = set(args.rows or ROW_NAMES)
    ours = OurSettings(
        concurrency=args.concurrency,
        batch=args.batch,
        compile_concurrency=args.compile_concurrency,
        log_level=args.worker_log_level,
        profile_dir=args.profile,
        audit_trail=not args.without_audit_trail,
    )
    common = {
        "messages": args.messages,
        "rate": args.rate,
        "latency_messages": args.latency_messages,
    }
    with BenchServer(sync_always=args.fsync == "always") as bench:
        probes = [fsync_probe(bench.store_dir)]
        rounds: list[list[RowResult]] = []
        # Rounds interleave the rows, so a slow spell of the disk (fsync
        # latency on shared virtual disks varies several-fold) hits them alike.
        for _ in range(args.repeat):
            measured: list[RowResult] = []
            for name in BASELINES:
                if name in selected:
                    measured.append(
                        await _probed(
                            bench,
                            run_baseline(name, bench, payload_bytes=args.payload_bytes, **common),
                        )
                    )
            if "noop" in selected:
                measured.append(await _probed(bench, run_noop_row(bench, settings=ours, **common)))
            if "compile" in selected:
                compile_common = {**common, "messages": args.compile_messages or args.messages}
                for processes in args.processes:
                    measured.append(
                        await _probed(
                            bench,
                            run_compile_row(
                                bench, processes=processes, settings=ours, **compile_common
                            ),
                        )
                    )
            rounds.append(measured)
        probes.append(fsync_probe(bench.store_dir))
    rows = [median_row([r[i] for r in rounds]) for i in range(len(rounds[0]))]
    return rows, probes


async def _probed(bench: BenchServer, row: Coroutine[Any, Any, RowResult]) -> RowResult:
    """Run ``row`` and note the disk's fsync pace just before it."""
    pace = fsync_probe(bench.store_dir)
    result = await row
    result.notes.append(f"disk just before: {pace:,.0f} fsyncs/s")
    return result


def median_row(results: list[RowResult]) -> RowResult:
    """The round with the median throughput (its latency and memory with it)."""
    ordered = sorted(results, key=lambda r: r.msgs_per_s)
    chosen = ordered[(len(ordered) - 1) // 2]
    if len(results) > 1:
        spread = ", ".join(f"{r.msgs_per_s:,.0f}" for r in results)
        chosen.notes.insert(0, f"msgs/s of each round: {spread} (median shown)")
    return chosen


def fsync_probe(folder: Path, writes: int = 300) -> float:
    """fsyncs per second of 1 KiB appends in ``folder``'s file system (the disk's pace)."""
    path = folder / "fsync-probe"
    block = b"\0" * 1024
    started = time.perf_counter()
    with path.open("wb") as file:
        for _ in range(writes):
            file.write(block)
            file.flush()
            os.fsync(file.fileno())
    elapsed = time.perf_counter() - started
    path.unlink()
    return writes / elapsed


def machine() -> str:
    """Facts about this machine that bear on the numbers."""
    return (
        f"{os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line of ``python -m bench``."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--messages", type=int, default=10_000, help="backlog size per row")
    parser.add_argument(
        "--compile-messages",
        type=int,
        default=None,
        help="backlog of the markdown-compile rows (default: --messages)",
    )
    parser.add_argument("--rate", type=float, default=300.0, help="offered load for latency")
    parser.add_argument("--latency-messages", type=int, default=1_500)
    parser.add_argument("--payload-bytes", type=int, default=1_500)
    parser.add_argument(
        "--rows", nargs="*", choices=ROW_NAMES, help="subset of rows (default: all)"
    )
    parser.add_argument(
        "--processes",
        type=int,
        nargs="*",
        default=[1, 2],
        help="worker process counts of the markdown-compile row",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="interleaved rounds; the median round is shown"
    )
    parser.add_argument("--concurrency", type=int, default=OurSettings.concurrency)
    parser.add_argument("--batch", type=int, default=OurSettings.batch)
    parser.add_argument("--compile-concurrency", type=int, default=OurSettings.compile_concurrency)
    parser.add_argument(
        "--worker-log-level",
        default="INFO",
        help="--log-level of our workers (production: INFO, one line per decision)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="run our workers under pyinstrument; a text report per process goes to DIR",
    )
    parser.add_argument(
        "--without-audit-trail",
        action="store_true",
        help="what-if, not a configuration: our workers do not store decision records "
        "(measures what the audit trail costs; the targets do not count)",
    )
    parser.add_argument(
        "--fsync",
        choices=["always", "periodic"],
        default="always",
        help="nats-server sync_interval: 'always' (our production setting) or its default",
    )
    return parser.parse_args(argv)


def report(args: argparse.Namespace, rows: list[RowResult], probes: list[float]) -> str:
    """Everything ``python -m bench`` prints: run facts, the table, the targets."""
    lines = [
        f"machine: {machine()}",
        "disk: " + " -> ".join(f"{p:,.0f}" for p in probes) + " fsyncs/s (1 KiB appends, "
        "before -> after the run)",
        f"nats-server fsync={args.fsync} (production: always), backlog={args.messages} msgs"
        + (f" (compile rows: {args.compile_messages})" if args.compile_messages else "")
        + f", latency at {args.rate:g} msgs/s offered load ({args.latency_messages} msgs)",
        f"ours: no-op concurrency={args.concurrency} batch={args.batch}; "
        f"markdown-compile concurrency={args.compile_concurrency} per process, follow-ups off; "
        f"worker log level {args.worker_log_level}",
        *([f"WHAT-IF: {WHAT_IF_NO_AUDIT}"] if args.without_audit_trail else []),
        render(rows),
        *targets(rows, fsync=args.fsync),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point: print the table."""
    args = parse_args(argv)
    configure_logging(json=False, level="WARNING")
    rows, probes = asyncio.run(run(args))
    print(report(args, rows, probes))
    return 0
