"""Fault run: git events through a worker that is SIGKILLed at random moments.

Starts a bundled nats-server, provisions the topology, publishes N git events
(one product file each), then runs a real ``gitstore-agents worker`` process
with every role and kills it with SIGKILL K times, each time when the number of
stored validation results reaches a random fraction of the total, restarting
it at once (as Kubernetes would). When every consumer is drained it prints:

* events in, tasks expected (compile + enrich + one per extension, per file),
* validation results stored, distinct task keys among them, duplicates, missing,
* diagnostics and dead letters, messages left unacknowledged or pending,
* redeliveries, kills, wall time.

Exit code 0 only with exactly one validation result per task and nothing unacked.

    python -m bench.fault_sigkill                      # 2,000 events, 5 kills
    python -m bench.fault_sigkill --events 200 --kills 2 --modules test
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import msgspec
import nats
import wasmtime
from nats.js import JetStreamContext

from gitstore_agents.config import (
    CATALOG_ENRICH,
    EXTENSION_RUN,
    MARKDOWN_COMPILE,
    ROLES,
    Config,
    load_config,
)
from gitstore_agents.consumers import (
    RunRecord,
    dead_letter_consumer,
    provision,
    read_subject,
    role_consumer,
)
from gitstore_agents.embedded import NatsServer
from gitstore_agents.envelopes import Blob, GitEvent, ValidationRequest, git_blob_oid, headers
from gitstore_agents.sandbox import REFERENCE_MODULES, reference_module_path

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


class FaultReport(msgspec.Struct, kw_only=True):
    """What a fault run ended with."""

    events_in: int
    tasks_expected: int
    validation_results_stored: int
    distinct_tasks_with_result: int
    duplicates: int
    missing: int
    diagnostics: int
    dead_letters: int
    unacked: int
    pending: int
    tasks_rerun: int
    results_republished_and_dropped: int
    extra_attempts: int
    kills: int
    modules: str
    seconds: float

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


def _echo(key: str) -> bytes:
    return wasmtime.wat2wasm(_ECHO_WAT.replace("KEY", key).replace("LEN", str(len(key) + 4)))


def _module_refs(kind_modules: str, folder: Path) -> tuple[dict[str, str], str]:
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


def fault_config(url: str, modules: dict[str, str], *, concurrency: int) -> Config:
    """Every role in one process, with ack waits short enough for a bench run."""
    role = {
        "concurrency": concurrency,
        "ack_wait_s": 6.0,
        "backoff_s": [0.5, 1.0, 2.0],
        "max_deliver": 5,
        "fetch_expires_s": 2.0,
        "fetch_heartbeat_s": 0.5,
    }

    def kind(k: str) -> dict[str, Any]:
        return {"module": modules[k], "limits": {"timeout_ms": 2000}}

    overrides: dict[str, Any] = {
        "nats": {"url": url, "request_timeout_s": 1.0, "reconnect_wait_s": 0.2},
        "health": {"port": None},
        "publish_timeout_s": 2.0,
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
                        "extensions": [{"name": "sample", "version": "1.0.0"}],
                    }
                },
            },
        },
    }
    return load_config(env={}, overrides=overrides)


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


async def _publish_events(js: JetStreamContext, config: Config, count: int) -> None:
    subjects = config.topology.subjects
    for start in range(0, count, 200):
        futures = [
            await js.publish_async(
                subjects.git_push(event.repository_id),
                msgspec.json.encode(event),
                headers={headers.MSG_ID: event.event_id},
            )
            for event in (make_event(n) for n in range(start, min(start + 200, count)))
        ]
        await asyncio.gather(*futures)


def _start_worker(config_file: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITSTORE_")}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "gitstore_agents", "worker", "--config", str(config_file)],
            stdout=subprocess.DEVNULL,
            stderr=out,
            env=env,
        )


async def _count(js: JetStreamContext, stream: str) -> int:
    return (await js.stream_info(stream)).state.messages


async def _backlog(js: JetStreamContext, config: Config) -> tuple[int, int]:
    """Messages pending and delivered-but-unacknowledged, over every durable."""
    pending = unacked = 0
    for role in ROLES:
        for spec in (role_consumer(config, role), dead_letter_consumer(config, role)):
            info = await js.consumer_info(spec.stream, spec.durable)
            pending += info.num_pending
            unacked += info.num_ack_pending
    return pending, unacked


async def run_fault(
    *,
    events: int = 2000,
    kills: int = 5,
    modules: str = "auto",
    concurrency: int = 4,
    seed: int | None = None,
    workdir: Path | None = None,
    timeout_s: float = 900.0,
    progress: bool = False,
) -> FaultReport:
    """Run the fault scenario and count what it left behind."""
    rng = random.Random(seed)
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        folder = workdir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        server = stack.enter_context(NatsServer(folder / "nats"))
        refs, module_kind = _module_refs(modules, folder / "modules")
        config = fault_config(server.url, refs, concurrency=concurrency)
        config_file = folder / "gitstore.yaml"
        config_file.write_bytes(msgspec.yaml.encode(msgspec.to_builtins(config)))
        per_event = 1 + 1 + len(config.kind(EXTENSION_RUN)[1].extensions)
        expected = events * per_event

        nc = await nats.connect(server.url)
        try:
            js = nc.jetstream()
            await provision(js, config)
            await _publish_events(js, config, events)
            # Kill when the stored results reach random fractions of the total.
            targets = sorted(rng.uniform(0.05, 0.9) * expected for _ in range(kills))
            log = folder / "worker.log"
            done_kills = await _drive(
                js,
                config,
                config_file=config_file,
                log=log,
                targets=targets,
                expected=expected,
                rng=rng,
                timeout_s=timeout_s,
                progress=progress,
            )
            counts = await _collect(js, config)
            counts["republished"] = _republished(log)
        finally:
            await nc.close()
    keys = counts["keys"]
    return FaultReport(
        events_in=counts["events_in"],
        tasks_expected=expected,
        validation_results_stored=len(keys),
        distinct_tasks_with_result=len(set(keys)),
        duplicates=len(keys) - len(set(keys)),
        missing=expected - len(set(keys)),
        diagnostics=counts["diagnostics"],
        dead_letters=counts["dead_letters"],
        unacked=counts["unacked"],
        pending=counts["pending"],
        tasks_rerun=counts["tasks_rerun"],
        results_republished_and_dropped=counts["republished"],
        extra_attempts=counts["extra_attempts"],
        kills=done_kills,
        modules=module_kind,
        seconds=round(time.monotonic() - started, 1),
    )


async def _drive(
    js: JetStreamContext,
    config: Config,
    *,
    config_file: Path,
    log: Path,
    targets: list[float],
    expected: int,
    rng: random.Random,
    timeout_s: float,
    progress: bool,
) -> int:
    """Run the worker, SIGKILL and restart it at each target, wait until all is settled."""
    validation = config.topology.validation_stream
    worker = _start_worker(config_file, log)
    kills = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    try:
        while loop.time() < deadline:
            stored = await _count(js, validation)
            if kills < len(targets) and stored >= targets[kills]:
                await asyncio.sleep(rng.uniform(0, 0.05))
                worker.send_signal(signal.SIGKILL)
                worker.wait()
                kills += 1
                if progress:
                    print(f"  SIGKILL #{kills} at {stored}/{expected} results", flush=True)
                worker = _start_worker(config_file, log)
                continue
            if kills == len(targets) and stored >= expected:
                pending, unacked = await _backlog(js, config)
                if pending == 0 and unacked == 0:
                    break
            if worker.poll() is not None:
                raise RuntimeError(f"worker exited with {worker.returncode}; see {log}")
            await asyncio.sleep(0.05)
        worker.send_signal(signal.SIGTERM)
        await asyncio.to_thread(worker.wait, 30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    return kills


def _republished(log: Path) -> int:
    """Results a re-run published again and JetStream dropped (the crash-after-PubAck case)."""
    count = 0
    for line in log.read_text(errors="replace").splitlines():
        if '"event": "published"' not in line:
            continue
        with contextlib.suppress(ValueError):
            if json.loads(line).get("refs", {}).get("duplicate") == "true":
                count += 1
    return count


async def _collect(js: JetStreamContext, config: Config) -> dict[str, Any]:
    topology = config.topology
    subjects = topology.subjects
    stored = await read_subject(js, topology.validation_stream, subjects.validation_all())
    diagnostics = await read_subject(js, topology.failures_stream, subjects.failures_all())
    dead_letters = [
        m
        for m in await read_subject(js, topology.failures_stream, subjects.dead_letters_all())
        if not m[1].endswith("._requeued")
    ]
    ledger = await read_subject(
        js, f"KV_{topology.ledger_bucket}", f"$KV.{topology.ledger_bucket}.>"
    )
    attempts = [msgspec.json.decode(data, type=RunRecord).attempts for _, _, data, _ in ledger]
    pending, unacked = await _backlog(js, config)
    return {
        "keys": [
            msgspec.json.decode(data, type=ValidationRequest).idempotency_key
            for _, _, data, _ in stored
        ],
        "diagnostics": len(diagnostics),
        "dead_letters": len(dead_letters),
        "pending": pending,
        "unacked": unacked,
        "tasks_rerun": sum(1 for a in attempts if a > 1),
        "extra_attempts": sum(a - 1 for a in attempts),
        "events_in": await _count(js, topology.events_stream),
    }


def main(argv: list[str] | None = None) -> int:
    """Command line entry: run, print the counts, exit 0 only on exactly-once."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument(
        "--modules",
        choices=("auto", "reference", "test"),
        default="auto",
        help="reference modules, echo stand-ins, or reference when built (default)",
    )
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    print(f"fault run: {args.events} events, {args.kills} SIGKILLs", flush=True)
    report = asyncio.run(
        run_fault(
            events=args.events,
            kills=args.kills,
            modules=args.modules,
            concurrency=args.concurrency,
            seed=args.seed,
            progress=True,
        )
    )
    for field in msgspec.structs.fields(FaultReport):
        print(f"{field.name.replace('_', ' '):>28}: {getattr(report, field.name)}")
    print(json.dumps(msgspec.to_builtins(report), sort_keys=True))
    print("exactly one validation result per task, nothing unacked:", report.exactly_once)
    return 0 if report.exactly_once else 1


if __name__ == "__main__":
    sys.exit(main())
