"""What every fault scenario shares: the run, configuration, events, worker processes, the count.

A scenario (``bench/fault_*.py``) opens a :func:`fault_run`, which starts
nats-server (one, or a cluster), provisions the topology and connects; the
scenario then publishes git events (one product file each), runs a real
``gitstore-agents worker`` process with every role, disturbs it its own way,
waits until every durable is drained, and counts what is stored:

* events published and events stored, tasks expected (compile + enrich + one
  per extension, per event) and task messages stored,
* validation results stored, distinct task keys among them, duplicates, lost,
* diagnostics and dead letters, messages left pending or unacknowledged,
* how the guarantees were exercised: deliveries that found their result's slot
  taken (a re-run after a crash, a duplicate, a replay) and deliveries past the
  first that ended a task.

A scenario passes with exactly one validation result per task and nothing left
pending or unacknowledged. Results that stop short end a wait without its
timeout: once every durable is drained and the count has not moved for
``STALL_S``, nothing more can come, so the run stops disturbing, counts the
shortfall as lost and exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Generic, Protocol, TypedDict, TypeVar

import msgspec
import nats
import nats.errors
import wasmtime
from nats.aio.client import Client
from nats.js import JetStreamContext

from gitstore_agents.config import (
    CATALOG_ENRICH,
    EXTENSION_RUN,
    MARKDOWN_COMPILE,
    ROLES,
    Config,
    load_config,
)
from gitstore_agents.consumers import dead_letter_consumer, provision, role_consumer
from gitstore_agents.embedded import NatsServer
from gitstore_agents.envelopes import Blob, GitEvent, ValidationRequest, git_blob_oid, headers
from gitstore_agents.ops import read_subject
from gitstore_agents.sandbox import REFERENCE_MODULES, reference_module_path
from gitstore_agents.telemetry import configure_logging

# An echo module (``{"<key>": <stdin>}``): the stand-in when the reference
# modules are not built, and a fast one, so the run measures the runtime.
_ECHO_WAT = """
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 16)
  (data (i32.const 64) "{\\"KEY\\":")
  (data (i32.const 128) "}")
  (func $write (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func (export "_start")
    (local $total i32) (local $n i32)
    (block $eof (loop $read
      (i32.store (i32.const 16) (i32.add (i32.const 1024) (local.get $total)))
      (i32.store (i32.const 20) (i32.sub (i32.const 1047552) (local.get $total)))
      (br_if $eof (i32.ne
        (call $fd_read (i32.const 0) (i32.const 16) (i32.const 1) (i32.const 24)) (i32.const 0)))
      (local.set $n (i32.load (i32.const 24)))
      (br_if $eof (i32.eqz (local.get $n)))
      (local.set $total (i32.add (local.get $total) (local.get $n)))
      (br $read)))
    (call $write (i32.const 64) (i32.const LEN))
    (call $write (i32.const 1024) (local.get $total))
    (call $write (i32.const 128) (i32.const 1))))
