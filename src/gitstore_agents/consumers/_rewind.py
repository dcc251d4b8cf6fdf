"""Rewinding a role's durable: deliver again from a stream sequence or a point in time.

Two ways, both keeping every setting the role owns (ack wait, backoff, max
deliver, max ack pending, filter):

* **reset** (nats-server 2.14 and later): ``$JS.API.CONSUMER.RESET.<stream>.<durable>``
  moves the durable's next delivery to the sequence, in place. Nothing else
  about the consumer changes, workers keep their pull requests, and a late
  ack of a delivery from before the reset is ignored by the server, so the
  role's workers may keep running.
* **recreate** (older servers): delete the durable and create it again from
  the role's settings, starting at the sequence (``by_start_sequence``). A
  running worker would miss the moment the durable is gone: pause the role
  first.

A rewound durable delivers messages its role has already processed; their
results are in their slots, so each finds its slot taken and nothing new is
stored (docs/operations.md, "Replay").
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Literal

import msgspec
import nats.errors
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import APIError, NotFoundError, ServiceUnavailableError

from ..errors import GitStoreAgentsError
from ._topology import ConsumerSpec

RewindMethod = Literal["reset", "recreate"]

# JetStream's "no message found" (a message get past the last sequence).
_NO_MESSAGE = 10037


class RewindError(GitStoreAgentsError):
    """A durable could not be rewound (missing, refused by the server, no reset API)."""

    code = "rewind-failed"
    retryable = False


class Rewound(msgspec.Struct, frozen=True, kw_only=True):
    """What a rewind did.

    Attributes:
        stream: The durable's stream.
        durable: The durable consumer.
        seq: The stream sequence it delivers next.
        method: ``reset`` (in place) or ``recreate`` (deleted and created again).
        num_pending: Messages of its filter from there on, as the rewind left
            it (the server's count at the reset; its role's workers may
            already be delivering them).
    """

    stream: str
    durable: str
    seq: int
    method: RewindMethod
    num_pending: int


async def sequence_at(js: JetStreamContext, stream: str, when: dt.datetime) -> int:
    """The first sequence ``stream`` stored at or after ``when`` (past its last if none)."""
    moment = when.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    request = json.dumps({"start_time": moment}).encode()
    try:
        answer = await _api(js, f"STREAM.MSG.GET.{stream}", request)
    except APIError as exc:
        if exc.err_code != _NO_MESSAGE:
            raise
        info = await js.stream_info(stream)
        return info.state.last_seq + 1
    return int(answer["message"]["seq"])


async def rewind_consumer(
    js: JetStreamContext, spec: ConsumerSpec, seq: int, *, recreate: bool = False
) -> Rewound:
    """Make ``spec``'s durable deliver again from stream sequence ``seq``.

    Args:
        js: JetStream context.
        spec: The role's consumer (its settings, for ``recreate``).
        seq: First stream sequence to deliver (1: everything the stream holds).
        recreate: Delete and create the durable instead of resetting it (for
            servers without the reset API; pause the role's workers first).

    Raises:
        RewindError: the durable does not exist, the server has no reset API
            (without ``recreate``), or the server refused the rewind.
    """
    where = f"{spec.stream}/{spec.durable}"
    try:
        info = await js.consumer_info(spec.stream, spec.durable)
    except NotFoundError:
        raise RewindError(
            f"consumer {where} does not exist: run `gitstore-agents provision`"
        ) from None
    last = (await js.stream_info(spec.stream)).state.last_seq
    if seq > last + 1:
        # The server would accept it, and the role would skip every message
        # stored before the stream reaches that sequence.
        raise RewindError(
            f"sequence {seq} is past the end of {spec.stream} (last sequence {last}): "
            f"rewind to at most {last + 1}"
        )
    if recreate:
        pending = await _recreate(js, spec, seq, info.config)
        method: RewindMethod = "recreate"
    else:
        pending = await _reset(js, spec, seq, info.config)
        method = "reset"
    return Rewound(
        stream=spec.stream, durable=spec.durable, seq=seq, method=method, num_pending=pending
    )


async def _recreate(
    js: JetStreamContext, spec: ConsumerSpec, seq: int, previous: ConsumerConfig
) -> int:
    """Delete the durable and create it at ``seq`` with the role's settings.

    If the create fails the durable is put back as it was, so a failed
    rewind never leaves the role without its consumer.
    """
    where = f"{spec.stream}/{spec.durable}"
    config = spec.apply(
        ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=seq)
    )
    await js.delete_consumer(spec.stream, spec.durable)
    try:
        created = await js.add_consumer(spec.stream, config)
    except (APIError, nats.errors.Error, TimeoutError) as exc:
        try:
            await js.add_consumer(spec.stream, previous)
        except (APIError, nats.errors.Error, TimeoutError):
            raise RewindError(
                f"{where} was deleted and could not be created again ({exc!r}): run "
                "`gitstore-agents provision` to create it with the role's settings"
            ) from None
        raise RewindError(
            f"creating {where} at sequence {seq} failed ({exc!r}); it was put back as it was"
        ) from None
    return created.num_pending or 0


async def _reset(js: JetStreamContext, spec: ConsumerSpec, seq: int, config: ConsumerConfig) -> int:
    """Reset the durable to ``seq``; the messages it holds from there (pending or delivered)."""
    where = f"{spec.stream}/{spec.durable}"
    request = json.dumps({"seq": seq}).encode()
    try:
        answer = await _api(js, f"CONSUMER.RESET.{spec.stream}.{spec.durable}", request)
    except ServiceUnavailableError:
        raise RewindError(
            f"the server has no consumer reset API for {where} (it needs nats-server 2.14 or "
            "later): pause the role's workers, then run again with --recreate"
        ) from None
    except APIError as exc:
        start = config.opt_start_seq
        hint = (
            f" (the durable starts at sequence {start}, {config.deliver_policy}: it cannot "
            "go below; use --recreate with the role paused)"
            if start
            else ""
        )
        raise RewindError(
            f"the server refused to reset {where} to sequence {seq}: {exc.description}{hint}"
        ) from None
    except nats.errors.TimeoutError:
        raise RewindError(f"no answer to the reset of {where}") from None
    reset_to = int(answer.get("reset_seq") or 0)
    if reset_to != seq:
        raise RewindError(f"the server reset {where} to sequence {reset_to}, not {seq}")
    # The answer's consumer info is taken as the reset is done: what a running
    # worker was handed since is unacknowledged, not gone.
    return int(answer.get("num_pending") or 0) + int(answer.get("num_ack_pending") or 0)


async def _api(js: JetStreamContext, subject: str, request: bytes) -> dict[str, Any]:
    """One JetStream API request (``$JS.API.<subject>``); errors raised as nats-py's.

    nats-py has no call for a consumer reset or a message get by time: this
    goes through its own request helper, with its API prefix and timeout.
    """
    return await js._api_request(f"{js._prefix}.{subject}", request, timeout=js._timeout)
