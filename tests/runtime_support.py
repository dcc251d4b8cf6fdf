"""Helpers for runtime tests: configurations with test modules, synthetic events, counting.

Everything runs against a real nats-server; timings are shortened (ack waits
of a few seconds, backoffs of a fraction of a second) so retries, leases and
redeliveries happen within a test's lifetime.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec
from nats.aio.client import Client
from nats.js import JetStreamContext

from gitstore_agents.config import (
    CATALOG_ENRICH,
    ENRICHER,
    EXTENSION_RUN,
    EXTENSION_RUNNER,
    MARKDOWN_COMPILE,
    MARKDOWN_COMPILER,
    PLANNER,
    ROLES,
    Config,
    Topology,
    load_config,
)
from gitstore_agents.consumers import role_consumer
from gitstore_agents.envelopes import (
    AuditDecision,
    Blob,
    FailureDiagnostic,
    GitEvent,
    TaskRequest,
    ValidationRequest,
    decode,
    git_blob_oid,
    headers,
)
from gitstore_agents.ops import read_subject
from gitstore_agents.pipeline import plan_tasks
from gitstore_agents.service import Runtime
from gitstore_agents.telemetry import DecisionRecord, LogObserver

from .support import eventually
from .wasm_modules import echo_module

# A deadline short enough for fast tests, long enough for an echo on a busy CI box.
TASK_TIMEOUT_MS = 1000
# Redeliveries after a crash come this much after the last in-progress ack.
ACK_WAIT_S = 4.0
BACKOFF_S = (0.2, 0.4)


def write_module(tmp_path: Path, name: str, wasm: bytes) -> str:
    """Write ``wasm`` under ``tmp_path`` and return its ``file:`` module reference."""
    path = tmp_path / "modules" / f"{name}.wasm"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(wasm)
    return f"file:{path}"


REFERENCE_MODULES = {
    MARKDOWN_COMPILE: "reference:markdown-compile",
    CATALOG_ENRICH: "reference:catalog-enrich",
    EXTENSION_RUN: "reference:extension-sample",
}
"""The packaged reference module of each kind (what the built-in configuration runs)."""


def default_modules(tmp_path: Path) -> dict[str, str]:
    """One echo module per kind (distinct digests), as ``file:`` references."""
    return {
        MARKDOWN_COMPILE: write_module(tmp_path, "compile", echo_module("compiled")),
        CATALOG_ENRICH: write_module(tmp_path, "enrich", echo_module("enriched")),
        EXTENSION_RUN: write_module(tmp_path, "extension", echo_module("extended")),
    }


def runtime_config(
    nats_url: str,
    topology: Topology,
    tmp_path: Path,
    *,
    modules: Mapping[str, str] | None = None,
    roles: Mapping[str, Mapping[str, Any]] | None = None,
    limits: Mapping[str, Any] | None = None,
    follow_ups: Sequence[str] = (CATALOG_ENRICH,),
    extensions: Sequence[Mapping[str, Any]] = (),
    **top: Any,
) -> Config:
    """A validated configuration for tests: short timings, ``file:`` modules, every role.

    Args:
        nats_url: Server to use.
        topology: Unique names for this test.
        tmp_path: Where module files are written.
        modules: Module reference per kind (default: echo modules).
        roles: Per-role overrides merged over the test defaults.
        limits: Limits for every kind (merged over the test defaults).
        follow_ups: Follow-up kinds of the markdown-compiler.
        extensions: Extensions of ``extension.run``.
        top: Top-level overrides (e.g. ``drain_grace_s``).
    """
    modules = dict(modules or default_modules(tmp_path))
    kind_limits = {
        "fuel": 10**10,
        "timeout_ms": TASK_TIMEOUT_MS,
        # Flat limits, whatever the built-in defaults grow by (tests time their runs).
        "per_input_mib": {"fuel": 0, "timeout_ms": 0, "memory_bytes": 0},
        "max_fuel": None,
        "max_timeout_ms": None,
        "max_memory_bytes": None,
        **(limits or {}),
    }
    role_defaults: dict[str, Any] = {
        "ack_wait_s": ACK_WAIT_S,
        "backoff_s": list(BACKOFF_S),
        "max_deliver": 3,
        "fetch_expires_s": 1.0,
        "fetch_heartbeat_s": 0.25,
    }
    role_kinds = {
        MARKDOWN_COMPILER: MARKDOWN_COMPILE,
        ENRICHER: CATALOG_ENRICH,
        EXTENSION_RUNNER: EXTENSION_RUN,
    }
    role_data: dict[str, Any] = {PLANNER: dict(role_defaults)}
    for role, kind in role_kinds.items():
        kind_data: dict[str, Any] = {"module": modules[kind], "limits": kind_limits}
        if kind == EXTENSION_RUN:
            kind_data["extensions"] = [dict(e) for e in extensions]
        role_data[role] = {**role_defaults, "kinds": {kind: kind_data}}
    role_data[MARKDOWN_COMPILER]["follow_ups"] = list(follow_ups)
    for role, overrides in (roles or {}).items():
        role_data[role] = {**role_data[role], **overrides}
    data: dict[str, Any] = {
        "nats": {"url": nats_url, "request_timeout_s": 1.0, "reconnect_wait_s": 0.1},
        "topology": msgspec.to_builtins(topology),
        "health": {"port": None},
        "publish_timeout_s": 1.0,
        "drain_grace_s": 5.0,
        "worker_id": f"test-{uuid.uuid4().hex[:6]}",
        "roles": role_data,
        **top,
    }
    return load_config(env={}, overrides=data)


def write_config(path: Path, config: Config) -> Path:
    """Write ``config`` as YAML (what a subprocess worker reads with ``--config``)."""
    path.write_bytes(msgspec.yaml.encode(msgspec.to_builtins(config)))
    return path


@contextlib.asynccontextmanager
async def running(
    config: Config, roles: Sequence[str] | None = None, **kwargs: Any
) -> AsyncIterator[Runtime]:
    """A started runtime serving ``roles`` until the block ends (then drained and closed)."""
    runtime = Runtime(config, roles, **kwargs)
    stop = asyncio.Event()
    await runtime.start(stop)
    serving = asyncio.create_task(runtime.run(stop))
    try:
        yield runtime
    finally:
        stop.set()
        await serving
        await runtime.close()


_EVENT_NAMESPACE = uuid.UUID("0193f1c2-0000-7000-8000-000000000e7e")


def make_event(number: int, *, files: int = 1, tag: str = "") -> GitEvent:
    """A git push changing ``files`` product files, unique per ``number`` (and ``tag``)."""
    blobs = []
    for i in range(files):
        content = (
            "---\napiVersion: catalog.gitstore.dev/v1beta1\nkind: Product\n"
            f"metadata:\n  name: product-{number}-{i}{tag}\n  namespace: test\n"
            f"spec:\n  title: Product {number}-{i}\n---\n# Product {number}-{i}\n"
        )
        blobs.append(
            Blob(
                path=f"products/product-{number}-{i}.md",
                blob_oid=git_blob_oid(content.encode()),
                content=content,
            )
        )
    return GitEvent(
        # Event ids are UUIDs (the contract); derive them so tests stay reproducible.
        event_id=str(uuid.uuid5(_EVENT_NAMESPACE, f"evt-{number:06d}{tag}")),
        repository_id="0193f1c2-0000-7000-8000-00000000c0de",
        ref_name="refs/heads/main",
        old_commit_sha="0" * 40,
        new_commit_sha=f"{number:040x}",
        changed_paths=[b.path for b in blobs],
        actor_subject="user:test@example.com",
        blobs=blobs,
        occurred_at="2026-11-29T08:00:00Z",
    )


async def publish_event(js: JetStreamContext, topology: Topology, event: GitEvent) -> None:
    """Publish ``event`` as the control plane does (``Nats-Msg-Id`` = event id)."""
    await js.publish(
        topology.subjects.git_push(event.repository_id),
        msgspec.json.encode(event),
        headers={headers.MSG_ID: event.event_id},
    )


async def validation_requests(js: JetStreamContext, topology: Topology) -> list[ValidationRequest]:
    """Every validation request stored so far, in stream order."""
    stored = await read_subject(js, topology.validation_stream, topology.subjects.validation_all())
    return [decode(data, ValidationRequest) for _, _, data, _ in stored]


async def diagnostics(js: JetStreamContext, topology: Topology) -> list[FailureDiagnostic]:
    """Every failure diagnostic stored so far."""
    stored = await read_subject(js, topology.failures_stream, topology.subjects.failures_all())
    return [msgspec.json.decode(data, type=FailureDiagnostic) for _, _, data, _ in stored]


async def consumer_backlog(
    js: JetStreamContext, config: Config, roles: Sequence[str] = ROLES
) -> dict[str, tuple[int, int]]:
    """``(num_pending, num_ack_pending)`` of each role's durable."""
    backlog = {}
    for role in roles:
        spec = role_consumer(config, role)
        info = await js.consumer_info(spec.stream, spec.durable)
        backlog[role] = (info.num_pending, info.num_ack_pending)
    return backlog


