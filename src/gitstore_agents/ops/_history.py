"""The past inputs of a task kind, as the configuration in force would derive them now.

Preview and backfill both walk history and need the same answer to "what did
this kind run on?":

* ``markdown.compile``: every git event in the events stream (in range),
  planned again by the planner (its blobs resolved, its tasks derived with
  the configured compile module);
* a follow-up kind (``catalog.enrich``, ``extension.run``): every stored
  compile result in the validation stream (in range), whose follow-ups of
  that kind are derived again from the stored output with the configured
  modules (``follow_up_tasks``: the same function the compile role uses).

Each past input is yielded as a ``Derived`` task with the configured module,
so its key is the key a worker of the current configuration would use: if the
module did not change, that slot holds the result already.
"""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator, Sequence

import msgspec
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy

from ..config import EXTENSION_RUN, MARKDOWN_COMPILE, PLANNER
from ..consumers import Delivery
from ..envelopes import TaskRequest, ValidationRequest, decode, slot_token
from ..errors import ConfigError, GitStoreAgentsError
from ..pipeline import Derived, FollowUpSpec, PlannerHandler, TaskHandler, follow_up_tasks
from ..service import Runtime

_READ_TIMEOUT_S = 5.0
_VALIDATION = msgspec.json.Decoder(ValidationRequest)


class Skipped(msgspec.Struct, kw_only=True):
    """History that could not be derived again, by reason (counts and a few examples).

    Attributes:
        counts: Reason to how many.
        examples: Up to ten ``reason: detail`` lines.
    """

    counts: dict[str, int] = msgspec.field(default_factory=dict)
    examples: list[str] = msgspec.field(default_factory=list)

    def add(self, reason: str, detail: str) -> None:
        """Count one skipped input."""
        self.counts[reason] = self.counts.get(reason, 0) + 1
        if len(self.examples) < 10:
            self.examples.append(f"{reason}: {detail}")


class Window(msgspec.Struct, frozen=True, kw_only=True):
    """Which part of history: stored at or after ``since``, before ``until``.

    Attributes:
        since: Earliest storage time (None: from the start).
        until: Latest storage time, exclusive (None: up to now).
        extension: For ``extension.run``: only this extension's inputs (an
            upgrade of one extension leaves the others' results alone).
    """

    since: datetime.datetime | None = None
    until: datetime.datetime | None = None
    extension: str | None = None

    def before(self, at: datetime.datetime) -> bool:
        """Whether ``at`` is past the window's end."""
        return self.until is not None and at >= self.until


def compile_role(runtime: Runtime) -> TaskHandler:
    """The handler running ``markdown.compile`` (whose follow-ups are the other kinds).

    Raises:
        ConfigError: no role in ``runtime`` runs ``markdown.compile``.
    """
    return task_handler(runtime, MARKDOWN_COMPILE)


def task_handler(runtime: Runtime, kind: str) -> TaskHandler:
    """The handler of the role that runs ``kind`` in ``runtime``.

    Raises:
        ConfigError: no role in ``runtime`` runs ``kind``.
    """
    for handler in runtime.handlers.values():
        if isinstance(handler, TaskHandler) and kind in handler.settings.kinds:
            return handler
    raise ConfigError(f"--kind {kind}: no configured role runs it")


def follow_up_spec(runtime: Runtime, kind: str, extension: str | None = None) -> FollowUpSpec:
    """How the compile role derives follow-ups of ``kind`` now (of one ``extension``).

    Raises:
        ConfigError: ``kind`` is not a configured follow-up of ``markdown.compile``,
            or ``extension`` is given for another kind or is not configured.
    """
    if extension is not None and kind != EXTENSION_RUN:
        raise ConfigError(f"--extension applies to {EXTENSION_RUN}, not to {kind}")
    for spec in compile_role(runtime).settings.follow_ups:
        if spec.kind != kind:
            continue
        if extension is None:
            return spec
        chosen = tuple(e for e in spec.extensions if e[0].name == extension)
        if not chosen:
            names = sorted(e.name for e, _ in spec.extensions)
            raise ConfigError(
                f"--extension {extension}: not configured; configured extensions: {names}"
            )
        return msgspec.structs.replace(spec, extensions=chosen)
    raise ConfigError(
        f"--kind {kind}: not a follow-up of markdown.compile in this configuration "
        "(roles.markdown-compiler.follow_ups)"
    )


async def past_inputs(
    runtime: Runtime, kind: str, window: Window, skipped: Skipped
) -> AsyncIterator[Derived]:
    """Every past input of ``kind`` in ``window``, derived with the configured modules.

    Raises:
        ConfigError: ``kind`` is not run (or, for follow-ups, not derived) here.
    """
    if kind == MARKDOWN_COMPILE:
        if window.extension is not None:
            raise ConfigError(f"--extension applies to {EXTENSION_RUN}, not to {kind}")
        async for derived in _from_events(runtime, window, skipped):
            yield derived
        return
    spec = follow_up_spec(runtime, kind, window.extension)
    async for derived in _from_compile_results(runtime, spec, window, skipped):
        yield derived


