"""``gitstore-agents rewind --role R --to-seq N | --to-time T``: deliver a role's inputs again."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import re
from typing import Any

import msgspec

from ..config import ROLES
from ..consumers import rewind_consumer, role_consumer, sequence_at
from ..errors import ConfigError
from ..telemetry import configure_logging
from ._config_args import add_connection_arguments, connected, connection_config

_AGO = re.compile(r"(?P<amount>\d+(?:\.\d+)?)(?P<unit>[smhd])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def register(commands: Any) -> None:
    """Add the ``rewind`` command."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "rewind",
        help="make a role's durable deliver again from a stream sequence or a time",
        description=(
            "Move the role's durable consumer back (or forward) to a stream sequence, or to the "
            "first message stored at or after a time. On nats-server 2.14 and later the durable "
            "is reset in place ($JS.API.CONSUMER.RESET): its settings stay, and the role's "
            "workers may keep running. --recreate deletes and creates it again from the role's "
            "configuration instead (older servers; pause the role's workers first). Already "
            "processed messages find their results stored and store nothing new."
        ),
    )
    parser.add_argument("--role", required=True, choices=ROLES, help="the role to rewind")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--to-seq", type=_sequence, metavar="N", help="first stream sequence to deliver again"
    )
    where.add_argument(
        "--to-time",
        type=_moment,
        metavar="TIME",
        help="deliver again what was stored since TIME: RFC 3339 (2026-11-29T08:00:00Z) "
        "or a duration back from now (90s, 30m, 6h, 2d)",
    )
    parser.add_argument(
        "--recreate",
        action="store_true",
        help="delete and create the durable (servers without consumer reset; workers paused)",
    )
    parser.add_argument("--json", action="store_true", help="the outcome as one JSON object")
    add_connection_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``rewind``."""
    configure_logging(json=False, level=args.log_level)
    config = connection_config(args)
    if args.role not in config.roles:
        raise ConfigError(f"role {args.role} is not in the configuration's roles")
    spec = role_consumer(config, args.role)

    async def go() -> int:
        async with connected(config, "rewind") as nc:
            js = nc.jetstream(timeout=config.nats.request_timeout_s)
            seq = args.to_seq or await sequence_at(js, spec.stream, args.to_time)
            rewound = await rewind_consumer(js, spec, seq, recreate=args.recreate)
        if args.json:
            print(json.dumps(msgspec.to_builtins(rewound)))
            return 0
        how = (
            "reset in place, settings unchanged"
            if rewound.method == "reset"
            else "deleted and created again with the role's settings"
        )
        print(
            f"rewound {rewound.stream}/{rewound.durable} to stream sequence {rewound.seq} "
            f"({how}): {rewound.num_pending} messages to deliver again"
        )
        return 0

    return asyncio.run(go())


def _sequence(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a stream sequence") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: stream sequences start at 1")
    return value


def _moment(text: str) -> dt.datetime:
    ago = _AGO.fullmatch(text.strip())
    if ago is not None:
        seconds = float(ago["amount"]) * _UNIT_S[ago["unit"]]
        try:
            return dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds)
        except OverflowError:
            raise argparse.ArgumentTypeError(
                f"{text!r} reaches back before year 1: give a shorter duration"
            ) from None
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither an RFC 3339 time (2026-11-29T08:00:00Z) nor a duration "
            "back from now (90s, 30m, 6h, 2d)"
        ) from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r}: give a time zone (Z or +01:00)")
    return moment
