"""The ``--config`` and ``--log-level`` options every runtime command shares."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..config import CONFIG_ENV, Config, load_config
from ..telemetry import LOG_LEVEL_ENV


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
