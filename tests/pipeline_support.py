"""The pipeline without a server: an in-memory stand-in for the slot streams, a recording publisher.

``MemoryStreams`` keeps what was published, by subject, and plays the one
rule of the slot streams the pipeline relies on: a subject of the tasks,
validation or failures stream holds one message, and a second publish to it
is answered "slot taken". It is both the role's ``Publisher`` and its
``ResultStore``. It does not imitate anything else of JetStream: whether a
real server keeps that rule is what the real-server tests check
(``test_slots.py``).

``pipeline(...)`` builds a ``TaskHandler`` or ``PlannerHandler`` wired the way
the runtime wires them, around a real sandbox and real modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgspec

from gitstore_agents.config import (
    EXTENSION_RUN,
    MARKDOWN_COMPILE,
    MARKDOWN_COMPILER,
    PLANNER,
    ExtensionConfig,
    LimitsConfig,
    Topology,
)
from gitstore_agents.consumers import Delivery, Published, StoredMessage
from gitstore_agents.envelopes import (
    FailureDiagnostic,
    Limits,
    TaskRequest,
    headers,
    slot_token,
)
from gitstore_agents.guardrails import (
    BasicAdmission,
    KindAllowance,
    Outbound,
    Policy,
    PolicyAdmission,
    PolicyOutputCheck,
    default_policy,
)
from gitstore_agents.pipeline import (
    AuditLog,
    FollowUpSpec,
    ModuleLoader,
    PlannerHandler,
    Reporter,
    SandboxOffload,
    TaskHandler,
    TaskSettings,
)
from gitstore_agents.sandbox import ModuleRegistry, Sandbox, module_digest
from gitstore_agents.telemetry import DecisionRecord, LogObserver

from .runtime_support import runtime_config

TOPOLOGY = Topology(prefix="mem")
_SLOT_PREFIXES = tuple(f"mem.{what}." for what in ("tasks", "validation", "failures", "dlq"))


class Sent(msgspec.Struct, frozen=True):
    """One message as it was published."""

    subject: str
    payload: bytes
    headers: dict[str, str]


class MemoryStreams:
    """Slot streams in memory: a ``Publisher`` and a ``ResultStore``.

    Attributes:
        sent: Every publish attempt, in order (stored or refused).
        kept: Every message stored, in order.
        stored: Subject to the messages stored on it.
        fail: Raised by the next publishes while set (to play an outage).
    """

    def __init__(self, *, max_payload: int = 1024 * 1024) -> None:
        self.sent: list[Sent] = []
        self.kept: list[Sent] = []
        self.stored: dict[str, list[Sent]] = {}
        self.fail: Exception | None = None
        self.max_payload = max_payload
        self._seq = 0

    async def publish(self, messages: Sequence[Outbound], *, span: bool = True) -> list[Published]:
        """Store ``messages``; a slot subject that holds one already answers ``occupied``."""
        await asyncio.sleep(0)  # a publish is never synchronous
        if self.fail is not None:
            raise self.fail
        out = []
        for message in messages:
            sent = Sent(message.subject, message.payload, dict(message.headers))
            self.sent.append(sent)
            held = self.stored.setdefault(message.subject, [])
            if held and message.subject.startswith(_SLOT_PREFIXES):
                out.append(Published(subject=message.subject, occupied=True))
                continue
            self._seq += 1
            held.append(sent)
            self.kept.append(sent)
            out.append(Published(subject=message.subject, stream="MEM", seq=self._seq))
        return out

    async def last(self, stream: str, subject: str) -> StoredMessage | None:
        """The last message stored on ``subject``."""
        held = self.stored.get(subject)
        if not held:
            return None
        return StoredMessage(
            stream=stream,
            subject=subject,
            seq=self._seq,
            data=held[-1].payload,
            headers=held[-1].headers,
        )

    def on(self, prefix: str) -> list[Sent]:
        """Every stored message whose subject starts with ``prefix``, in publish order."""
        return [m for m in self.kept if m.subject.startswith(prefix)]

    def diagnostics(self) -> list[FailureDiagnostic]:
        """Every stored diagnostic."""
        return [
            msgspec.json.decode(m.payload, type=FailureDiagnostic) for m in self.on("mem.failures.")
        ]


class RecordingObserver(LogObserver):
    """The default observer, keeping every decision."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[DecisionRecord] = []

    def decided(self, record: DecisionRecord) -> None:
        """Keep ``record``, then log and count it."""
        self.records.append(record)
        super().decided(record)


