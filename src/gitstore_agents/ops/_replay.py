"""Replay history: re-execute a stream's messages, or verify they still produce the same bytes.

Without ``verify`` each message goes through its role's handler exactly as a
worker would (the publish boundary, the slots): work whose result is stored
finds its slot taken and stores nothing new, work for a new module digest
runs fresh. With ``verify`` nothing is published: each task (and, for git
events, each follow-up) is run in-process and its output digest compared
with the validation request stored in its slot — a difference means a
module is not deterministic.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
from nats.js.api import ConsumerConfig, DeliverPolicy

from ..config import PLANNER
from ..consumers import Delivery, Settle
from ..envelopes import TaskRequest, ValidationRequest, decode, slot_token
from ..errors import ConfigError, GitStoreAgentsError
from ..pipeline import Derived, PlannerHandler, TaskHandler, follow_up_tasks
from ..service import Runtime

_READ_TIMEOUT_S = 5.0
_VALIDATION = msgspec.json.Decoder(ValidationRequest)


class Mismatch(msgspec.Struct, frozen=True, kw_only=True):
    """A task whose replayed output differs from the result stored in its slot.

    Attributes:
        idempotency_key: The task's key.
        kind: Its kind.
        path: Its catalog file.
        stored_state: ``succeeded`` or ``failed`` (what its slots hold).
        stored_digest: The stored output digest (``succeeded``).
        replay_code: What the replay came to (``ok`` or a failure code).
        replay_digest: The replayed output's digest (``ok``).
    """

    idempotency_key: str
    kind: str
    path: str
    stored_state: str
    stored_digest: str | None
    replay_code: str
    replay_digest: str | None


class ReplayReport(msgspec.Struct, kw_only=True):
    """What a replay did.

    Attributes:
        stream: Stream replayed.
        from_seq: First sequence.
        to_seq: Last sequence considered.
        messages: Messages read.
        settled: (re-execute) how the handlers settled them: ack/term/nak.
        verified: (verify) tasks run and compared.
        matched: (verify) tasks whose replay equals the stored result.
        not_stored: (verify) tasks with no stored result (never finished).
        mismatches: (verify) tasks whose replay differs from the stored result.
        errors: Messages that could not be read as envelopes.
    """

    stream: str
    from_seq: int
    to_seq: int
    messages: int = 0
    settled: dict[str, int] = msgspec.field(default_factory=dict)
    verified: int = 0
    matched: int = 0
    not_stored: int = 0
    mismatches: list[Mismatch] = msgspec.field(default_factory=list)
    errors: list[str] = msgspec.field(default_factory=list)


async def replay_stream(
    runtime: Runtime,
    stream: str,
    from_seq: int,
    *,
    to_seq: int | None = None,
    verify: bool = False,
    on_message: Callable[[int], None] | None = None,
) -> ReplayReport:
    """Replay ``stream`` (``EVENTS``, ``TASKS`` or a full name) from ``from_seq``.

    ``runtime`` must be started (or at least built) with the roles the stream
    needs: the planner for events; for tasks (and ``verify`` of events) the
    task roles.

    Raises:
        ConfigError: the stream is not the events or tasks stream, or a needed
            role is not in ``runtime``.
    """
    topology = runtime.config.topology
    name = topology.stream_alias(stream)
    if name == topology.events_stream:
        subject = topology.subjects.events_all()
    elif name == topology.tasks_stream:
        subject = topology.subjects.tasks_all()
    else:
        raise ConfigError(f"--stream {stream}: replay reads the events or the tasks stream")
    js = runtime.js
    info = await js.stream_info(name)
    last = min(to_seq, info.state.last_seq) if to_seq else info.state.last_seq
    report = ReplayReport(stream=name, from_seq=from_seq, to_seq=last)
    if from_seq > last or info.state.messages == 0:
        return report
    sub = await js.subscribe(
        subject,
        stream=name,
        ordered_consumer=True,
        config=ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=max(from_seq, 1)
        ),
    )
    try:
        while True:
            msg = await sub.next_msg(timeout=_READ_TIMEOUT_S)
            meta = msg.metadata
            if meta.sequence.stream > last:
                break
            delivery = Delivery(
                subject=msg.subject,
                data=msg.data,
                headers=dict(msg.headers or {}),
                stream=name,
                stream_seq=meta.sequence.stream,
                consumer="replay",
            )
            report.messages += 1
            if verify:
                await _verify(runtime, delivery, name == topology.events_stream, report)
            else:
                await _reexecute(runtime, delivery, name == topology.events_stream, report)
            if on_message is not None:
                on_message(meta.sequence.stream)
            if meta.sequence.stream >= last or meta.num_pending == 0:
                break
    finally:
        await sub.unsubscribe()
    return report


async def _reexecute(
    runtime: Runtime, delivery: Delivery, event: bool, report: ReplayReport
) -> None:
    if event:
        handler = runtime.handlers.get(PLANNER)
    else:
        handler = _task_handler(runtime, _kind(delivery, report))
    if handler is None:
        report.errors.append(f"seq {delivery.stream_seq}: no role in this process handles it")
        return
    decision = await handler(delivery)
    report.settled[str(decision.settle)] = report.settled.get(str(decision.settle), 0) + 1
    if decision.settle is Settle.NAK:
        report.errors.append(f"seq {delivery.stream_seq}: {decision.code}: {decision.reason}")


async def _verify(runtime: Runtime, delivery: Delivery, event: bool, report: ReplayReport) -> None:
    try:
        if event:
            planner = runtime.handlers.get(PLANNER)
            if not isinstance(planner, PlannerHandler):
                raise ConfigError("replay --verify of events needs the planner role")
            _, queue = await planner.plan(delivery)
            tasks = [d.task for d in queue]
        else:
            tasks = [decode(delivery.data, TaskRequest)]
    except GitStoreAgentsError as exc:
        report.errors.append(f"seq {delivery.stream_seq}: {exc}")
        return
    while tasks:
        task = tasks.pop(0)
        handler = _task_handler(runtime, task.kind)
        if handler is None:
            report.errors.append(f"task {task.task_id}: no role in this process runs {task.kind}")
            continue
        execution = await handler.execute(task)
        report.verified += 1
        state, digest = await _stored(runtime, task)
        if state is None:
            report.not_stored += 1
        elif (state == "succeeded") == execution.ok and (
            state == "failed" or digest == execution.output_digest
        ):
            report.matched += 1
        else:
            report.mismatches.append(
                Mismatch(
                    idempotency_key=task.idempotency_key,
                    kind=task.kind,
                    path=task.path,
                    stored_state=state,
                    stored_digest=digest,
                    replay_code=execution.code,
                    replay_digest=execution.output_digest,
                )
            )
        if event and execution.ok:
            # Follow-ups descend from this output: verify them as well.
            follow_ups: list[Derived] = follow_up_tasks(
                task, execution.raw, handler.settings.follow_ups
            )
            tasks += [f.task for f in follow_ups]


async def _stored(runtime: Runtime, task: TaskRequest) -> tuple[str | None, str | None]:
    """What ``task``'s slots hold: (``succeeded``, digest), (``failed``, None) or (None, None)."""
    assert runtime.results is not None
    topology = runtime.config.topology
    subjects = topology.subjects
    done = await runtime.results.last(
        topology.validation_stream, subjects.validation(task.kind, task.idempotency_key)
    )
    if done is not None:
        return "succeeded", _VALIDATION.decode(done.data).output_digest
    failed = await runtime.results.last(
        topology.failures_stream, subjects.failure(task.kind, slot_token(task.idempotency_key))
    )
    return ("failed", None) if failed is not None else (None, None)


def _task_handler(runtime: Runtime, kind: str) -> TaskHandler | None:
    for handler in runtime.handlers.values():
        if isinstance(handler, TaskHandler) and kind in handler.settings.kinds:
            return handler
    return None


def _kind(delivery: Delivery, report: ReplayReport) -> str:
    try:
        return decode(delivery.data, TaskRequest).kind
    except GitStoreAgentsError as exc:
        report.errors.append(f"seq {delivery.stream_seq}: {exc}")
        return ""
