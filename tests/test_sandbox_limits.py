"""The sandbox contains runaway modules and reports why, with the right outcome."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
import wasmtime

from gitstore_agents.sandbox import (
    ModuleError,
    Outcome,
    Sandbox,
    SandboxError,
    SandboxLimits,
    _capi,
)

# A WASI command that writes its argument string to stdout, then runs `body`.
_TEMPLATE = """
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "{text}")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const {length}))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    {body}))
"""


def _module(body: str = "", text: str = '{"ok":true}') -> bytes:
    return wasmtime.wat2wasm(
        _TEMPLATE.format(text=text.replace('"', '\\"'), length=len(text), body=body)
    )


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    sb = Sandbox()
    yield sb
    sb.close()


def test_ok_run_reports_output_and_usage(sandbox: Sandbox) -> None:
    result = sandbox.run(sandbox.compile(_module()), b"", SandboxLimits())
    assert result.outcome is Outcome.OK
    assert result.stdout == b'{"ok":true}'
    assert result.fuel_used > 0
    assert result.peak_memory_bytes == 65536


def test_same_input_uses_identical_fuel(sandbox: Sandbox) -> None:
    module = sandbox.compile(_module())
    runs = [sandbox.run(module, b"", SandboxLimits()) for _ in range(3)]
    assert len({(r.stdout, r.fuel_used) for r in runs}) == 1


def test_infinite_loop_exhausts_fuel(sandbox: Sandbox) -> None:
    module = sandbox.compile(_module("(loop $l (br $l))"))
    result = sandbox.run(module, b"", SandboxLimits(fuel=1_000_000, timeout_ms=10_000))
    assert result.outcome is Outcome.FUEL_EXHAUSTED
    assert "fuel=1000000" in result.detail
    assert result.outcome.deterministic


def test_infinite_loop_hits_wall_clock_deadline(sandbox: Sandbox) -> None:
    module = sandbox.compile(_module("(loop $l (br $l))"))
    result = sandbox.run(module, b"", SandboxLimits(fuel=10**15, timeout_ms=50))
    assert result.outcome is Outcome.DEADLINE_EXCEEDED
    assert not result.outcome.deterministic
    assert result.wall_time_us < 1_000_000


def test_nonzero_exit_is_reported(sandbox: Sandbox) -> None:
    module = sandbox.compile(_module("(call $proc_exit (i32.const 3))"))
    result = sandbox.run(module, b"", SandboxLimits())
    assert result.outcome is Outcome.EXIT_NONZERO
    assert result.exit_code == 3


def test_output_beyond_cap_is_cut_and_reported(sandbox: Sandbox) -> None:
    module = sandbox.compile(_module(text="x" * 100))
    result = sandbox.run(module, b"", SandboxLimits(max_stdout_bytes=10))
    assert result.outcome is Outcome.OUTPUT_TOO_LARGE
    assert result.stdout == b"x" * 10
    assert "max_stdout_bytes=10" in result.detail


def test_memory_growth_beyond_cap_fails(sandbox: Sandbox) -> None:
    grow = "(if (i32.eq (memory.grow (i32.const 100)) (i32.const -1)) (then unreachable))"
    module = sandbox.compile(_module(grow))
    result = sandbox.run(module, b"", SandboxLimits(memory_bytes=2 * 65536))
    assert result.outcome is not Outcome.OK
    assert result.peak_memory_bytes <= 2 * 65536


def test_digest_mismatch_is_refused(sandbox: Sandbox) -> None:
    with pytest.raises(ModuleError) as info:
        sandbox.compile(_module(), expected_digest="sha256:" + "0" * 64)
    assert info.value.outcome is Outcome.DIGEST_MISMATCH


def test_garbage_bytes_are_an_invalid_module(sandbox: Sandbox) -> None:
    with pytest.raises(ModuleError) as info:
        sandbox.compile(b"\x00asm garbage")
    assert info.value.outcome is Outcome.MODULE_INVALID


def test_failed_runs_free_their_store_at_once(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A trapped run's memory (and pool slot) must not wait for the cycle
    # collector: a worker running many failing tasks would pile them up.
    deleted: list[int] = []
    delete = _capi.store_delete

    def counting_delete(store: int) -> None:
        deleted.append(store)
        delete(store)

    monkeypatch.setattr(_capi, "store_delete", counting_delete)
    module = sandbox.compile(_module("(loop $l (br $l))"))
    gc.disable()
    try:
        for _ in range(5):
            sandbox.run(module, b"", SandboxLimits(fuel=1000))
    finally:
        gc.enable()
    assert len(deleted) == 5


def test_limits_must_be_positive() -> None:
    with pytest.raises(SandboxError) as info:
        SandboxLimits(fuel=0)
    assert "limits.fuel=0" in str(info.value)


def test_limits_above_the_sandbox_ceiling_are_refused() -> None:
    with pytest.raises(SandboxError) as info:
        SandboxLimits(memory_bytes=8 * 1024 * 1024 * 1024)
    assert "limits.memory_bytes" in str(info.value)
    assert "ceiling" in str(info.value)
