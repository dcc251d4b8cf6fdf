"""The options commands share: ``--config``, ``--log-level``, and how to reach NATS.

Every command that connects to NATS takes the same connection options, listed
once in ``CONNECTION_OPTIONS``: each overrides one ``nats.*`` setting of the
configuration (file, then ``GITSTORE_*`` variables, then the option). A new
one is one entry there plus the ``NatsSettings`` field it sets; every command
gets it, and ``connected`` uses it, without further changes.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
from nats.aio.client import Client

from ..config import CONFIG_ENV, Config, NatsSettings, load_config, validate_config
from ..consumers import connect
from ..telemetry import LOG_LEVEL_ENV

DEFAULT_TIMEOUT_S = 5.0
"""Default of ``--timeout``: how long a command waits for an answer."""


def positive_seconds(text: str) -> float:
    """``argparse`` type of a duration in seconds: a number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number of seconds above 0")
    return value


class ConnectionOption(NamedTuple):
    """A command-line option that overrides one ``nats.*`` setting.

    Attributes:
        flag: The option, e.g. ``--nats-url``.
        setting: The ``NatsSettings`` field it overrides.
        metavar: Placeholder in ``--help``.
        help: What it is (the overridden setting is appended).
        type: Parses the option's text (``argparse`` type; errors exit 2).
        replaces: Other settings the option clears when given (e.g. ``--creds``
            replaces user and password: only one way to authenticate).
    """

    flag: str
    setting: str
    metavar: str
    help: str
    type: Callable[[str], Any] = str
    replaces: tuple[str, ...] = ()


CONNECTION_OPTIONS: tuple[ConnectionOption, ...] = (
    ConnectionOption(
        "--nats-url", "url", "URL", "NATS server URL(s), comma-separated for a cluster"
    ),
    ConnectionOption(
        "--creds",
        "creds_file",
        "FILE",
        ".creds file (JWT and nkey seed) to authenticate with, instead of user/password",
        replaces=("user", "password"),
    ),
    ConnectionOption(
        "--tls-ca",
        "tls_ca_file",
        "FILE",
        "CA certificate(s) (PEM) the server's certificate is checked against",
    ),
    ConnectionOption(
        "--tls-cert",
        "tls_cert_file",
        "FILE",
        "client certificate (PEM), for a server that verifies clients; with --tls-key",
    ),
    ConnectionOption("--tls-key", "tls_key_file", "FILE", "the client certificate's key (PEM)"),
    ConnectionOption(
        "--tls-server-name",
        "tls_server_name",
        "NAME",
        "name expected in the server's certificate, when not the URL's host",
    ),
    ConnectionOption(
        "--connect-timeout",
        "connect_timeout_s",
        "S",
        f"seconds to wait for NATS to accept the connection "
        f"(default: {NatsSettings().connect_timeout_s:g}); a command fails after it, "
        "a worker retries until stopped",
        type=positive_seconds,
    ),
)
"""Every connection option, in ``--help`` order."""


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


def add_connection_arguments(
    parser: argparse.ArgumentParser, *, waits_for_answers: bool = False
) -> None:
    """``--config``, ``--log-level``, every ``CONNECTION_OPTIONS`` entry, maybe ``--timeout``.

    Args:
        parser: The command's parser.
        waits_for_answers: The command waits for answers (requests, reads):
            add ``--timeout``.
    """
    add_config_arguments(parser)
    group = parser.add_argument_group("connection to NATS")
    for option in CONNECTION_OPTIONS:
        group.add_argument(
            option.flag,
            dest=_dest(option),
            type=option.type,
            default=None,
            metavar=option.metavar,
            help=f"{option.help} (overrides nats.{option.setting})",
        )
    if waits_for_answers:
        group.add_argument(
            "--timeout",
            type=positive_seconds,
            default=DEFAULT_TIMEOUT_S,
            metavar="S",
            help="seconds to wait for an answer (default: %(default)s)",
        )


def connection_config(args: argparse.Namespace) -> Config:
    """The configuration (file, ``GITSTORE_*`` variables), with the connection options applied.

    Raises:
        ConfigError: the file is missing or invalid, or the options contradict it.
    """
    config = config_from(args)
    changes: dict[str, Any] = {}
    for option in CONNECTION_OPTIONS:
        value = getattr(args, _dest(option), None)
        if value is not None:
            changes.update(dict.fromkeys(option.replaces))
            changes[option.setting] = value
    if not changes:
        return config
    nats = msgspec.structs.replace(config.nats, **changes)
    return validate_config(msgspec.structs.replace(config, nats=nats))


@contextlib.asynccontextmanager
async def connected(config: Config, command: str) -> AsyncIterator[Client]:
    """A connection for ``command`` (e.g. ``dlq``), closed when the block ends.

    The connect is bounded by ``nats.connect_timeout_s`` (``--connect-timeout``)
    and tried once: a command fails with ``NatsUnreachableError`` naming the URL
    and the cause, it never waits for a server to appear.
    """
    nc = await connect(config.nats, name=f"gitstore-agents/{command}")
    try:
        yield nc
    finally:
        await nc.close()


def _dest(option: ConnectionOption) -> str:
    return option.flag.removeprefix("--").replace("-", "_")
