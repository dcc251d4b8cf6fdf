"""The status API's client side: ask a running worker what happened to an event or task.

``gitstore-agents status`` and the control plane's own client send one request
to ``<prefix>.status.event`` / ``<prefix>.status.key`` (answered by whichever
worker's ``StatusService`` is in the queue group), or ping the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg

from ..envelopes import headers
from ..errors import GitStoreAgentsError
from ..service import STATUS_SERVICE


class StatusUnavailableError(GitStoreAgentsError):
    """The status service did not answer, or answered with an error."""

    code = "status-unavailable"
    retryable = True


async def ask_status(nc: Client, subject: str, body: dict[str, Any], *, timeout_s: float) -> Msg:
    """Send one status request; the reply (errors raise).

    Raises:
        StatusUnavailableError: no answer within ``timeout_s``, or an error answer.
    """
    try:
        reply = await nc.request(subject, json.dumps(body).encode(), timeout=timeout_s)
    except Exception as exc:
        raise StatusUnavailableError(
            f"no answer from the status service on {subject} within {timeout_s:g}s "
            f"(is a worker running?): {exc!r}"
        ) from None
    code = headers.get_header(reply.headers, "Nats-Service-Error-Code")
    if code is not None:
        description = headers.get_header(reply.headers, "Nats-Service-Error") or ""
        raise StatusUnavailableError(f"status service error {code}: {description}")
    return reply


async def ping_status(nc: Client, prefix: str, *, timeout_s: float) -> dict[str, Any] | None:
    """The first status service instance serving ``prefix`` that answers a ping, or None."""
    inbox = nc.new_inbox()
    answers: asyncio.Queue[Msg] = asyncio.Queue()

    async def collect(msg: Msg) -> None:
        await answers.put(msg)

    sub = await nc.subscribe(inbox, cb=collect)
    try:
        await nc.publish(f"$SRV.PING.{STATUS_SERVICE}", b"", reply=inbox)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while (remaining := deadline - loop.time()) > 0:
            try:
                msg = await asyncio.wait_for(answers.get(), timeout=remaining)
            except TimeoutError:
                break
            with contextlib.suppress(ValueError):
                info = json.loads(msg.data)
                if isinstance(info, dict) and info.get("metadata", {}).get("prefix") == prefix:
                    return info
        return None
    finally:
        await sub.unsubscribe()
