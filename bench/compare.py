"""Side-by-side throughput, latency and memory of our worker and what users would use instead.

Every row runs against the same real nats-server in one run; throughput is a
backlog drained by the worker, latency is measured at a fixed offered load,
both from the server's storage timestamps.
"""

from __future__ import annotations

import argparse
import asyncio
import math

from ._baseline import BASELINES, run_baseline
from ._harness import BenchServer, RowResult


def _fmt(value: float, digits: int = 0) -> str:
    return "n/a" if math.isnan(value) else f"{value:,.{digits}f}"


def render(rows: list[RowResult]) -> str:
    """The comparison table, with ratios against rows 1 and 2."""
    by_name = {r.name: r for r in rows}
    raw = by_name.get("raw nats-py")
    fast = by_name.get("FastStream")
    header = (
        f"{'row':<34} {'msgs/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'peak RSS MiB':>13} "
        f"{'vs raw':>7} {'vs FastStream':>14}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        vs_raw = row.msgs_per_s / raw.msgs_per_s if raw else math.nan
        vs_fast = row.msgs_per_s / fast.msgs_per_s if fast else math.nan
        lines.append(
            f"{row.name:<34} {_fmt(row.msgs_per_s):>9} {_fmt(row.p50_ms, 1):>8} "
            f"{_fmt(row.p99_ms, 1):>8} {_fmt(row.peak_rss_mb, 1):>13} "
            f"{_fmt(vs_raw, 2) + 'x':>7} {_fmt(vs_fast, 2) + 'x':>14}"
        )
        lines.extend(f"    note: {n}" for n in row.notes)
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> list[RowResult]:
    """Run every selected row against one server."""
    rows: list[RowResult] = []
    with BenchServer(sync_always=args.fsync == "always") as bench:
        for name in BASELINES:
            if args.rows and name not in args.rows:
                continue
            rows.append(
                await run_baseline(
                    name,
                    bench.url,
                    messages=args.messages,
                    rate=args.rate,
                    latency_messages=args.latency_messages,
                    payload_bytes=args.payload_bytes,
                )
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    """Entry point: print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--messages", type=int, default=10_000, help="backlog size per row")
    parser.add_argument("--rate", type=float, default=300.0, help="offered load for latency")
    parser.add_argument("--latency-messages", type=int, default=1_500)
    parser.add_argument("--payload-bytes", type=int, default=1_500)
    parser.add_argument("--rows", nargs="*", help="subset of row names")
    parser.add_argument(
        "--fsync",
        choices=["always", "periodic"],
        default="always",
        help="nats-server sync_interval: 'always' (our production setting) or its default",
    )
    args = parser.parse_args(argv)
    rows = asyncio.run(run(args))
    print(
        f"nats-server fsync={args.fsync}, backlog={args.messages} msgs, "
        f"latency at {args.rate:g} msgs/s offered load ({args.latency_messages} msgs)"
    )
    print(render(rows))
    return 0
