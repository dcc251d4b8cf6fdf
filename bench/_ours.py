"""Rows 3 and 4: our worker, as shipped (``gitstore-agents worker --config …`` processes).

Row 3, **no-op task**: ``TaskRequest``s published straight to the tasks stream,
run by the ``enricher`` role whose kind's module is a trivial WASI command
writing ``{}``. Every guarantee is on: decode and input digest check,
admission, sandbox run, output check, decision records (the runtime's
observer and the audit trail), confirmed publish of the validation request
into its slot before the ack. Measured: task stored → validation request
stored.

Row 4, **markdown-compile**: git events, each changing one realistic product
file (``bench/_products.py``), through the ``planner`` and
``markdown-compiler`` roles on 1 or N worker processes (each process runs both
roles). Follow-ups are **off** (``follow_ups: []``) so the row measures the
compile hop: one validation request per event. Measured: git event stored →
validation request stored.

Throughput is a drained backlog: the backlog is published while the input
durable is paused, the workers start and report ready, then the durable is
resumed, so every process starts at once. Rates come from the server's storage
timestamps of the outputs (first to last).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import wasmtime
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from gitstore_agents.config import (
    CATALOG_ENRICH,
    ENRICHER,
    MARKDOWN_COMPILER,
    PLANNER,
    Config,
    load_config,
)
from gitstore_agents.consumers import provision, role_consumer
from gitstore_agents.envelopes import (
    Limits,
    TaskRequest,
    ValidationRequest,
    canonical_digest,
    canonical_json,
    derive_idempotency_key,
    headers,
    slot_token,
)
from gitstore_agents.sandbox import module_digest

from ._harness import (
    BenchServer,
    CpuMeter,
    RowResult,
    Stored,
    WorkerProcess,
    connect,
    free_port,
    latencies_ms,
    percentile,
    publish_all,
    publish_paced,
    python_module,
    stored_messages,
    throughput,
    wait_stream_count,
)
from ._products import REPOSITORY_ID, product_event, product_markdown

# A WASI command that writes ``{}`` and exits 0: the cheapest task the runtime can run.
NOOP_WAT = """
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "{}")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 2))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
"""

WITHOUT_AUDIT_TRAIL = "bench.workers.without_audit_trail"

NOOP_ROW = "ours: no-op task"
COMPILE_ROW = "ours: markdown-compile x{n}"


@dataclass(frozen=True)
class OurSettings:
    """How our rows run.

    Attributes:
        concurrency: Tasks in flight per role and process (no-op row).
        batch: Most messages one pull request asks for (no-op row).
        compile_concurrency: Tasks in flight in the markdown-compiler role per
            process (short runs happen inline, so most of them wait for PubAcks,
            not for a sandbox thread).
        compile_batch: Most messages one pull of the markdown-compiler asks for.
        planner_concurrency: Events in flight in the planner per process.
        log_level: The workers' ``--log-level`` (production: INFO).
        profile_dir: Run each worker under pyinstrument and write its report here.
        audit_trail: False runs ``bench.workers.without_audit_trail`` instead of
            ``gitstore_agents``: a what-if that measures what the trail costs.
    """

    concurrency: int = 64
    batch: int = 64
    compile_concurrency: int = 32
    compile_batch: int = 32
    planner_concurrency: int = 32
    log_level: str = "INFO"
    profile_dir: Path | None = None
    audit_trail: bool = True


def noop_wasm() -> bytes:
    """The no-op module's bytes."""
    return wasmtime.wat2wasm(NOOP_WAT)


def bench_config(url: str, roles: dict[str, Any], *, health_port: int | None = None) -> Config:
    """A worker configuration for ``url`` with ``roles`` merged onto the defaults."""
    overrides: dict[str, Any] = {
        "nats": {"url": url},
        "health": {"port": health_port},
        "roles": {
            # Follow-ups off: the compile row measures one hop.
            MARKDOWN_COMPILER: {"follow_ups": []},
            **roles,
        },
    }
    return load_config(env={}, overrides=overrides)


def noop_roles(wasm_path: Path, settings: OurSettings) -> dict[str, Any]:
    """The enricher role running ``catalog.enrich`` with the no-op module."""
    return {
        ENRICHER: {
            "concurrency": settings.concurrency,
            "batch": settings.batch,
            "max_ack_pending": max(1000, settings.concurrency * 4),
            "kinds": {CATALOG_ENRICH: {"module": f"file:{wasm_path}"}},
        }
    }


def compile_roles(settings: OurSettings) -> dict[str, Any]:
    """The planner and the markdown-compiler (reference module), follow-ups off."""
    return {
        PLANNER: {"concurrency": settings.planner_concurrency, "batch": 64},
        MARKDOWN_COMPILER: {
            "concurrency": settings.compile_concurrency,
            "batch": settings.compile_batch,
            "follow_ups": [],
        },
    }


