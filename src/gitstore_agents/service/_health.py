"""``/healthz`` and ``/readyz`` for Kubernetes probes: a few lines of asyncio, no framework.

``/healthz`` answers 200 while the process's event loop runs. ``/readyz``
answers 200 only when the runtime says it is ready (connected to NATS, every
consumer bound, not draining) and 503 otherwise. More routes (``/metrics``)
can be added with ``HealthServer.route``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable

import structlog

from ..errors import GitStoreAgentsError

log = structlog.get_logger(__name__)


class HealthPortError(GitStoreAgentsError):
    """The health server cannot listen on ``health.host``:``health.port``."""

    code = "health-port-unavailable"


Route = Callable[[], tuple[int, str]]
"""Returns (HTTP status, plain-text body)."""

_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}
_MAX_REQUEST_LINE = 4096
_READ_TIMEOUT_S = 5.0


class HealthServer:
    """A minimal HTTP/1.1 server for probes.

    Args:
        ready: Returns (ready?, why not) for ``/readyz``.
        host: Interface to listen on.
        port: TCP port (0 picks a free one; see ``port`` after ``start``).
    """

    def __init__(self, ready: Callable[[], tuple[bool, str]], *, host: str, port: int) -> None:
        self._host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._routes: dict[str, Route] = {
            "/healthz": lambda: (200, "ok\n"),
            "/readyz": lambda: _readiness(ready),
        }

    def route(self, path: str, handler: Route) -> None:
        """Serve ``handler`` at ``path`` (e.g. ``/metrics``)."""
        self._routes[path] = handler

    async def start(self) -> None:
        """Listen; ``port`` holds the bound port afterwards.

        Raises:
            HealthPortError: the address is taken (another worker on the host?)
                or may not be used.
        """
        try:
            self._server = await asyncio.start_server(self._serve, self._host, self.port)
        except OSError as exc:
            # asyncio's bind error repeats the address; the errno's text is the cause.
            reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
            raise HealthPortError(
                f"health.port={self.port} on health.host={self._host} is not available "
                f"({reason}; another worker on this host?); set a free port with health.port "
                "in the configuration or GITSTORE_HEALTH_PORT (0 picks one; health.port: null "
                "turns the health server off)"
            ) from exc
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("health server listening", host=self._host, port=self.port)

    async def close(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), timeout=_READ_TIMEOUT_S)
            if len(line) > _MAX_REQUEST_LINE:
                return
            parts = line.decode("latin-1").split()
            # Drain the headers; probes send no body.
            while True:
                header = await asyncio.wait_for(reader.readline(), timeout=_READ_TIMEOUT_S)
                if header in (b"\r\n", b"\n", b""):
                    break
            if len(parts) < 2:
                status, body = 405, "bad request\n"
            elif parts[0] not in ("GET", "HEAD"):
                status, body = 405, "method not allowed\n"
            else:
                handler = self._routes.get(parts[1].split("?", 1)[0])
                status, body = handler() if handler else (404, "not found\n")
            payload = body.encode() if parts and parts[0] != "HEAD" else b""
            writer.write(
                f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
                f"Content-Type: text/plain; charset=utf-8\r\n"
                f"Content-Length: {len(body.encode())}\r\n"
                "Connection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def _readiness(ready: Callable[[], tuple[bool, str]]) -> tuple[int, str]:
    ok, why = ready()
    return (200, "ready\n") if ok else (503, f"not ready: {why}\n")
