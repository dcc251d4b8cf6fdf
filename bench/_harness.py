"""Shared harness: a real nats-server, fresh streams, worker processes, server-clock timing."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamConfig
from nats.js.errors import NotFoundError

from gitstore_agents.embedded import NatsServer


@dataclass
class RowResult:
    """One row of the comparison table."""

    name: str
    msgs_per_s: float
    p50_ms: float
    p99_ms: float
    peak_rss_mb: float
    notes: list[str] = field(default_factory=list)
    worker_us: float = float("nan")
    """Worker CPU per message (all processes) while draining."""
    server_us: float = float("nan")
    """nats-server CPU per message while draining."""


class BenchServer:
    """A nats-server in a temporary folder for the whole run."""

    def __init__(self, *, sync_always: bool = True) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="gitstore-bench-")
        self.store_dir = Path(self._tmp.name)
        self.server = NatsServer(self.store_dir / "nats", sync_always=sync_always)

    def __enter__(self) -> BenchServer:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()
        self._tmp.cleanup()

    @property
    def url(self) -> str:
        """Client URL."""
        return self.server.url

    def cpu_seconds(self) -> float:
        """CPU time the server has used so far."""
        return cpu_seconds(self.server.pid)


async def connect(url: str) -> Client:
    """A connection with a publish-async window large enough for preloading."""
    return await nats.connect(url)


async def recreate_stream(js: JetStreamContext, name: str, subjects: list[str]) -> None:
    """Delete ``name`` if it exists and create it empty."""
    with contextlib.suppress(NotFoundError):
        await js.delete_stream(name)
    await js.add_stream(StreamConfig(name=name, subjects=subjects, duplicate_window=120.0))


async def publish_all(js: JetStreamContext, messages: Sequence[tuple[str, bytes, str]]) -> None:
    """Publish ``(subject, payload, msg_id)`` messages, awaiting PubAcks in windows."""
    window = 2000
    for start in range(0, len(messages), window):
        futures = [
            await js.publish_async(subject, payload, headers={"Nats-Msg-Id": msg_id})
            for subject, payload, msg_id in messages[start : start + window]
        ]
        await asyncio.gather(*futures)


async def publish_paced(
    js: JetStreamContext, messages: Sequence[tuple[str, bytes, str]], rate: float
) -> None:
    """Publish at ``rate`` messages per second (fixed offered load), PubAcks async."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    futures = []
    for i, (subject, payload, msg_id) in enumerate(messages):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)  # pacing the offered load, not synchronization
        futures.append(await js.publish_async(subject, payload, headers={"Nats-Msg-Id": msg_id}))
    await asyncio.gather(*futures)


async def stored_times(
    js: JetStreamContext, stream: str, key_header: str = "Nats-Msg-Id"
) -> dict[str, float]:
    """Map each stored message's ``key_header`` to its server storage time (epoch seconds)."""
    info = await js.stream_info(stream)
    total = info.state.messages
    if total == 0:
        return {}
    sub = await js.pull_subscribe(
        "",
        stream=stream,
        config=ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL),
    )
    out: dict[str, float] = {}
    seen = 0
    try:
        while seen < total:
            msgs = await sub.fetch(min(1000, total - seen), timeout=5)
            for m in msgs:
                seen += 1
                key = (m.headers or {}).get(key_header, str(m.metadata.sequence.stream))
                out[key] = m.metadata.timestamp.timestamp()
    finally:
        await sub.unsubscribe()
    return out


@dataclass(frozen=True)
class Stored:
    """One stored message: headers, payload and the server's storage time."""

    headers: dict[str, str]
    data: bytes
    at: float


async def stored_messages(js: JetStreamContext, stream: str) -> list[Stored]:
    """Every message ``stream`` holds, oldest first, with its server storage time."""
    info = await js.stream_info(stream)
    total = info.state.messages
    if total == 0:
        return []
    sub = await js.pull_subscribe(
        "",
        stream=stream,
        config=ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL),
    )
    out: list[Stored] = []
    try:
        while len(out) < total:
            for m in await sub.fetch(min(1000, total - len(out)), timeout=5):
                out.append(Stored(dict(m.headers or {}), m.data, m.metadata.timestamp.timestamp()))
    finally:
        await sub.unsubscribe()
    return out