def reporter(streams: MemoryStreams, role: str, observer: RecordingObserver) -> Reporter:
    """The report path of ``role`` over ``streams``."""
    return Reporter(
        role=role,
        worker_id="test-worker",
        subjects=TOPOLOGY.subjects,
        publisher=streams,
        audit=AuditLog(streams, TOPOLOGY.subjects, role),
        observer=observer,
        backoff_s=(0.5, 1.0),
    )


class Pipeline(msgspec.Struct, kw_only=True):
    """A task handler (or planner) wired to memory streams."""

    handler: Any
    streams: MemoryStreams
    observer: RecordingObserver
    digests: dict[str, str]


@contextlib.contextmanager
def task_pipeline(
    tmp_path: Path,
    *,
    kind: str = MARKDOWN_COMPILE,
    module: bytes,
    follow_ups: Sequence[tuple[str, bytes]] = (),
    extensions: Sequence[ExtensionConfig] = (),
    policy: Policy | None = None,
    limits: Limits | None = None,
    inline_fuel: int = 2_000_000,
) -> Any:
    """A ``TaskHandler`` for ``kind`` running ``module``, publishing into memory."""
    sandbox = Sandbox()
    executor = ThreadPoolExecutor(2)
    try:
        registry = ModuleRegistry(sandbox)
        digest = registry.register(module)
        digests = {kind: digest}
        specs = []
        for follow_kind, follow_module in follow_ups:
            follow_digest = module_digest(follow_module)
            digests[follow_kind] = follow_digest
            specs.append(
                FollowUpSpec(
                    kind=follow_kind,
                    module_digest=follow_digest,
                    limits=LimitsConfig(),
                    extensions=tuple((e, follow_digest) for e in extensions)
                    if follow_kind == EXTENSION_RUN
                    else (),
                )
            )
        role = MARKDOWN_COMPILER if kind == MARKDOWN_COMPILE else "enricher"
        config = runtime_config("nats://unused", TOPOLOGY, tmp_path)
        strict_policy = policy is not None
        policy = policy or default_policy(config)
        streams, observer = MemoryStreams(), RecordingObserver()
        allowed = {kind: KindAllowance(modules=frozenset({digest}), ceilings=limits or Limits())}
        handler = TaskHandler(
            settings=TaskSettings(
                role=role,
                kinds=(kind,),
                follow_ups=tuple(specs),
                validation_stream="VALIDATION",
                failures_stream="FAILURES",
            ),
            offload=SandboxOffload(sandbox, executor, inline_fuel=inline_fuel),
            modules=ModuleLoader(registry),
            publisher=streams,
            reporter=reporter(streams, role, observer),
            subjects=TOPOLOGY.subjects,
            admission=PolicyAdmission(policy, role, allowed)
            if strict_policy
            else BasicAdmission(allowed),
            output_check=PolicyOutputCheck(policy),
            results=streams,
        )
        yield Pipeline(handler=handler, streams=streams, observer=observer, digests=digests)
    finally:
        executor.shutdown(wait=True)
        sandbox.close()


def planner_pipeline(compile_digest: str = "sha256:" + "c" * 64) -> Pipeline:
    """A ``PlannerHandler`` publishing into memory."""
    streams, observer = MemoryStreams(), RecordingObserver()
    handler = PlannerHandler(
        TOPOLOGY.subjects,
        {MARKDOWN_COMPILE: compile_digest},
        streams,
        reporter(streams, PLANNER, observer),
    )
    return Pipeline(
        handler=handler,
        streams=streams,
        observer=observer,
        digests={MARKDOWN_COMPILE: compile_digest},
    )


_SEQ = iter(range(1, 10**9))


def delivery(
    subject: str,
    data: bytes,
    *,
    msg_id: str | None = None,
    attempt: int = 1,
    stream: str = "TASKS",
    extra_headers: dict[str, str] | None = None,
) -> Delivery:
    """A delivery as the pull loop would hand it over."""
    hdrs = {headers.MSG_ID: msg_id or uuid.uuid4().hex, headers.REQUEST_ID: "req-1"}
    hdrs["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    hdrs.update(extra_headers or {})
    return Delivery(
        subject=subject,
        data=data,
        headers=hdrs,
        stream=stream,
        stream_seq=next(_SEQ),
        consumer="test",
        num_delivered=attempt,
    )


def task_delivery(task: TaskRequest, payload: bytes, **kwargs: Any) -> Delivery:
    """The delivery of ``task`` on its own slot."""
    subject = TOPOLOGY.subjects.task(task.kind, slot_token(task.idempotency_key))
    return delivery(subject, payload, msg_id=task.idempotency_key, **kwargs)