"""

_KIND_MODULES = {
    MARKDOWN_COMPILE: "markdown-compile",
    CATALOG_ENRICH: "catalog-enrich",
    EXTENSION_RUN: "extension-sample",
}

# What a poll of the server can fail with while a server (or node) is down.
TRANSIENT = (nats.errors.Error, TimeoutError, OSError)

SHORT_WINDOW_S = 8.0
"""The duplicate window of scenarios that wait it out (with their short timings)."""

STALL_S = 10.0
"""How long every durable must stay drained with the result count unmoved to call it short."""


class FaultReport(msgspec.Struct, kw_only=True):
    """What a fault run ended with."""

    scenario: str
    events_published: int
    events_in: int
    tasks_expected: int
    tasks_stored: int
    validation_results_stored: int
    distinct_tasks_with_result: int
    duplicates: int
    missing: int
    diagnostics: int
    dead_letters: int
    dead_letter_errors: list[str]
    unacked: int
    pending: int
    slot_taken: int
    redelivered: int
    disruptions: int
    modules: str
    seconds: float

    @property
    def kills(self) -> int:
        """Disruptions of a SIGKILL scenario are worker kills."""
        return self.disruptions

    @property
    def exactly_once(self) -> bool:
        """One result per task and nothing left behind."""
        return (
            self.duplicates == 0
            and self.missing == 0
            and self.unacked == 0
            and self.pending == 0
            and self.distinct_tasks_with_result == self.tasks_expected
        )


def _quiet_logs() -> None:
    """Only warnings from this process (provisioning logs a line otherwise)."""
    configure_logging(json=False, level="WARNING")


def print_report(report: FaultReport) -> int:
    """Print the counts, a JSON line and the verdict; the exit code (0 only when exactly once)."""
    for field in msgspec.structs.fields(FaultReport):
        print(f"{field.name.replace('_', ' '):>32}: {getattr(report, field.name)}")
    print(json.dumps(msgspec.to_builtins(report), sort_keys=True))
    print(f"lost: {report.missing}, duplicated: {report.duplicates}")
    print("exactly one validation result per task, nothing unacked:", report.exactly_once)
    return 0 if report.exactly_once else 1


def fault_parser(doc: str | None, *, seed: bool = False) -> argparse.ArgumentParser:
    """A fault script's command line: the options every scenario takes; it adds its own.

    Option names are the scenario function's keywords, so ``vars(args)`` is its call.

    Args:
        doc: The script's docstring (its first line describes the command).
        seed: Whether the scenario draws random moments (``--seed``).
    """
    parser = argparse.ArgumentParser(description=(doc or "").partition("\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument(
        "--modules",
        choices=("auto", "reference", "test"),
        default="auto",
        help="reference modules, echo stand-ins, or reference when built (default)",
    )
    parser.add_argument("--concurrency", type=int, default=4)
    if seed:
        parser.add_argument("--seed", type=int, default=None)
    return parser


def run_main(header: str, scenario: Coroutine[Any, Any, FaultReport]) -> int:
    """Print ``header``, run ``scenario``, print its report; exit code 0 only on exactly-once."""
    _quiet_logs()
    print(header, flush=True)
    return print_report(asyncio.run(scenario))


def _echo(key: str) -> bytes:
    return wasmtime.wat2wasm(_ECHO_WAT.replace("KEY", key).replace("LEN", str(len(key) + 4)))


def module_refs(kind_modules: str, folder: Path) -> tuple[dict[str, str], str]:
    """Module reference per kind: the packaged reference modules, or echo stand-ins."""
    have_reference = all(reference_module_path(n).is_file() for n in REFERENCE_MODULES)
    if kind_modules == "reference" or (kind_modules == "auto" and have_reference):
        return {kind: f"reference:{name}" for kind, name in _KIND_MODULES.items()}, "reference"
    folder.mkdir(parents=True, exist_ok=True)
    refs = {}
    for kind, name in _KIND_MODULES.items():
        path = folder / f"{name}.wasm"
        path.write_bytes(_echo(name.replace("-", "_")))
        refs[kind] = f"file:{path}"
    return refs, "test (echo stand-ins)"


def fault_config(
    url: str,
    modules: dict[str, str],
    *,
    concurrency: int,
    replicas: int = 1,
    short_window: bool = False,
    backoff_s: list[float] | None = None,
) -> Config:
    """Every role in one process, with ack waits short enough for a bench run.

    Args:
        url: Server URL(s), comma-separated for a cluster.
        modules: Module reference per task kind.
        concurrency: Tasks in flight per task role (the planner gets four times as many).
        replicas: Stream and bucket replicas (3 on a cluster).
        short_window: A duplicate window of ``SHORT_WINDOW_S`` and short timings,
            so a scenario can wait the window out.
        backoff_s: Retry delays instead of the scenario's short ones (a
            cluster needs them to outlast a leader election).
    """
    if short_window:
        timing = {"ack_wait_s": 4.0, "backoff_s": [0.5, 1.0, 1.0]}
        deadline_ms, publish_timeout_s = 1000, 1.0
    else:
        timing = {"ack_wait_s": 6.0, "backoff_s": [0.5, 1.0, 2.0]}
        deadline_ms, publish_timeout_s = 2000, 2.0
    if backoff_s is not None:
        timing["backoff_s"] = backoff_s
    role = {
        "concurrency": concurrency,
        "max_deliver": 5,
        "fetch_expires_s": 2.0,
        "fetch_heartbeat_s": 0.5,
        **timing,
    }

    def kind(k: str) -> dict[str, Any]:
        # The scenario's deadline at every input size: its inputs are small,
        # and its short ack waits must outlast the longest deadline.
        limits = {"timeout_ms": deadline_ms, "max_timeout_ms": deadline_ms}
        return {"module": modules[k], "limits": limits}

    topology: dict[str, Any] = {"replicas": replicas}
    if short_window:
        topology["duplicate_window_s"] = SHORT_WINDOW_S
    overrides: dict[str, Any] = {
        "nats": {"url": url, "request_timeout_s": 1.0, "reconnect_wait_s": 0.2},
        "health": {"port": None},
        "topology": topology,
        "publish_timeout_s": publish_timeout_s,
        "drain_grace_s": 10.0,
        "roles": {
            "planner": {**role, "concurrency": 4 * concurrency, "batch": 64},
            "markdown-compiler": {
                **role,
                "kinds": {MARKDOWN_COMPILE: kind(MARKDOWN_COMPILE)},
                "follow_ups": [CATALOG_ENRICH, EXTENSION_RUN],
            },
            "enricher": {**role, "kinds": {CATALOG_ENRICH: kind(CATALOG_ENRICH)}},
            "extension-runner": {
                **role,
                "kinds": {
                    EXTENSION_RUN: {
                        **kind(EXTENSION_RUN),
                        "extensions": [{"name": "seo-lint", "version": "1.0.0"}],
                    }
                },
            },
        },
    }
    return load_config(env={}, overrides=overrides)


def write_config(config: Config, path: Path) -> Path:
    """Write ``config`` as the YAML file a worker process reads."""
    path.write_bytes(msgspec.yaml.encode(msgspec.to_builtins(config)))
    return path


def tasks_per_event(config: Config) -> int:
    """Validation results one event yields: compile, enrich, one per extension."""
    return 1 + 1 + len(config.kind(EXTENSION_RUN)[1].extensions)


_EVENT_NAMESPACE = uuid.UUID("0193f1c2-0000-7000-8000-0000000bec4e")


def make_event(number: int) -> GitEvent:
    """A push changing one product file, unique per ``number``."""
    content = (
        "---\napiVersion: catalog.gitstore.dev/v1beta1\nkind: Product\n"
        f"metadata:\n  name: bench-{number}\n  namespace: bench\n"
        f'spec:\n  title: Bench product {number}\n  price:\n    amount: "{number % 500}.90"\n'
        f"    currency: EUR\n  tags: [bench, fault]\n---\n# Bench product {number}\n\n"
        "Built to be **compiled**, enriched and extended.\n"
    )
    path = f"products/bench-{number}.md"
    return GitEvent(
        # Event ids are UUIDs (the contract); derived so runs are reproducible.
        event_id=str(uuid.uuid5(_EVENT_NAMESPACE, f"bench-{number:06d}")),
        repository_id="0193f1c2-0000-7000-8000-0000000bec4e",
        ref_name="refs/heads/main",
        old_commit_sha="0" * 40,
        new_commit_sha=f"{number:040x}",
        changed_paths=[path],
        actor_subject="user:bench@example.com",
        blobs=[Blob(path=path, blob_oid=git_blob_oid(content.encode()), content=content)],
        occurred_at="2026-11-29T08:00:00Z",
    )


async def publish_events(
    js: JetStreamContext, config: Config, numbers: Iterable[int], *, copies: int = 1
) -> int:
    """Publish the events ``numbers`` (each ``copies`` times, same ``Nats-Msg-Id``).

    Copies go out back to back, so all of them fall inside the duplicate
    window. Returns how many publishes the server acknowledged.
    """
    subjects = config.topology.subjects
    wanted = list(numbers)
    published = 0
    for start in range(0, len(wanted), 200):
        futures = []
        for number in wanted[start : start + 200]:
            event = make_event(number)
            payload = msgspec.json.encode(event)
            for _ in range(copies):
                futures.append(
                    await js.publish_async(
                        subjects.git_push(event.repository_id),
                        payload,
                        headers={headers.MSG_ID: event.event_id},
                    )
                )
        await asyncio.gather(*futures)
        published += len(futures)
    return published


async def connect_harness(url: str) -> Client:
    """The harness's own connection: reconnects forever, like the workers."""
    servers = [u.strip() for u in url.split(",") if u.strip()]

    async def quiet(_: Exception) -> None:
        # Connection errors while a server is down are the scenario, not news.
        return

    return await nats.connect(
        servers=servers,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.2,
        connect_timeout=2,
        error_cb=quiet,
    )


