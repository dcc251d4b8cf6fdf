"""Telemetry: logs (structlog); traces and metrics build on this package."""

from ._logging import configure_logging

__all__ = ["configure_logging"]