async def wait_stream_count(
    js: JetStreamContext, stream: str, count: int, timeout_s: float
) -> None:
    """Wait until ``stream`` holds at least ``count`` messages."""
    deadline = time.monotonic() + timeout_s
    while True:
        info = await js.stream_info(stream)
        if info.state.messages >= count:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{stream} holds {info.state.messages} of {count} messages after {timeout_s}s"
            )
        await asyncio.sleep(0.05)


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile (0-100) by the nearest-rank method."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def throughput(times: Sequence[float]) -> float:
    """Messages per second over the span between the first and last stored output."""
    if len(times) < 2:
        return float("nan")
    span = max(times) - min(times)
    return (len(times) - 1) / span if span > 0 else float("inf")


def latencies_ms(inputs: dict[str, float], outputs: dict[str, float]) -> list[float]:
    """Per-message ``output stored - input stored`` in milliseconds."""
    return [(outputs[k] - inputs[k]) * 1000 for k in outputs if k in inputs]


def median(values: Sequence[float]) -> float:
    """Median, NaN for no values."""
    return statistics.median(values) if values else float("nan")


def free_port() -> int:
    """A TCP port that was free a moment ago (for a worker's health server)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def http_status(port: int, path: str) -> int:
    """Status code of ``GET path`` on ``127.0.0.1:port`` (0 when nothing answers)."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return 0
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
        await writer.drain()
        line = await reader.readline()
    except OSError:
        return 0
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    parts = line.split()
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


class WorkerProcess:
    """A worker in its own process, so its peak RSS is its own."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        # stderr goes to a file: a pipe nobody drains blocks a chatty worker.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            argv,
            env={**os.environ, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )

    def peak_rss_mb(self) -> float:
        """VmHWM of the process (Linux), in MiB."""
        return self._status_mb("VmHWM:")

    def rss_mb(self) -> float:
        """VmRSS of the process (Linux), in MiB: its resident memory now."""
        return self._status_mb("VmRSS:")

    def _status_mb(self, field_name: str) -> float:
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return float("nan")
        for line in status.splitlines():
            if line.startswith(field_name):
                return int(line.split()[1]) / 1024
        return float("nan")

    async def wait_ready(self, port: int, timeout_s: float = 60.0) -> None:
        """Wait until the worker's ``/readyz`` on ``port`` answers 200."""
        deadline = time.monotonic() + timeout_s
        while await http_status(port, "/readyz") != 200:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}: {self.stop()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker not ready after {timeout_s}s: {self.stop()}")
            await asyncio.sleep(0.1)

    def stop(self) -> str:
        """SIGTERM, wait, and return the tail of its stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._stderr.closed:
            # Stopped before (a failed start reports its tail, then the row stops all).
            return ""
        self._stderr.seek(0)
        err = self._stderr.read().decode(errors="replace")
        self._stderr.close()
        return "\n".join(err.splitlines()[-20:])


def cpu_seconds(pid: int | None) -> float:
    """User plus system CPU time a process has used so far (Linux), NaN if unknown."""
    if pid is None:
        return float("nan")
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return float("nan")
    # utime and stime are fields 14 and 15 of /proc/<pid>/stat (1-based).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU time every process on the machine has used since boot (Linux ``/proc/stat``)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return float("nan")
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """Cores used by the workers, by nats-server and by the whole machine meanwhile."""

    def __init__(self, server: BenchServer, workers: Sequence[WorkerProcess]) -> None:
        self._server = server
        self._pids = [w.proc.pid for w in workers]
        self._began = (0.0, 0.0, 0.0, 0.0)
        self.worker_us = float("nan")
        self.server_us = float("nan")

    def _now(self) -> tuple[float, float, float, float]:
        workers = sum(cpu_seconds(pid) for pid in self._pids)
        return time.monotonic(), workers, self._server.cpu_seconds(), machine_busy_seconds()

    def start(self) -> None:
        """Begin measuring."""
        self._began = self._now()

    def stop(self, messages: int) -> str:
        """A note: cores used by the workers and the server since ``start``, and
        the workers' CPU time per message of the ``messages`` drained meanwhile."""
        now = self._now()
        wall = now[0] - self._began[0]
        if wall <= 0:
            return "cpu: n/a"
        worker_s = now[1] - self._began[1]
        server = (now[2] - self._began[2]) / wall
        machine = (now[3] - self._began[3]) / wall
        per_message = worker_s / messages * 1e6 if messages else float("nan")
        self.worker_us = per_message
        if messages:
            self.server_us = (now[2] - self._began[2]) / messages * 1e6
        return (
            f"while draining: worker(s) {worker_s / wall:.2f} cores "
            f"({per_message:,.0f} us CPU per message), nats-server {server:.2f}, "
            f"whole machine {machine:.2f} of {os.cpu_count()}"
        )


def python_module(module: str, *args: str) -> list[str]:
    """argv running ``python -m module args…`` with this interpreter."""
    return [sys.executable, "-m", module, *args]
