"""Commands fail fast and clearly: one line on stderr, the right exit code, no hang.

Each command runs as a real process (``python -m gitstore_agents``), so what
is checked is what an operator sees: stderr line by line, the exit code, and
how long it took. Durations are bounds on a run (``elapsed < ...``), never
sleeps. "Unreachable" is either a closed port (connection refused at once) or
a socket that accepts and never answers (the connect timeout is what ends it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path

import msgspec
import pytest

import gitstore_agents
from gitstore_agents.cli import build_parser, main
from gitstore_agents.config import EXTENSION_RUN, Topology
from gitstore_agents.embedded import NatsServer
from gitstore_agents.sandbox import reference_module_path

from .guardrails_support import BASE_POLICY, worker_config, write_policy
from .hostile import wasm
from .runtime_support import start_worker, write_config, write_module
from .support import eventually
from .wasm_modules import echo_module

EVENT_ID = "0193f1c2-0000-7000-8000-000000000001"
# The sample push shipped in the package (a real file in an editable or wheel install).
GIT_EVENT = Path(str(resources.files("gitstore_agents.embedded") / "git-push.json"))
# A bound on how long a failing command may take with --connect-timeout 1:
# interpreter start, imports and the one-second timeout, with room for a busy CI box.
BOUND_S = 10.0
CONNECT_TIMEOUT = ["--connect-timeout", "1"]

# Every command that connects to NATS and then ends (``worker`` keeps retrying:
# its own tests below), with the arguments it needs besides the connection.
CONNECTING: dict[str, list[str]] = {
    "provision": ["provision"],
    "dlq list": ["dlq", "list"],
    "dlq requeue": ["dlq", "requeue", "GITSTORE_TASKS-1"],
    "replay": ["replay", "--stream", "EVENTS", "--from-seq", "1"],
    "modules list": ["modules", "list"],
    "modules push": ["modules", "push", str(reference_module_path("catalog-enrich"))],
    "trace": ["trace", EVENT_ID],
    "status ping": ["status", "ping"],
    "status event": ["status", "event", EVENT_ID],
    "status key": ["status", "key", "sha256:" + "0" * 64],
    "publish": ["publish", str(GIT_EVENT)],
    "rewind": ["rewind", "--role", "markdown-compiler", "--to-seq", "1"],
}
# Every command that reads a configuration file, with its other arguments.
WITH_CONFIG: dict[str, list[str]] = {
    **CONNECTING,
    "worker": ["worker"],
    "dev": ["dev"],
    "policy check": ["policy", "check", "{policy}"],
    "policy nats-config": ["policy", "nats-config", "{policy}"],
}
# Every command, for the bad-flag check.
EVERY_COMMAND: dict[str, list[str]] = {
    **WITH_CONFIG,
    "sandbox run": ["sandbox", "run", "m.wasm", "--input", "in.json"],
    "schema export": ["schema", "export", "schemas"],
}


class Run(msgspec.Struct, frozen=True):
    """What one command run showed."""

    code: int
    stdout: str
    stderr: str
    elapsed_s: float

    @property
    def error_lines(self) -> list[str]:
        """Non-empty stderr lines."""
        return [line for line in self.stderr.splitlines() if line.strip()]


def _env() -> dict[str, str]:
    # The developer's own GITSTORE_* settings must not leak into these runs.
    return {k: v for k, v in os.environ.items() if not k.startswith("GITSTORE_")}


def run_cli(*args: str, timeout_s: float = 60.0) -> Run:
    """Run ``gitstore-agents ARGS...`` as a process and wait for it (at most ``timeout_s``)."""
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "gitstore_agents", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=_env(),
        check=False,
    )
    return Run(
        code=result.returncode,
        stdout=result.stdout,
        stderr=result.stderr,
        elapsed_s=time.monotonic() - started,
    )


def assert_one_error_line(run: Run, *expected: str) -> str:
    """The run failed with exactly one stderr line, containing each of ``expected``."""
    assert "Traceback" not in run.stderr, run.stderr
    assert len(run.error_lines) == 1, run.stderr
    (line,) = run.error_lines
    assert line.startswith("gitstore-agents: error: "), line
    for text in expected:
        assert text in line, line
    return line


def closed_port() -> int:
    """A local port nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@contextlib.contextmanager
