"""Compiled artifacts on disk: reused across sandboxes, never trusted when damaged."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from gitstore_agents.sandbox import ArtifactCache, Limits, Outcome, Sandbox, module_digest

from .hostile import wasm


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def sandboxes() -> Iterator[list[Sandbox]]:
    opened: list[Sandbox] = []
    yield opened
    for sandbox in opened:
        sandbox.close()


def _sandbox(cache_dir: Path, opened: list[Sandbox]) -> Sandbox:
    sandbox = Sandbox(cache_dir=cache_dir)
    opened.append(sandbox)
    return sandbox


def _artifact(sandbox: Sandbox, digest: str) -> Path:
    assert sandbox.artifacts is not None
    return sandbox.artifacts.path(digest)


def test_a_new_sandbox_loads_the_artifact_without_the_module_bytes(
    cache_dir: Path, sandboxes: list[Sandbox]
) -> None:
    first = _sandbox(cache_dir, sandboxes)
    digest = first.compile(wasm("echo")).digest
    assert _artifact(first, digest).is_file()
    assert os.stat(cache_dir).st_mode & 0o777 == 0o700

    second = _sandbox(cache_dir, sandboxes)
    module = second.cached(digest)
    assert module is not None
    result = second.run(module, b"from disk", Limits())
    assert (result.outcome, result.stdout) == (Outcome.OK, b"from disk")


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[: len(data) // 2], id="truncated"),
        # wasmtime itself notices almost no single-bit flip: only our checksum does.
        pytest.param(
            lambda data: bytes(b ^ (i == len(data) // 2) for i, b in enumerate(data)),
            id="bit-flip",
        ),
        pytest.param(lambda data: b"", id="empty"),
        pytest.param(lambda data: b"\x7fELF" + data[4:], id="foreign-header"),
    ],
)
def test_a_damaged_artifact_is_refused_and_rebuilt(
    cache_dir: Path, sandboxes: list[Sandbox], damage: object
) -> None:
    assert callable(damage)
    first = _sandbox(cache_dir, sandboxes)
    digest = first.compile(wasm("echo")).digest
    path = _artifact(first, digest)
    path.write_bytes(damage(path.read_bytes()))

    second = _sandbox(cache_dir, sandboxes)
    assert second.cached(digest) is None  # never deserialized
    module = second.compile(wasm("echo"))  # falls back to compiling
    assert second.run(module, b"ok", Limits()).stdout == b"ok"
    third = _sandbox(cache_dir, sandboxes)
    assert third.cached(digest) is not None  # and the artifact was rewritten


def test_an_artifact_copied_under_another_digest_is_refused(
    cache_dir: Path, sandboxes: list[Sandbox]
) -> None:
    first = _sandbox(cache_dir, sandboxes)
    echo = first.compile(wasm("echo")).digest
    spin = module_digest(wasm("spin"))
    _artifact(first, spin).write_bytes(_artifact(first, echo).read_bytes())
    assert _sandbox(cache_dir, sandboxes).cached(spin) is None


def test_artifacts_of_another_engine_are_not_candidates(cache_dir: Path) -> None:
    ours = ArtifactCache(cache_dir, "a" * 32)
    theirs = ArtifactCache(cache_dir, "b" * 32)
    digest = module_digest(b"module")
    ours.store(digest, b"artifact bytes")
    assert ours.load(digest) == b"artifact bytes"
    assert theirs.load(digest) is None


def test_a_cache_directory_writable_by_others_is_not_used(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    cache = ArtifactCache(shared, "a" * 32)
    digest = module_digest(b"module")
    cache.store(digest, b"artifact bytes")
    assert not cache.usable
    assert list(shared.iterdir()) == []
    assert cache.load(digest) is None
