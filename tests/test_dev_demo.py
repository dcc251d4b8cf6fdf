"""``gitstore-agents dev --demo``: from any directory, and again after a module changes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from gitstore_agents.embedded import NatsServer
from gitstore_agents.envelopes import sha256_digest

from .wasm_modules import text_module

ENRICHED_V2 = b'{"enriched":"v2"}'


def _demo(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "gitstore_agents", "dev", "--demo", "--data-dir", "data", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _follow_ups(out: str) -> dict[tuple[str, str], tuple[str, str]]:
    """(kind and extension, path) -> (output digest, module digest) of each follow-up line."""
    found = re.findall(
        r"^follow-up (\S+(?: \S+@\S+)?) for (\S+): validation request "
        r"output_digest=(\S+) module=(\S+)$",
        out,
        re.MULTILINE,
    )
    return {(kind, path): (output, module) for kind, path, output, module in found}


def test_the_demo_runs_anywhere_and_shows_a_changed_modules_results(tmp_path: Path) -> None:
    first = _demo(tmp_path)
    compiled = re.findall(r"^validation request stored: .* seq=(\d+) subject=(\S+)$", first, re.M)
    assert len(compiled) == 2, first
    before = _follow_ups(first)
    assert sorted(kind for kind, _ in before) == [
        "catalog.enrich",
        "catalog.enrich",
        "extension.run seo-lint@1.0.0",
        "extension.run seo-lint@1.0.0",
    ], first

    # An author rebuilds the enricher and runs the demo again on the same data.
    module = tmp_path / "enrich-v2.wasm"
    module.write_bytes(text_module(ENRICHED_V2.decode()))
    config = tmp_path / "gitstore.yaml"
    config.write_text(
        f"roles:\n  enricher:\n    kinds:\n      catalog.enrich:\n        module: file:{module}\n"
    )
    second = _demo(tmp_path, "--config", str(config))

    assert "a duplicate: showing what the configured modules make of it" in second
    again = re.findall(r"^validation request stored: .* seq=(\d+) subject=(\S+)$", second, re.M)
    assert again == compiled, "the compile module did not change: the same stored results"
    after = _follow_ups(second)
    assert after.keys() == before.keys(), second
    new_module = sha256_digest(module.read_bytes())
    for (kind, path), (output, digest) in after.items():
        if kind == "catalog.enrich":
            assert (output, digest) == (sha256_digest(ENRICHED_V2), new_module), (kind, path)
        else:
            assert (output, digest) == before[kind, path], "the extension did not change"


def test_the_demo_never_runs_on_someone_elses_server(tmp_path: Path) -> None:
    # A port taken by another nats-server: the bundled one cannot listen and exits
    # after its log began. The demo must say so, not publish to the other server.
    other = NatsServer(tmp_path / "other").start()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "gitstore_agents", "dev", "--demo", "--port", str(other.port)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        other.stop()
    assert done.returncode == 1
    assert done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("gitstore-agents: error: nats-server-failed: nats-server exited")
    assert "address already in use" in line