def start_worker(config_file: Path, log: Path) -> subprocess.Popen[bytes]:
    """A ``gitstore-agents worker`` process with every role; stderr (JSON logs) to ``log``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITSTORE_")}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "gitstore_agents", "worker", "--config", str(config_file)],
            stdout=subprocess.DEVNULL,
            stderr=out,
            env=env,
        )


def stop_worker(worker: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    """SIGTERM (drain), escalating to SIGKILL."""
    if worker.poll() is None:
        worker.terminate()
        try:
            worker.wait(timeout_s)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


async def stream_count(js: JetStreamContext, stream: str) -> int:
    """Messages ``stream`` holds."""
    return (await js.stream_info(stream)).state.messages


async def backlog(js: JetStreamContext, config: Config) -> tuple[int, int]:
    """Messages pending and delivered-but-unacknowledged, over every durable."""
    pending = unacked = 0
    for role in ROLES:
        for spec in (role_consumer(config, role), dead_letter_consumer(config, role)):
            info = await js.consumer_info(spec.stream, spec.durable)
            pending += info.num_pending
            unacked += info.num_ack_pending
    return pending, unacked


def _log_events(log: Path, event: str) -> list[dict[str, Any]]:
    found = []
    for line in log.read_text(errors="replace").splitlines():
        if event not in line:  # cheap filter; the parsed field decides
            continue
        with contextlib.suppress(ValueError):
            parsed = json.loads(line)
            if isinstance(parsed, dict) and parsed.get("event") == event:
                found.append(parsed)
    return found


def slot_taken(log: Path) -> int:
    """Deliveries that found their result stored (after a crash, a duplicate, a replay)."""
    return len(_log_events(log, "duplicate-skipped"))


def redelivered(log: Path) -> int:
    """Deliveries past the first that ended a task (stored it, or found it stored)."""
    return sum(
        1
        for event in ("published", "duplicate-skipped")
        for e in _log_events(log, event)
        if (e.get("attempt") or 1) > 1
    )


class FaultOptions(TypedDict, total=False):
    """What every scenario function takes besides its own disturbance (see :func:`fault_run`)."""

    events: int
    modules: str
    concurrency: int
    workdir: Path | None
    timeout_s: float
    stall_s: float
    progress: bool


class _Servers(Protocol):
    @property
    def url(self) -> str: ...


ServersT = TypeVar("ServersT", bound=_Servers)


def single_server(folder: Path) -> NatsServer:
    """One bundled nats-server with its store under ``folder``."""
    return NatsServer(folder / "nats")


class FaultRun(Generic[ServersT]):
    """One scenario under way: its servers, topology, worker process and tallies.

    Made by :func:`fault_run`; the scenario publishes, starts the worker,
    disturbs it its own way, waits, then asks for the :meth:`report`.
    """

    def __init__(
        self,
        servers: ServersT,
        js: JetStreamContext,
        config: Config,
        *,
        folder: Path,
        events: int,
        modules: str,
        timeout_s: float,
        stall_s: float,
        progress: bool,
        started: float,
    ) -> None:
        self.servers = servers
        self.js = js
        self.config = config
        self.config_file = write_config(config, folder / "gitstore.yaml")
        self.log = folder / "worker.log"
        self.events = events
        self.expected = events * tasks_per_event(config)
        self.modules = modules
        self.timeout_s = timeout_s
        self.stall_s = stall_s
        self.progress = progress
        self.started = started
        self.published = 0
        self.disruptions = 0
        self.worker: subprocess.Popen[bytes] | None = None

    def say(self, line: str) -> None:
        """Print a progress line (when the run was asked to)."""
        if self.progress:
            print(line, flush=True)

    def disrupted(self, line: str) -> None:
        """Count one disturbance and say what it was."""
        self.disruptions += 1
        self.say(line)

    async def moments(self, fractions: Iterable[float]) -> AsyncIterator[tuple[int, int]]:
        """The moments to disturb at: when the results reach ``fractions`` of all, in order.

        Yields ``(number, results stored)`` per fraction, the worker checked
        alive meanwhile; stops early when the results settle short of the
        next one (nothing more will come, see :meth:`wait_drained`).
        """
        targets = sorted(fraction * self.expected for fraction in fractions)
        for number, target in enumerate(targets, start=1):
            stored = await self._wait(target, drained=False)
            if stored is None:
                return
            yield number, stored

    async def publish(self, *, copies: int = 1) -> int:
        """Publish every event of the run, ``copies`` times each; the publishes acknowledged."""
        published = await publish_events(self.js, self.config, range(self.events), copies=copies)
        self.published += published
        return published

    def start_worker(self) -> None:
        """Start a worker process (appending to the run's log)."""
        self.worker = start_worker(self.config_file, self.log)

    def stop_worker(self) -> None:
        """SIGTERM the worker (drain), escalating to SIGKILL."""
        if self.worker is not None:
            stop_worker(self.worker)

    def kill_worker(self) -> None:
        """SIGKILL the worker (no drain, no notice) and reap it."""
        if self.worker is not None:
            self.worker.kill()
            self.worker.wait()

    def _check_worker(self) -> None:
        """Raise when the worker exited on its own (it must survive every disturbance)."""
        if self.worker is not None and self.worker.poll() is not None:
            raise RuntimeError(f"worker exited with {self.worker.returncode}; see {self.log}")

    async def wait_drained(self) -> None:
        """Wait until every expected result is stored and every durable is drained.

        Polls ride out a server (or node) that is down; the worker must stay
        alive. Every durable drained with the result count unmoved for
        ``stall_s`` ends the wait short: nothing more can come, and the
        report counts the loss.
        """
        await self._wait(self.expected, drained=True)

    async def _wait(self, target: float, *, drained: bool) -> int | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        stream = self.config.topology.validation_stream
        stored, moved_at = -1, loop.time()
        idle_since: float | None = None
        while loop.time() < deadline:
            self._check_worker()
            with contextlib.suppress(*TRANSIENT):
                count, now = await stream_count(self.js, stream), loop.time()
                if count != stored:
                    stored, moved_at, idle_since = count, now, None
                if stored >= target and not drained:
                    return stored
                # Draining needs the backlog each time; counting only once the
                # count stands still (a busy run keeps it moving).
                if drained or now - moved_at > 1.0:
                    pending, unacked = await backlog(self.js, self.config)
                    if pending or unacked:
                        idle_since = None
                    elif stored >= target:
                        return stored
                    elif idle_since is None:
                        idle_since = now
                    elif now - idle_since >= self.stall_s:
                        self.say(
                            f"  every durable drained, results stuck at {stored}/{self.expected} "
                            f"for {self.stall_s:g}s: the rest is lost"
                        )
                        return None
            await asyncio.sleep(0.1 if drained else 0.05)
        raise TimeoutError(f"not settled after {self.timeout_s}s; see {self.log}")

    async def report(self, scenario: str, timeout_s: float = 30.0) -> FaultReport:
        """Stop the worker (drain) and count what the run left behind.

        A cluster that just had a node killed may answer a read late (a
        stream or meta leader being elected): the whole count is taken again
        until it succeeds, for at most ``timeout_s``.
        """
        self.stop_worker()
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return await self._count(scenario)
            except TRANSIENT:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)

    async def _count(self, scenario: str) -> FaultReport:
        js, config = self.js, self.config
        topology = config.topology
        subjects = topology.subjects
        stored = await read_subject(js, topology.validation_stream, subjects.validation_all())
        diagnostics = await read_subject(js, topology.failures_stream, subjects.failures_all())
        dead_letters = [
            m
            for m in await read_subject(js, topology.failures_stream, subjects.dead_letters_all())
            if ".dlq._requeued." not in m[1]
        ]
        pending, unacked = await backlog(js, config)
        keys = [
            msgspec.json.decode(data, type=ValidationRequest).idempotency_key
            for _, _, data, _ in stored
        ]
        return FaultReport(
            scenario=scenario,
            events_published=self.published,
            events_in=await stream_count(js, topology.events_stream),
            tasks_expected=self.expected,
            tasks_stored=await stream_count(js, topology.tasks_stream),
            validation_results_stored=len(keys),
            distinct_tasks_with_result=len(set(keys)),
            duplicates=len(keys) - len(set(keys)),
            missing=self.expected - len(set(keys)),
            diagnostics=len(diagnostics),
            dead_letters=len(dead_letters),
            dead_letter_errors=sorted(
                {str(msgspec.json.decode(m[2]).get("last_error")) for m in dead_letters}
            )[:5],
            unacked=unacked,
            pending=pending,
            slot_taken=slot_taken(self.log),
            redelivered=redelivered(self.log),
            disruptions=self.disruptions,
            modules=self.modules,
            seconds=round(time.monotonic() - self.started, 1),
        )


