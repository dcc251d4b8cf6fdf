"""``gitstore-agents sandbox run`` and ``modules push|list``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitstore_agents.cli import main
from gitstore_agents.sandbox import module_digest

from .hostile import wasm


def _file(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_sandbox_run_prints_the_result_as_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = _file(tmp_path, "echo.wasm", wasm("echo"))
    task_input = _file(tmp_path, "input.json", b'{"path": "products/a.md"}')
    code = main(["sandbox", "run", str(module), "--input", str(task_input)])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["outcome"] == "ok"
    assert report["output"] == {"path": "products/a.md"}
    assert report["module_digest"] == module_digest(wasm("echo"))
    assert report["usage"]["fuel"] > 0
    assert report["usage"]["peak_memory_bytes"] == 2 * 65536


def test_sandbox_run_applies_the_limits_and_fails_nonzero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = _file(tmp_path, "spin.wasm", wasm("spin"))
    task_input = _file(tmp_path, "input.json", b"{}")
    code = main(["sandbox", "run", str(module), "--input", str(task_input), "--fuel", "5000"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    assert report["outcome"] == "fuel-exhausted"
    assert report["deterministic"] is True
    assert report["usage"]["fuel"] == 5000


def test_sandbox_run_reports_a_refused_module(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = _file(tmp_path, "foreign.wasm", wasm("foreign_import"))
    task_input = _file(tmp_path, "input.json", b"{}")
    code = main(["sandbox", "run", str(module), "--input", str(task_input)])
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    assert report["outcome"] == "module-invalid"
    assert "read_host_secrets" in report["detail"]


def test_sandbox_run_feeds_the_logical_time_and_memory_cap(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = _file(tmp_path, "bomb.wasm", wasm("memory_bomb"))
    task_input = _file(tmp_path, "input.json", b"{}")
    code = main(["sandbox", "run", str(module), "--input", str(task_input), "--memory-mb", "4"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    assert report["outcome"] == "memory-limit"
    assert report["usage"]["peak_memory_bytes"] <= 4 * 1024 * 1024

    clock = _file(tmp_path, "clock.wasm", wasm("time_entropy"))
    main(
        [
            "sandbox",
            "run",
            str(clock),
            "--input",
            str(task_input),
            "--logical-time",
            "2026-11-29T08:00:00Z",
        ]
    )
    stdout = json.loads(capsys.readouterr().out)["stdout"]
    assert stdout  # not JSON: raw text is reported instead of output


def test_modules_push_prints_the_digest_and_list_shows_it(
    tmp_path: Path, nats_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    module = _file(tmp_path, "echo.wasm", wasm("echo"))
    bucket = ["--nats-url", nats_url, "--bucket", "cli-modules"]
    assert main(["modules", "push", str(module), *bucket]) == 0
    digest = capsys.readouterr().out.strip()
    assert digest == module_digest(wasm("echo"))

    assert main(["modules", "list", *bucket]) == 0
    listed = capsys.readouterr().out
    assert digest in listed
    assert "echo.wasm" in listed


def test_modules_push_refuses_a_module_no_worker_could_run(
    tmp_path: Path, nats_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    module = _file(tmp_path, "foreign.wasm", wasm("foreign_import"))
    code = main(["modules", "push", str(module), "--nats-url", nats_url, "--bucket", "cli-x"])
    assert code == 1  # the command ran and failed: 2 is for a bad command line
    assert "module-invalid" in capsys.readouterr().err