def noop_task(number: int, digest: str, *, run: str) -> TaskRequest:
    """A ``catalog.enrich`` task whose input is a product file (about 1.5 KB)."""
    path, content = product_markdown(number)
    task_input = {"path": path, "content": content, "run": run}
    input_digest = canonical_digest(task_input)
    source = f"{run}-{number}"
    key = derive_idempotency_key(source, CATALOG_ENRICH, input_digest, digest)
    hex_key = key.removeprefix("sha256:")
    return TaskRequest(
        task_id=hex_key[:32],
        kind=CATALOG_ENRICH,
        idempotency_key=key,
        source_event_id="0193f1c2-0000-7000-8000-0000000be9c0",
        repository_id=REPOSITORY_ID,
        commit_sha=f"{number:040x}",
        path=path,
        module_digest=digest,
        input=task_input,
        input_digest=input_digest,
        limits=Limits(),
        logical_time="2026-11-29T08:00:00Z",
        seed=int(hex_key[:16], 16),
    )


async def reset_topology(js: JetStreamContext, config: Config) -> None:
    """Delete every stream (KV and object buckets are streams too) and provision afresh."""
    names = [info.config.name for info in await js.streams_info()]
    for name in names:
        if name is not None:
            with contextlib.suppress(NotFoundError):
                await js.delete_stream(name)
    await provision(js, config)


class Workers:
    """N ``gitstore-agents worker`` processes sharing one configuration file."""

    def __init__(
        self,
        config: Config,
        folder: Path,
        roles: Sequence[str],
        count: int,
        *,
        settings: OurSettings,
        label: str,
    ) -> None:
        self.config_file = folder / "bench-worker.yaml"
        self.config_file.write_bytes(msgspec.yaml.encode(msgspec.to_builtins(config)))
        self.roles = list(roles)
        self.count = count
        self.settings = settings
        self.label = label
        self.procs: list[WorkerProcess] = []
        self.ports: list[int] = []

    async def start(self) -> None:
        """Start every process and wait until each one reports ready."""
        for number in range(self.count):
            port = free_port()
            cli = ["worker", "--config", str(self.config_file)]
            cli += ["--log-level", self.settings.log_level]
            for role in self.roles:
                cli += ["--role", role]
            entry = "gitstore_agents" if self.settings.audit_trail else WITHOUT_AUDIT_TRAIL
            argv = python_module(entry, *cli)
            if self.settings.profile_dir is not None:
                self.settings.profile_dir.mkdir(parents=True, exist_ok=True)
                report = self.settings.profile_dir / f"{self.label}-{number + 1}.txt"
                argv = python_module(
                    "pyinstrument",
                    "--renderer",
                    "text",
                    "--show",
                    "*/nats/*",
                    "-o",
                    str(report),
                    "-m",
                    *argv[2:],
                )
            self.procs.append(WorkerProcess(argv, env=_worker_env(port)))
            self.ports.append(port)
        for proc, port in zip(self.procs, self.ports, strict=True):
            await proc.wait_ready(port)

    def peak_rss_mb(self) -> list[float]:
        """Peak RSS of each process."""
        return [p.peak_rss_mb() for p in self.procs]

    def stop(self) -> list[str]:
        """SIGTERM every process; the tail of the stderr of those that failed."""
        tails = []
        for proc in self.procs:
            tail = proc.stop()
            if proc.proc.returncode not in (0, -15):
                tails.append(f"exit {proc.proc.returncode}: {tail[-300:]}")
        return tails


def _worker_env(health_port: int) -> dict[str, str]:
    # The bench's own settings win over anything GITSTORE_* in the caller's shell
    # (load_config ignores empty variables).
    env = {k: "" for k in os.environ if k.startswith("GITSTORE_")}
    env["GITSTORE_HEALTH_PORT"] = str(health_port)
    return env


def _validation_keys(messages: list[Stored]) -> dict[str, float]:
    return {m.headers.get(headers.MSG_ID, ""): m.at for m in messages}


def _by_source_event(messages: list[Stored]) -> dict[str, float]:
    out = {}
    for m in messages:
        request = msgspec.json.decode(m.data, type=ValidationRequest)
        out[request.source_event_id] = m.at
    return out