async def _wait_jetstream(nc: Client, timeout_s: float = 30.0) -> None:
    """Wait until JetStream answers API requests (on a cluster: once a meta leader exists)."""
    probe = nc.jetstream(timeout=2)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            await probe.account_info()
        except TRANSIENT:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
        else:
            return


@contextlib.asynccontextmanager
async def fault_run(
    servers: Callable[[Path], AbstractContextManager[ServersT]],
    *,
    events: int = 2000,
    modules: str = "auto",
    concurrency: int = 4,
    workdir: Path | None = None,
    timeout_s: float = 900.0,
    stall_s: float = STALL_S,
    progress: bool = False,
    replicas: int = 1,
    short_window: bool = False,
    backoff_s: list[float] | None = None,
) -> AsyncIterator[FaultRun[ServersT]]:
    """Start the servers, provision, connect: the run a scenario disturbs.

    On the way out the worker is stopped, the connection closed and the
    servers stopped (the temporary folder removed).

    Args:
        servers: Makes the server(s) under the run's folder (:func:`single_server`,
            or a cluster); entered here.
        events: Git events the run publishes.
        modules: Module choice (see :func:`module_refs`).
        concurrency: Tasks in flight per task role.
        workdir: Folder for stores, config and worker log (temporary when ``None``).
        timeout_s: The longest one wait may take.
        stall_s: How long a drained backlog with an unmoved count takes to count as short.
        progress: Whether the run prints progress lines.
        replicas: Stream and bucket replicas (see :func:`fault_config`).
        short_window: Short duplicate window and timings (see :func:`fault_config`).
        backoff_s: Retry delays (see :func:`fault_config`).
    """
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        folder = workdir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        server = stack.enter_context(servers(folder))
        refs, module_kind = module_refs(modules, folder / "modules")
        config = fault_config(
            server.url,
            refs,
            concurrency=concurrency,
            replicas=replicas,
            short_window=short_window,
            backoff_s=backoff_s,
        )
        nc = await connect_harness(server.url)
        try:
            await _wait_jetstream(nc)
            js = nc.jetstream()
            await provision(js, config)
            run = FaultRun(
                server,
                js,
                config,
                folder=folder,
                events=events,
                modules=module_kind,
                timeout_s=timeout_s,
                stall_s=stall_s,
                progress=progress,
                started=started,
            )
            try:
                yield run
            finally:
                run.stop_worker()
        finally:
            await nc.close()