def silent_server() -> Iterator[socket.socket]:
    """A socket that accepts TCP connections and never says a word (no NATS INFO)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock


@contextlib.contextmanager
def first_connection(server: socket.socket) -> Iterator[socket.socket]:
    """The first connection to ``server`` (waited for, at most 30 s), closed at the end."""
    server.settimeout(30)
    connection, _ = server.accept()
    with connection:
        yield connection


def _url(sock: socket.socket) -> str:
    return f"nats://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def empty_config(tmp_path: Path) -> Path:
    """A configuration file with nothing in it (built-in defaults)."""
    path = tmp_path / "empty.yaml"
    path.write_text("{}\n")
    return path


# -- NATS unreachable -------------------------------------------------------------------------


@pytest.mark.parametrize("command", list(CONNECTING))
def test_a_command_fails_in_one_line_when_nats_refuses(command: str, empty_config: Path) -> None:
    url = f"nats://127.0.0.1:{closed_port()}"
    run = run_cli(
        *CONNECTING[command], "--config", str(empty_config), "--nats-url", url, *CONNECT_TIMEOUT
    )
    assert run.code == 1, run
    assert run.elapsed_s < BOUND_S
    assert_one_error_line(run, "cannot reach NATS", url, "connection refused", "--nats-url")


@pytest.mark.parametrize("command", list(CONNECTING))
def test_a_command_gives_up_after_the_connect_timeout(command: str, empty_config: Path) -> None:
    with silent_server() as server:
        run = run_cli(
            *CONNECTING[command],
            "--config",
            str(empty_config),
            "--nats-url",
            _url(server),
            *CONNECT_TIMEOUT,
        )
    assert run.code == 1, run
    assert 1.0 <= run.elapsed_s < BOUND_S
    assert_one_error_line(run, "cannot reach NATS", "within 1s", "no answer")


def test_the_connect_timeout_comes_from_the_configuration(tmp_path: Path) -> None:
    with silent_server() as server:
        config = tmp_path / "config.yaml"
        config.write_text(f"nats: {{url: {_url(server)}, connect_timeout_s: 1.5}}\n")
        run = run_cli("dlq", "list", "--config", str(config))
    assert run.code == 1
    assert 1.5 <= run.elapsed_s < BOUND_S
    assert_one_error_line(run, "within 1.5s")


def test_a_missing_creds_file_is_named(empty_config: Path, tmp_path: Path) -> None:
    creds = tmp_path / "nobody.creds"
    run = run_cli(
        "dlq", "list", "--config", str(empty_config), "--creds", str(creds), *CONNECT_TIMEOUT
    )
    assert run.code == 1
    assert_one_error_line(run, str(creds), "--creds")


def test_refused_credentials_say_so(tmp_path: Path, empty_config: Path) -> None:
    server = NatsServer(
        tmp_path / "nats", extra_config="authorization { user: ops, password: secret }"
    ).start()
    try:
        run = run_cli(
            "dlq", "list", "--config", str(empty_config), "--nats-url", server.url, *CONNECT_TIMEOUT
        )
    finally:
        server.stop()
    assert run.code == 1
    assert_one_error_line(run, "authorization violation", "--creds")


def test_ctrl_c_while_connecting_is_one_line_and_exit_130(empty_config: Path) -> None:
    with silent_server() as server:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "gitstore_agents", "dlq", "list"),
                *("--config", str(empty_config), "--nats-url", _url(server)),
                *("--connect-timeout", "60"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        try:
            # The command is in the middle of its connect once our socket has it.
            with first_connection(server):
                started = time.monotonic()
                process.send_signal(signal.SIGINT)
                out, err = process.communicate(timeout=BOUND_S)
            run = Run(
                code=process.returncode,
                stdout=out,
                stderr=err,
                elapsed_s=time.monotonic() - started,
            )
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert run.code == 130
    assert run.elapsed_s < BOUND_S
    assert_one_error_line(run, "interrupted")


# -- the same connection options everywhere ------------------------------------------------------


@pytest.mark.parametrize("command", [*CONNECTING, "worker"])
def test_every_connecting_command_takes_the_same_connection_options(command: str) -> None:
    args = CONNECTING.get(command, ["worker"])
    options = ["--config", "c.yaml", "--nats-url", "nats://h:1", "--creds", "x.creds"]
    options += ["--connect-timeout", "2.5", "--tls-ca", "ca.pem", "--tls-cert", "c.crt"]
    options += ["--tls-key", "c.key", "--tls-server-name", "nats.example.com"]
    parsed = _parse([*args, *options])
    assert (parsed.nats_url, parsed.creds, parsed.connect_timeout) == ("nats://h:1", "x.creds", 2.5)
    assert (parsed.tls_ca, parsed.tls_cert, parsed.tls_key, parsed.tls_server_name) == (
        "ca.pem",
        "c.crt",
        "c.key",
        "nats.example.com",
    )
    assert str(parsed.config) == "c.yaml"


def test_the_connection_options_reach_a_real_server(
    tmp_path: Path, nats_url: str, topology: Topology
) -> None:
    # The file points nowhere: only --nats-url can make these succeed.
    config = tmp_path / "config.yaml"
    nowhere = f"nats://127.0.0.1:{closed_port()}"
    config.write_text(
        msgspec.yaml.encode(
            {"nats": {"url": nowhere}, "topology": msgspec.to_builtins(topology)}
        ).decode()
    )
    connection = ["--config", str(config), "--nats-url", nats_url, *CONNECT_TIMEOUT]
    provisioned = run_cli("provision", "--no-modules", *connection)
    assert provisioned.code == 0, provisioned.stderr
    assert json.loads(provisioned.stdout)["roles"]
    listed = run_cli("dlq", "list", *connection)
    assert (listed.code, listed.stdout.strip()) == (0, "no dead letters"), listed.stderr
    replayed = run_cli("replay", "--stream", "EVENTS", "--from-seq", "1", "--json", *connection)
    assert replayed.code == 0, replayed.stderr
    assert json.loads(replayed.stdout)["stream"] == topology.events_stream


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


# -- missing configuration, bad flags, --version --------------------------------------------------


@pytest.mark.parametrize("command", list(WITH_CONFIG))
def test_a_missing_config_file_is_one_line_and_exit_1(command: str, tmp_path: Path) -> None:
    policy = write_policy(tmp_path)
    args = [a.format(policy=policy) for a in WITH_CONFIG[command]]
    missing = tmp_path / "missing.yaml"
    run = run_cli(*args, "--config", str(missing))
    assert run.code == 1, run
    assert run.elapsed_s < BOUND_S
    assert_one_error_line(run, str(missing), "No such file or directory")


@pytest.mark.parametrize("command", list(EVERY_COMMAND))
def test_a_bad_flag_is_a_usage_error(command: str) -> None:
    run = run_cli(*EVERY_COMMAND[command], "--no-such-flag")
    assert run.code == 2
    assert "Traceback" not in run.stderr
    assert "unrecognized arguments: --no-such-flag" in run.stderr


def test_version_prints_the_package_version() -> None:
    run = run_cli("--version")
    assert (run.code, run.stdout.strip()) == (0, f"gitstore-agents {gitstore_agents.__version__}")


def test_an_unexpected_error_is_one_line_with_its_type_and_debug_shows_the_traceback(
    tmp_path: Path,
) -> None:
    # `schema export` into a path that is a file: an OSError nobody turned into
    # a message on purpose, which is what --debug is for.
    target = tmp_path / "a-file"
    target.write_text("not a folder")
    run = run_cli("schema", "export", str(target / "schemas"))
    assert run.code == 1
    line = assert_one_error_line(run, "Error: ", "(run with --debug for the traceback)")
    assert "NotADirectoryError" in line or "FileExistsError" in line

    debug = run_cli("--debug", "schema", "export", str(target / "schemas"))
    assert debug.code == 1
    assert "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.rstrip().splitlines()[-1].startswith("gitstore-agents: error: ")


# -- worker ---------------------------------------------------------------------------------------


def _worker_config(tmp_path: Path, url: str, **health: object) -> Path:
    config = tmp_path / "worker.yaml"
    nats = {"url": url, "connect_timeout_s": 1, "reconnect_wait_s": 0.1}
    config.write_text(
        msgspec.yaml.encode({"nats": nats, "health": {"port": None, **health}}).decode()
    )
    return config


async def _read(path: Path) -> str:
    return await asyncio.to_thread(lambda: path.read_text() if path.exists() else "")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_worker_that_cannot_reach_nats_retries_and_stops_on_a_signal(
    tmp_path: Path, sig: signal.Signals
) -> None:
    log = tmp_path / "worker.log"
    url = f"nats://127.0.0.1:{closed_port()}"
    process = start_worker(_worker_config(tmp_path, url), ["planner"], log)
    try:
        # Two attempts logged: it retries (and is between attempts or in one).
        await eventually(
            lambda: _read(log),
            lambda content: content.count("cannot connect to NATS; retrying") >= 2,
            timeout_s=BOUND_S * 3,
            what="the worker to log two connection attempts",
        )
        process.send_signal(sig)
        started = time.monotonic()
        code = process.wait(timeout=BOUND_S)
        assert time.monotonic() - started < 5.0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert code == 0
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    retries = [line for line in lines if line["event"] == "cannot connect to NATS; retrying"]
    assert retries[0]["url"] == url
    assert retries[0]["error"] == "connection refused"
    assert "Traceback" not in log.read_text()


async def test_a_worker_stops_on_sigterm_in_the_middle_of_a_connection_attempt(
    tmp_path: Path,
) -> None:
    log = tmp_path / "worker.log"
    with silent_server() as server:
        config = tmp_path / "worker.yaml"
        config.write_text(
            f"nats: {{url: '{_url(server)}', connect_timeout_s: 120}}\nhealth: {{port: null}}\n"
        )
        process = start_worker(config, ["planner"], log)
        try:
            # The attempt is under way (and would last 120 s) once our socket has it.
            with first_connection(server):
                process.send_signal(signal.SIGTERM)
                code = process.wait(timeout=5.0)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert code == 0
    assert "Traceback" not in log.read_text()


def test_a_taken_health_port_is_named_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        url = f"nats://127.0.0.1:{closed_port()}"
        config = _worker_config(tmp_path, url, port=port, host="127.0.0.1")
        run = run_cli("worker", "--role", "planner", "--config", str(config))
    assert run.code == 1
    assert run.elapsed_s < BOUND_S
    assert_one_error_line(
        run, f"health.port={port}", "health.host=127.0.0.1", "in use", "GITSTORE_HEALTH_PORT"
    )


# -- sandbox run ----------------------------------------------------------------------------------


def test_sandbox_run_names_a_missing_module_or_input(tmp_path: Path) -> None:
    missing = tmp_path / "missing.wasm"
    task_input = tmp_path / "input.json"
    task_input.write_text("{}")
    run = run_cli("sandbox", "run", str(missing), "--input", str(task_input))
    assert run.code == 1
    assert_one_error_line(run, f"module {missing}", "No such file or directory")

    module = tmp_path / "echo.wasm"
    module.write_bytes(wasm("echo"))
    run = run_cli("sandbox", "run", str(module), "--input", str(tmp_path / "nope.json"))
    assert run.code == 1
    assert_one_error_line(run, f"input {tmp_path / 'nope.json'}")


def test_sandbox_run_shows_a_bounded_preview_of_an_output_flood(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = tmp_path / "flood.wasm"
    module.write_bytes(wasm("stdout_flood"))
    task_input = tmp_path / "input.json"
    task_input.write_text("{}")
    code = main(["sandbox", "run", str(module), "--input", str(task_input)])
    out = capsys.readouterr().out
    assert code == 1
    assert len(out) < 16 * 1024
    report = json.loads(out)
    assert report["outcome"] == "output-too-large"
    assert report["stdout_bytes"] == 4 * 1024 * 1024
    assert report["stdout_truncated"] is True
    assert report["stdout_preview"] == "x" * 2048
    assert "stdout" not in report
    assert report["output"] is None

    # Everything, when asked for.
    main(["sandbox", "run", str(module), "--input", str(task_input), "--full"])
    assert len(json.loads(capsys.readouterr().out)["stdout"]) == 4 * 1024 * 1024


def test_sandbox_run_keeps_a_noisy_stderr_to_its_last_words(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = tmp_path / "noisy.wasm"
    module.write_bytes(wasm("stderr_flood"))
    task_input = tmp_path / "input.json"
    task_input.write_text("{}")
    assert main(["sandbox", "run", str(module), "--input", str(task_input)]) == 0
    out = capsys.readouterr().out
    assert len(out) < 16 * 1024
    report = json.loads(out)
    assert report["output"] == {"done": True}
    assert report["stderr_bytes"] == 64 * 1024
    assert report["stderr_preview"].endswith("last words\n")


# -- policy check ----------------------------------------------------------------------------------


def test_policy_check_refuses_a_repeated_key(tmp_path: Path) -> None:
    # A reviewer reads the first paths; YAML would keep the second.
    text = BASE_POLICY.replace(
        '    paths: ["products/**/*.md"]\n    publishes_tasks: [catalog.enrich, extension.run]\n',
        '    paths: ["products/**/*.md"]\n    publishes_tasks: [catalog.enrich, extension.run]\n'
        '    paths: ["**"]\n',
    )
    assert text != BASE_POLICY
    policy = write_policy(tmp_path, text)
    run = run_cli("policy", "check", str(policy))
    assert run.code == 1
    line = assert_one_error_line(run, "policy-invalid", "duplicate key 'paths'")
    assert "at line 12 (first at line 10)" in line


def test_a_worker_configuration_with_a_repeated_key_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("nats:\n  url: nats://a:4222\n  url: nats://b:4222\n")
    run = run_cli("worker", "--config", str(config))
    assert run.code == 1
    assert_one_error_line(run, "config-invalid", "duplicate key 'url' at line 3 (first at line 2)")
    check = run_cli("policy", "check", str(write_policy(tmp_path)), "--config", str(config))
    assert check.code == 1
    assert "duplicate key 'url'" in check.stderr


def test_policy_check_with_config_refuses_a_module_the_policy_does_not_allow(
    tmp_path: Path,
) -> None:
    policy = write_policy(tmp_path)
    allowed = write_config(tmp_path / "allowed.yaml", worker_config("nats://x:1", policy))
    run = run_cli("policy", "check", str(policy), "--config", str(allowed))
    assert run.code == 0, run.stderr
    assert f"policy {policy}: valid" in run.stdout

    # Same configuration, but the extension runner runs a module of its own.
    module = write_module(tmp_path, "own", echo_module("own"))
    config = worker_config("nats://x:1", policy, modules={EXTENSION_RUN: module})
    refused = write_config(tmp_path / "refused.yaml", config)
    run = run_cli("policy", "check", str(policy), "--config", str(refused))
    assert run.code == 1
    assert "valid" not in run.stdout
    assert "roles.extension-runner.kinds.extension.run: module sha256:" in run.stderr
    assert "is not allowed by the policy's roles.extension-runner.modules" in run.stderr
