"""``gitstore-agents publish EVENT.json``: send a git event as the control plane does.

For trying the system by hand: the file is checked the way the planner will
check it (the ``GitEvent`` contract, the inline blobs against their
``blob_oid``), then published to ``<prefix>.events.git.push.<repository_id>``
with the headers the contract asks for (docs/contracts.md): ``Nats-Msg-Id``
(the ``event_id``), ``Content-Type``, ``GitStore-Schema-Version``,
``traceparent`` and ``X-Request-ID`` (when the event has a ``request_id``).
The payload is the file's bytes, unchanged.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
from pathlib import Path
from typing import Any

import nats.errors
import nats.js.errors

from ..consumers import PublishFailedError
from ..envelopes import (
    EnvelopeError,
    GitEvent,
    decode,
    headers,
    verify_blob,
)
from ..telemetry import configure_logging
from ._config_args import add_connection_arguments, connected, connection_config
from ._files import read_input


def register(commands: Any) -> None:
    """Add the ``publish`` command."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "publish",
        help="send a git event (JSON file) to the events stream, as the control plane does",
        description=(
            "Check EVENT.json against the GitEvent contract (and its inline blobs against their "
            "blob_oid), then publish it to <prefix>.events.git.push.<repository_id> with "
            "Nats-Msg-Id (the event_id), Content-Type, GitStore-Schema-Version, traceparent and "
            "X-Request-ID (the event's request_id, if any). Prints one line: stored (or "
            "duplicate: the same event_id inside the stream's duplicate window), the stream "
            "and its sequence."
        ),
    )
    parser.add_argument("event", type=Path, metavar="EVENT.json", help="the git event")
    parser.add_argument(
        "--traceparent",
        default=None,
        metavar="TRACEPARENT",
        help="W3C trace context to send (default: a new trace; its id is printed)",
    )
    add_connection_arguments(parser, waits_for_answers=True)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``publish``."""
    configure_logging(json=False, level=args.log_level)
    config = connection_config(args)
    path: Path = args.event
    data = read_input(path, "event")
    event = _checked_event(data, path)
    trace = headers.parse_traceparent(args.traceparent or _new_traceparent())
    if trace is None:
        raise EnvelopeError(
            f"--traceparent {args.traceparent!r} is not a W3C traceparent "
            "(00-<32 hex trace id>-<16 hex span id>-<2 hex flags>)",
            field="traceparent",
            code="header-invalid",
        )
    subject = config.topology.subjects.git_push(event.repository_id)
    sent = headers.git_event_headers(event, trace=trace)

    async def go() -> int:
        async with connected(config, "publish") as nc:
            js = nc.jetstream(timeout=args.timeout)
            try:
                ack = await js.publish(subject, data, headers=sent)
            except nats.js.errors.NoStreamResponseError:
                raise PublishFailedError(
                    f"no stream stores {subject}: is the topology provisioned "
                    f"(`gitstore-agents provision`), with topology.prefix "
                    f"{config.topology.prefix!r}?",
                    retryable=False,
                ) from None
            except (nats.errors.TimeoutError, TimeoutError):
                raise PublishFailedError(
                    f"no answer from the events stream within {args.timeout:g}s "
                    f"(publishing to {subject})"
                ) from None
            except nats.js.errors.APIError as exc:
                raise PublishFailedError(
                    f"the events stream refused the event: {exc.description} "
                    f"(err_code {exc.err_code})",
                    retryable=False,
                ) from None
        outcome = "duplicate" if ack.duplicate else "stored"
        sys.stdout.write(
            f"{outcome}: stream={ack.stream} seq={ack.seq} subject={subject} "
            f"event_id={event.event_id} trace_id={trace.trace_id}\n"
        )
        return 0

    return asyncio.run(go())


def _checked_event(data: bytes, path: Path) -> GitEvent:
    """``data`` as a ``GitEvent`` the planner will accept.

    Raises:
        EnvelopeError: naming the file and the offending field.
        BlobMismatchError: an inline blob does not hash to its ``blob_oid``.
    """
    try:
        event = decode(data, GitEvent)
    except EnvelopeError as exc:
        raise EnvelopeError(f"{path}: {exc.message}", field=exc.field, code=exc.code) from None
    for blob in event.blobs:
        if blob.content is not None:
            verify_blob(blob.path, blob.blob_oid, blob.content.encode())
    return event


def _new_traceparent() -> str:
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"