async def _measure(
    js: JetStreamContext,
    config: Config,
    bench: BenchServer,
    *,
    name: str,
    workers: Workers,
    input_stream: str,
    durable_stream: str,
    durable: str,
    backlog: list[tuple[str, bytes, str]],
    paced: list[tuple[str, bytes, str]],
    rate: float,
    output_key: Callable[[list[Stored]], dict[str, float]],
) -> RowResult:
    """Drain ``backlog`` (paused durable, ready workers, resume), then pace ``paced``."""
    validation = config.topology.validation_stream
    await publish_all(js, backlog)
    await js.pause_consumer(durable_stream, durable, "2999-01-01T00:00:00Z")
    notes: list[str] = []
    meter = CpuMeter(bench, [])
    try:
        await workers.start()
        meter = CpuMeter(bench, workers.procs)
        meter.start()
        await js.resume_consumer(durable_stream, durable)
        await wait_stream_count(js, validation, len(backlog), timeout_s=1800)
        notes.append(meter.stop(len(backlog)))
        drained = output_key(await stored_messages(js, validation))
        await publish_paced(js, paced, rate)
        await wait_stream_count(js, validation, len(backlog) + len(paced), timeout_s=600)
        inputs = {
            m.headers.get(headers.MSG_ID, ""): m.at for m in await stored_messages(js, input_stream)
        }
        outputs = output_key(await stored_messages(js, validation))
        rss = workers.peak_rss_mb()
    finally:
        notes += workers.stop()
    backlog_ids = {msg_id for _, _, msg_id in backlog}
    paced_ids = {msg_id for _, _, msg_id in paced}
    latency = latencies_ms(
        {k: v for k, v in inputs.items() if k in paced_ids},
        {k: v for k, v in outputs.items() if k in paced_ids},
    )
    if len(latency) != len(paced):
        notes.append(f"latency samples: {len(latency)} of {len(paced)}")
    if len(rss) > 1:
        notes.append("peak RSS is the sum of " + " + ".join(f"{r:.1f}" for r in rss) + " MiB")
    return RowResult(
        name=name,
        msgs_per_s=throughput([v for k, v in drained.items() if k in backlog_ids]),
        p50_ms=percentile(latency, 50),
        p99_ms=percentile(latency, 99),
        peak_rss_mb=sum(rss),
        notes=notes,
        worker_us=meter.worker_us,
        server_us=meter.server_us,
    )


async def run_noop_row(
    bench: BenchServer, *, messages: int, rate: float, latency_messages: int, settings: OurSettings
) -> RowResult:
    """Row 3: tasks → validation requests through one worker running a no-op module."""
    url = bench.url
    nc = await connect(url)
    js = nc.jetstream(publish_async_max_pending=4000)
    try:
        with tempfile.TemporaryDirectory(prefix="gitstore-bench-noop-") as tmp:
            folder = Path(tmp)
            wasm = folder / "noop.wasm"
            wasm.write_bytes(noop_wasm())
            digest = module_digest(wasm.read_bytes())
            config = bench_config(url, noop_roles(wasm, settings))
            await reset_topology(js, config)
            subjects = config.topology.subjects

            def tasks(run: str, count: int) -> list[tuple[str, bytes, str]]:
                made = (noop_task(i, digest, run=run) for i in range(count))
                return [
                    (
                        subjects.task(t.kind, slot_token(t.idempotency_key)),
                        canonical_json(t),
                        t.idempotency_key,
                    )
                    for t in made
                ]

            spec = role_consumer(config, ENRICHER)
            return await _measure(
                js,
                config,
                bench,
                name=NOOP_ROW,
                workers=Workers(config, folder, [ENRICHER], 1, settings=settings, label="noop"),
                input_stream=config.topology.tasks_stream,
                durable_stream=spec.stream,
                durable=spec.durable,
                backlog=tasks("backlog", messages),
                paced=tasks("paced", latency_messages),
                rate=rate,
                output_key=_validation_keys,
            )
    finally:
        await nc.close()


async def run_compile_row(
    bench: BenchServer,
    *,
    processes: int,
    messages: int,
    rate: float,
    latency_messages: int,
    settings: OurSettings,
) -> RowResult:
    """Row 4: git events → planner → markdown-compiler → validation, on ``processes`` workers."""
    url = bench.url
    nc = await connect(url)
    js = nc.jetstream(publish_async_max_pending=4000)
    try:
        with tempfile.TemporaryDirectory(prefix="gitstore-bench-compile-") as tmp:
            config = bench_config(url, compile_roles(settings))
            await reset_topology(js, config)
            subjects = config.topology.subjects

            def events(run: str, count: int) -> list[tuple[str, bytes, str]]:
                made = (product_event(i, run=run) for i in range(count))
                return [
                    (subjects.git_push(e.repository_id), msgspec.json.encode(e), e.event_id)
                    for e in made
                ]

            spec = role_consumer(config, PLANNER)
            return await _measure(
                js,
                config,
                bench,
                name=COMPILE_ROW.format(n=processes),
                workers=Workers(
                    config,
                    Path(tmp),
                    [PLANNER, MARKDOWN_COMPILER],
                    processes,
                    settings=settings,
                    label=f"compile-x{processes}",
                ),
                input_stream=config.topology.events_stream,
                durable_stream=spec.stream,
                durable=spec.durable,
                backlog=events("backlog", messages),
                paced=events("paced", latency_messages),
                rate=rate,
                output_key=_by_source_event,
            )
    finally:
        await nc.close()
