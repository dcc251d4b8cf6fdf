"""Connection options from the configuration, shared by workers and operator commands."""

from __future__ import annotations

from typing import Any

import nats
from nats.aio.client import Client

from ..config import NatsSettings


def connect_options(settings: NatsSettings, *, name: str) -> dict[str, Any]:
    """Keyword arguments for ``nats.connect``: servers, auth, reconnects, inbox prefix.

    Reconnection never gives up (``max_reconnect_attempts=-1``): a worker rides
    out server restarts instead of exiting.
    """
    options: dict[str, Any] = {
        "servers": [url.strip() for url in settings.url.split(",") if url.strip()],
        "name": name,
        "allow_reconnect": True,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": settings.reconnect_wait_s,
        "connect_timeout": settings.connect_timeout_s,
    }
    if settings.creds_file:
        options["user_credentials"] = settings.creds_file
    if settings.user:
        options["user"], options["password"] = settings.user, settings.password
    if settings.inbox_prefix:
        options["inbox_prefix"] = settings.inbox_prefix
    return options


async def connect(settings: NatsSettings, *, name: str, **callbacks: Any) -> Client:
    """Connect once with ``settings`` (operator commands; workers retry in ``Runtime``)."""
    return await nats.connect(**connect_options(settings, name=name), **callbacks)