async def wait_settled(
    js: JetStreamContext, config: Config, roles: Sequence[str] = ROLES, *, timeout_s: float = 30
) -> None:
    """Wait until every role's durable has nothing pending and nothing unacknowledged."""
    await eventually(
        lambda: consumer_backlog(js, config, roles),
        lambda backlog: all(v == (0, 0) for v in backlog.values()),
        timeout_s=timeout_s,
        what="every consumer to be drained and acked",
    )


def start_worker(
    config_path: Path, roles: Sequence[str], log_path: Path
) -> subprocess.Popen[bytes]:
    """A real ``gitstore-agents worker`` process (stderr to ``log_path``)."""
    command = [sys.executable, "-m", "gitstore_agents", "worker", "--config", str(config_path)]
    for role in roles:
        command += ["--role", role]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITSTORE_")}
    log = log_path.open("ab")
    try:
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, env=env)
    finally:
        log.close()


async def nc_js(nc: Client) -> JetStreamContext:
    """The test connection's JetStream context."""
    return nc.jetstream()


class RecordingObserver(LogObserver):
    """The default observer, also keeping every decision with its loop time."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[tuple[float, DecisionRecord]] = []

    def decided(self, record: DecisionRecord) -> None:
        """Keep ``record``, then log and count it."""
        self.records.append((asyncio.get_running_loop().time(), record))
        super().decided(record)

    def of(self, decision: AuditDecision, *, kind: str | None = None) -> list[DecisionRecord]:
        """Recorded decisions of one type (optionally for one task kind)."""
        return [r for _, r in self.records if r.decision == decision and kind in (None, r.kind)]

    def times(self, decision: AuditDecision) -> list[tuple[float, DecisionRecord]]:
        """Recorded decisions of one type with their loop times."""
        return [(t, r) for t, r in self.records if r.decision == decision]


async def planned_task(runtime: Runtime, event: GitEvent) -> TaskRequest:
    """The one ``markdown.compile`` task the planner derives from ``event`` for ``runtime``."""
    assert runtime.modules is not None
    _, kind = runtime.config.kind(MARKDOWN_COMPILE)
    digest = await runtime.modules.digest(kind.module)
    (derived,) = plan_tasks(
        event,
        event.event_id,
        {MARKDOWN_COMPILE: digest},
        {MARKDOWN_COMPILE: kind.limits},
    )
    return derived.task


def with_worker_id(config: Config, worker_id: str) -> Config:
    """``config`` for another worker process."""
    return msgspec.structs.replace(config, worker_id=worker_id)


async def cli(*args: str) -> tuple[int, str]:
    """Run ``gitstore-agents ARGS...`` as a process; (exit code, stdout)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITSTORE_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gitstore_agents",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode()