async def _from_events(
    runtime: Runtime, window: Window, skipped: Skipped
) -> AsyncIterator[Derived]:
    topology = runtime.config.topology
    async for msg in _read(runtime, topology.events_stream, topology.subjects.events_all(), window):
        seq = msg.metadata.sequence.stream
        delivery = Delivery(
            subject=msg.subject,
            data=msg.data,
            headers=dict(msg.headers or {}),
            stream=topology.events_stream,
            stream_seq=seq,
            consumer="history",
        )
        try:
            tasks = await planned_tasks(runtime, delivery)
        except GitStoreAgentsError as exc:
            skipped.add(exc.code, f"event at seq {seq}: {exc.message[:200]}")
            continue
        for derived in tasks:
            yield derived


async def planned_tasks(runtime: Runtime, delivery: Delivery) -> list[Derived]:
    """The compile tasks the planner derives from the git event ``delivery`` now.

    Raises:
        ConfigError: no planner is configured.
        GitStoreAgentsError: the event is refused (its code says why).
    """
    planner = runtime.handlers.get(PLANNER)
    if not isinstance(planner, PlannerHandler):
        raise ConfigError("--kind markdown.compile: derives from git events, needs the planner")
    _, tasks = await planner.plan(delivery)
    return tasks


async def _from_compile_results(
    runtime: Runtime, spec: FollowUpSpec, window: Window, skipped: Skipped
) -> AsyncIterator[Derived]:
    topology = runtime.config.topology
    subject = f"{topology.prefix}.validation.{MARKDOWN_COMPILE}.*"
    async for msg in _read(runtime, topology.validation_stream, subject, window):
        seq = msg.metadata.sequence.stream
        try:
            request = _VALIDATION.decode(msg.data)
            for derived in await follow_ups_of(runtime, request, [spec]):
                yield derived
        except ParentTaskGoneError as exc:
            skipped.add("parent-task-gone", exc.message)
        except GitStoreAgentsError as exc:
            skipped.add(exc.code, f"result at seq {seq}: {exc.message}")
        except msgspec.DecodeError as exc:
            skipped.add("envelope-invalid", f"result at seq {seq}: {exc}")


class ParentTaskGoneError(GitStoreAgentsError):
    """A compile result's task is no longer stored, so its follow-ups cannot be derived."""

    code = "parent-task-gone"
    retryable = False


async def follow_ups_of(
    runtime: Runtime, request: ValidationRequest, specs: Sequence[FollowUpSpec] | None = None
) -> list[Derived]:
    """The follow-ups of the stored compile result ``request``, with the configured modules.

    The follow-ups' fields come from the compile task (its logical time above
    all: the module's clock), read from its slot; the output from the result.

    Args:
        runtime: A built runtime with the compile role.
        request: A stored ``markdown.compile`` validation request.
        specs: Which follow-ups (default: every one the compile role derives).

    Raises:
        ParentTaskGoneError: the compile task is no longer in the tasks stream.
        GitStoreAgentsError: the output cannot be read back.
    """
    topology, results = runtime.config.topology, runtime.results
    assert results is not None
    compiler = compile_role(runtime)
    parent_msg = await results.last(
        topology.tasks_stream,
        topology.subjects.task(MARKDOWN_COMPILE, slot_token(request.idempotency_key)),
    )
    if parent_msg is None:
        raise ParentTaskGoneError(
            f"{request.idempotency_key} ({request.path}): its compile task is no longer "
            "in the tasks stream (retention)"
        )
    parent = decode(parent_msg.data, TaskRequest)
    output = await compiler.output_of(request)
    return follow_up_tasks(parent, output, compiler.settings.follow_ups if specs is None else specs)


async def _read(runtime: Runtime, stream: str, subject: str, window: Window) -> AsyncIterator[Msg]:
    """Every message on ``subject`` in ``stream`` stored inside ``window``, oldest first."""
    js = runtime.js
    info = await js.stream_info(stream)
    if info.state.messages == 0:
        return
    config = (
        ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=window.since)
        if window.since is not None
        else ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
    )
    sub = await js.subscribe(subject, stream=stream, ordered_consumer=True, config=config)
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=_READ_TIMEOUT_S)
            except TimeoutError:
                return  # nothing (more) on the subject
            meta = msg.metadata
            if window.before(meta.timestamp):
                return
            yield msg
            if meta.num_pending == 0:
                return
    finally:
        await sub.unsubscribe()


async def configured_module(runtime: Runtime, kind: str, window: Window) -> str:
    """The digest of the module the configuration runs ``kind`` (or the extension) with."""
    assert runtime.modules is not None
    if window.extension is not None:
        (_, digest), *_ = follow_up_spec(runtime, kind, window.extension).extensions
        return digest
    _, kind_config = runtime.config.kind(kind)
    return await runtime.modules.digest(kind_config.module)
