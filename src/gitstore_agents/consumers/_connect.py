"""Connecting to NATS: one helper for workers and operator commands alike.

``connect`` makes one bounded attempt: every server of ``nats.url`` is tried
once, within ``nats.connect_timeout_s`` in all, and a failure is one
``NatsUnreachableError`` naming the URL, the cause and what to check. Once
connected, the client reconnects forever (a worker rides out server
restarts). Whoever wants to wait for a server that is not up yet retries
``connect`` itself (the worker does, until it is stopped), so every retry is
visible to its caller and can be interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import nats.errors
from nats.aio.client import Client

from ..config import NatsSettings
from ..errors import ConfigError, GitStoreAgentsError

Callback = Callable[..., Awaitable[None]]

# How often an abandoned connection attempt is cancelled again until it ends.
_CANCEL_CHECK_S = 0.05


class NatsUnreachableError(GitStoreAgentsError):
    """No server of ``nats.url`` accepted a connection within the connect timeout.

    Attributes:
        cause: The last attempt's error, in a few words (``connection refused``).
    """

    code = "nats-unreachable"
    retryable = True

    def __init__(self, message: str, *, cause: str) -> None:
        super().__init__(message)
        self.cause = cause


def connect_options(settings: NatsSettings, *, name: str) -> dict[str, Any]:
    """Keyword arguments for ``Client.connect``: servers, auth, reconnects, inbox prefix.

    Reconnection never gives up (``max_reconnect_attempts=-1``): a worker rides
    out server restarts instead of exiting.
    """
    options: dict[str, Any] = {
        "servers": servers_of(settings),
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
    context = tls_context(settings)
    if context is not None:
        options["tls"] = context
        if settings.tls_server_name:
            options["tls_hostname"] = settings.tls_server_name
    return options


def uses_tls(settings: NatsSettings) -> bool:
    """True when ``settings`` ask for TLS: any ``tls_*`` setting, or a ``tls://`` URL.

    A server name or a key alone asks for TLS too: connecting in the clear
    because one TLS option was given without another would be the worst reading.
    """
    return bool(
        settings.tls_ca_file
        or settings.tls_cert_file
        or settings.tls_key_file
        or settings.tls_server_name
        or any(url.startswith("tls://") for url in servers_of(settings))
    )


def tls_context(settings: NatsSettings) -> ssl.SSLContext | None:
    """The TLS context of ``settings`` (None when they ask for no TLS).

    The server's certificate is checked against ``tls_ca_file`` (else the
    system's trust store) and its name against the URL's host (or
    ``tls_server_name``); the client presents ``tls_cert_file`` when set.

    Raises:
        ConfigError: a file cannot be read, or holds no certificate or key.
    """
    if not uses_tls(settings):
        return None
    _check_readable(settings)
    try:
        context = ssl.create_default_context(cafile=settings.tls_ca_file)
        if settings.tls_cert_file and settings.tls_key_file:
            context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
    except ssl.SSLError as exc:
        raise ConfigError(
            f"nats TLS files ({_tls_files(settings)}) cannot be used: "
            f"{getattr(exc, 'reason', None) or exc}; "
            f"{_CHECK_TLS}"
        ) from None
    except OSError as exc:
        # A directory where a file was expected, a file that vanished since the check.
        raise ConfigError(
            f"nats TLS files ({_tls_files(settings)}) cannot be read: "
            f"{exc.strerror or exc}: {exc.filename}; {_CHECK_TLS}"
        ) from None
    if not settings.tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def servers_of(settings: NatsSettings) -> list[str]:
    """The server URLs of ``settings.url`` (comma-separated for a cluster)."""
    return [url.strip() for url in settings.url.split(",") if url.strip()]


async def connect(settings: NatsSettings, *, name: str, **callbacks: Callback) -> Client:
    """Connect with ``settings``: each server tried once, ``connect_timeout_s`` in all.

    ``callbacks`` (``error_cb``, ``disconnected_cb``, ...) are nats-py's; they
    hear about the connection once it is made, not about the failed attempts
    before (those make up the error raised instead). Cancelling the call closes
    the half-made client, so nothing keeps retrying in the background.

    Raises:
        ConfigError: ``nats.creds_file`` cannot be read (no attempt is made).
        NatsUnreachableError: no server accepted the connection in time.
    """
    _check_readable(settings)
    options = connect_options(settings, name=name)
    servers = len(options["servers"])
    client = Client()
    failures: list[BaseException] = []
    every_server_failed = asyncio.Event()
    connected = False

    async def on_attempt_error(exc: Exception) -> None:
        if connected:
            forward = callbacks.get("error_cb")
            if forward is not None:
                await forward(exc)
            return
        # nats-py reports each failed attempt here and, with unlimited
        # reconnects, goes on to the next server (or the same one) forever: stop
        # once each server has had its chance.
        failures.append(_dropped_for(client, exc, settings) or exc)
        if len(failures) >= servers:
            every_server_failed.set()

    def once_connected(callback: Callback) -> Callback:
        # A failed attempt also "disconnects" and "closes" the client: callers
        # care about the connection they were given, not about those.
        async def forward(*args: Any) -> None:
            if connected:
                await callback(*args)

        return forward

    options.update({key: once_connected(cb) for key, cb in callbacks.items()})
    options["error_cb"] = on_attempt_error
    attempt = asyncio.ensure_future(client.connect(**options))
    gave_up = asyncio.ensure_future(every_server_failed.wait())
    try:
        await asyncio.wait(
            {attempt, gave_up},
            timeout=settings.connect_timeout_s,
            return_when=asyncio.FIRST_COMPLETED,
        )
    except BaseException:
        await _abandon(client, attempt, gave_up)
        raise
    if attempt.done() and not attempt.cancelled():
        error = attempt.exception()
        if error is None:
            gave_up.cancel()
            if uses_tls(settings) and not (client._server_info or {}).get("tls_required"):
                # nats-py upgrades to TLS only when the server asks: never run
                # in the clear on a configuration that says TLS.
                await _abandon(client, attempt, gave_up)
                raise NatsUnreachableError(
                    f"NATS at {settings.url} does not use TLS, but nats.tls_* (or a tls:// "
                    f"URL) asks for it; {_CHECK_TLS}",
                    cause="server without TLS",
                )
            connected = True
            return client
        failures.append(error)
    await _abandon(client, attempt, gave_up)
    raise _unreachable(settings, failures[-1] if failures else None)


def _unreachable(settings: NatsSettings, last: BaseException | None) -> NatsUnreachableError:
    """The error for a failed connect to ``settings.url`` whose last attempt raised ``last``."""
    cause, hint = _explain(last)
    if hint is _CHECK_TLS:
        return NatsUnreachableError(
            f"TLS with NATS at {settings.url} failed ({cause.removeprefix('TLS: ')}); {hint}",
            cause=cause,
        )
    if hint is _CHECK_AUTH:
        # The server answered: it is the identity, not the address, that is wrong.
        return NatsUnreachableError(
            f"NATS at {settings.url} refused the connection ({cause}); {hint}", cause=cause
        )
    return NatsUnreachableError(
        f"cannot reach NATS at {settings.url} within {settings.connect_timeout_s:g}s "
        f"({cause}); {hint}",
        cause=cause,
    )


async def _abandon(client: Client, *tasks: asyncio.Future[Any]) -> None:
    for task in tasks:
        # Python 3.11's asyncio.wait_for (nats-py's per-step timeouts) drops a
        # cancellation that lands just as the step it waits for completes, and
        # the attempt would go on to its next step: cancel until it is done.
        while not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=_CANCEL_CHECK_S)
        if not task.cancelled():
            task.exception()  # retrieved: never logged as "exception never retrieved"
    # Stops the client's reader, flusher and pinger tasks and its socket, if any
    # were started, so nothing runs (or logs) after the command gave up.
    with contextlib.suppress(Exception):
        await client.close()


_CHECK_URL = "check --nats-url / nats.url and that the server is running"
_CHECK_AUTH = "check --creds / nats.creds_file (or nats.user and nats.password)"
_CHECK_TLS = (
    "check --tls-ca, --tls-cert, --tls-key, --tls-server-name / nats.tls_ca_file, "
    "nats.tls_cert_file, nats.tls_key_file, nats.tls_server_name"
)


def _dropped_for(client: Client, exc: Exception, settings: NatsSettings) -> Exception | None:
    """What it means when ``exc`` is the server dropping the client during the handshake.

    A server that refuses credentials sends ``-ERR 'Authorization Violation'``
    and closes; when the client's PING arrives after the close, the reset wins
    and the error line is lost, so all the client sees is "connection reset".
    A server that verifies client certificates (TLS 1.3) refuses a missing or
    unknown one after the client's side of the handshake is done, so the client
    may see only a broken pipe where the alert was. The server's INFO
    (``tls_verify``, ``auth_required``) says which it was: an ``SSLError`` or
    an ``AuthorizationError``.
    """
    info = getattr(client, "_server_info", None) or {}
    dropped = isinstance(exc, ConnectionResetError | BrokenPipeError | ConnectionAbortedError)
    if not dropped:
        return None
    if info.get("tls_verify") and not settings.tls_cert_file:
        return ssl.SSLError("client certificate required (the server verifies client certificates)")
    if info.get("auth_required"):
        return nats.errors.AuthorizationError()
    if info.get("tls_verify"):
        return ssl.SSLError("client certificate refused (the server verifies client certificates)")
    return None


def _explain(exc: BaseException | None) -> tuple[str, str]:
    """(what went wrong in a few words, what to check) for a failed attempt."""
    if exc is None or isinstance(exc, TimeoutError):
        return "no answer", _CHECK_URL
    if isinstance(exc, nats.errors.AuthorizationError) or "authorization" in str(exc).lower():
        return "authorization violation", _CHECK_AUTH
    if isinstance(exc, ssl.SSLError):
        return _explain_tls(exc), _CHECK_TLS
    return _explain_socket(exc), _CHECK_URL


def _explain_socket(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host: {exc.strerror or exc}"
    if isinstance(exc, OSError):
        return (exc.strerror or str(exc) or type(exc).__name__).lower()
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _explain_tls(exc: ssl.SSLError) -> str:
    # "certificate verify failed: unable to get local issuer certificate", or
    # the alert a server sent ("tlsv13 alert certificate required").
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return f"TLS: certificate verify failed: {exc.verify_message}"
    # An SSLError made here (a dropped handshake) has no reason attribute.
    reason = getattr(exc, "reason", None) or str(exc)
    return f"TLS: {reason.lower().replace('_', ' ')}"


def _check_readable(settings: NatsSettings) -> None:
    # nats-py reads the creds file during the handshake and would report a
    # missing one as a failed connection; name the file instead.
    for field, path, option in (
        ("creds_file", settings.creds_file, "--creds"),
        ("tls_ca_file", settings.tls_ca_file, "--tls-ca"),
        ("tls_cert_file", settings.tls_cert_file, "--tls-cert"),
        ("tls_key_file", settings.tls_key_file, "--tls-key"),
    ):
        if path and not (os.path.isfile(path) and os.access(path, os.R_OK)):
            if not os.path.exists(path):
                reason = "no such file"
            elif os.path.isdir(path):
                reason = "a directory, not a file"
            else:
                reason = "not readable"
            raise ConfigError(f"nats.{field} {path}: {reason}; check {option} / nats.{field}")


def _tls_files(settings: NatsSettings) -> str:
    files = (settings.tls_ca_file, settings.tls_cert_file, settings.tls_key_file)
    return ", ".join(path for path in files if path) or "the system's trust store"
