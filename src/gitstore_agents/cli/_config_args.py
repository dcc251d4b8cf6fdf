"""The options runtime commands share: ``--config``, ``--log-level``, and how to reach NATS."""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

import msgspec
from nats.aio.client import Client

from ..config import CONFIG_ENV, Config, load_config
from ..consumers import connect
from ..telemetry import LOG_LEVEL_ENV

DEFAULT_TIMEOUT_S = 5.0


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--config`` and ``--log-level``."""
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help=f"YAML configuration (default: ${CONFIG_ENV}; built-in defaults without one)",
    )
    parser.add_argument(
        "--log-level",
        default=os.environ.get(LOG_LEVEL_ENV, "INFO"),
        help=f"log level (default: ${LOG_LEVEL_ENV} or INFO)",
    )


def config_from(args: argparse.Namespace) -> Config:
    """The configuration named by ``args.config`` (plus ``GITSTORE_*`` variables)."""
    path: Path | None = args.config
    return load_config(path)


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """``--config``, ``--log-level``, ``--nats-url`` and ``--timeout``."""
    add_config_arguments(parser)
    parser.add_argument(
        "--nats-url", default=None, help="NATS URL (overrides the configuration's nats.url)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help="seconds to wait for an answer (default: %(default)s)",
    )


def connection_config(args: argparse.Namespace) -> Config:
    """The configuration (file, ``GITSTORE_*`` variables), with ``--nats-url`` applied."""
    config = config_from(args)
    if args.nats_url:
        config = msgspec.structs.replace(
            config, nats=msgspec.structs.replace(config.nats, url=args.nats_url)
        )
    return config


async def connect_command(config: Config, name: str, timeout_s: float) -> Client:
    """Connect an operator command to NATS, bounded by ``timeout_s``.

    The connection settings are the workers' (reconnects never give up), so
    the first connect needs its own bound: a command must fail, not wait.
    """
    return await asyncio.wait_for(connect(config.nats, name=name), timeout=timeout_s)
