"""Hostile modules are contained, with the right outcome, within 2x their limit.

Every case runs in one shared ``Sandbox`` and is followed by a well-behaved task
that must run normally: a contained module leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import struct
import time
from collections.abc import Iterator

import pytest
import wasmtime

from gitstore_agents.sandbox import (
    Limits,
    ModuleError,
    Outcome,
    RunResult,
    Sandbox,
)
from gitstore_agents.sandbox._host import CLOCK_STEP_NS

from .hostile import wasm

LOGICAL_TIME_NS = 1_795_939_200_000_000_000  # 2026-11-29T08:00:00Z
SEED = 42


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    sb = Sandbox()
    yield sb
    sb.close()


def contained(sandbox: Sandbox, name: str, limits: Limits, stdin: bytes = b"") -> RunResult:
    """Run hostile module ``name``; check the wall-clock bound and that the next task is fine."""
    module = sandbox.compile(wasm(name))
    started = time.perf_counter()
    result = sandbox.run(module, stdin, limits, logical_time_ns=LOGICAL_TIME_NS, seed=SEED)
    elapsed_ms = (time.perf_counter() - started) * 1000
    assert elapsed_ms <= 2 * limits.timeout_ms, f"{name} took {elapsed_ms:.0f} ms"
    assert result.fuel_used <= limits.fuel
    assert result.peak_memory_bytes <= limits.memory_bytes
    following = sandbox.run(sandbox.compile(wasm("echo")), b"next task", Limits())
    assert following.outcome is Outcome.OK, following.detail
    assert following.stdout == b"next task"
    return result


def test_infinite_loop_exhausts_fuel(sandbox: Sandbox) -> None:
    result = contained(sandbox, "spin", Limits(fuel=5_000_000, timeout_ms=2_000))
    assert result.outcome is Outcome.FUEL_EXHAUSTED
    assert result.fuel_used == 5_000_000
    assert result.deterministic


def test_infinite_loop_with_ample_fuel_hits_the_deadline(sandbox: Sandbox) -> None:
    result = contained(sandbox, "spin", Limits(fuel=10**15, timeout_ms=50))
    assert result.outcome is Outcome.DEADLINE_EXCEEDED
    assert "timeout_ms=50" in result.detail
    assert not result.deterministic


def test_a_30s_poll_oneoff_sleep_returns_at_once_in_logical_time(sandbox: Sandbox) -> None:
    result = contained(sandbox, "sleep", Limits(timeout_ms=50))
    assert result.outcome is Outcome.OK, result.detail
    before, after, errno, nevents, userdata, error, kind = struct.unpack_from(
        "<QQII8xQHB", result.stdout
    )
    assert errno == 0
    assert (nevents, userdata, error, kind) == (1, 7, 0, 0)  # the clock event completed
    assert after - before >= 30_000_000_000  # logical time moved 30 s


def test_sleeping_forever_is_stopped_by_the_deadline(sandbox: Sandbox) -> None:
    # With wasmtime's own poll_oneoff this module sleeps 30 s per call and
    # neither fuel nor the epoch can interrupt it.
    result = contained(sandbox, "sleep_forever", Limits(fuel=10**15, timeout_ms=50))
    assert result.outcome is Outcome.DEADLINE_EXCEEDED


def test_sleeping_forever_exhausts_fuel_deterministically(sandbox: Sandbox) -> None:
    limits = Limits(fuel=20_000_000, timeout_ms=2_000)
    first = contained(sandbox, "sleep_forever", limits)
    second = contained(sandbox, "sleep_forever", limits)
    assert first.outcome is second.outcome is Outcome.FUEL_EXHAUSTED


def test_deep_recursion_traps_on_stack_overflow(sandbox: Sandbox) -> None:
    result = contained(sandbox, "recursion", Limits(timeout_ms=2_000))
    assert result.outcome is Outcome.TRAP
    assert "stack" in result.detail
    assert result.deterministic


def test_memory_growth_bomb_hits_the_memory_limit(sandbox: Sandbox) -> None:
    cap = 16 * 1024 * 1024
    result = contained(sandbox, "memory_bomb", Limits(memory_bytes=cap, timeout_ms=2_000))
    assert result.outcome is Outcome.MEMORY_LIMIT
    assert f"memory_bytes={cap}" in result.detail
    assert cap - 1024 * 1024 < result.peak_memory_bytes <= cap


def test_table_growth_bomb_hits_the_table_limit(sandbox: Sandbox) -> None:
    limits = Limits(max_table_elements=50_000, timeout_ms=2_000)
    result = contained(sandbox, "table_bomb", limits)
    assert result.outcome is Outcome.MEMORY_LIMIT
    assert "max_table_elements=50000" in result.detail


def test_module_needing_more_memory_than_the_cap_is_refused_at_instantiation(
    sandbox: Sandbox,
) -> None:
    big = wasmtime.wat2wasm('(module (memory (export "memory") 300) (func (export "_start")))')
    result = sandbox.run(sandbox.compile(big), b"", Limits(memory_bytes=16 * 1024 * 1024))
    assert result.outcome is Outcome.MEMORY_LIMIT
    assert "memory_bytes=16777216" in result.detail


def test_stdout_flood_is_cut_at_the_cap_and_stopped(sandbox: Sandbox) -> None:
    result = contained(sandbox, "stdout_flood", Limits(max_stdout_bytes=100_000, timeout_ms=2_000))
    assert result.outcome is Outcome.OUTPUT_TOO_LARGE
    assert result.stdout == b"x" * 100_000
    assert result.stdout_dropped == 2 * 65536 - 100_000  # stopped at the first overflowing write
    assert "max_stdout_bytes=100000" in result.detail


def test_stderr_flood_keeps_the_tail_and_reports_the_rest(sandbox: Sandbox) -> None:
    limits = Limits(fuel=10**9, timeout_ms=5_000, max_stderr_bytes=4096)
    result = contained(sandbox, "stderr_flood", limits)
    assert result.outcome is Outcome.OK, result.detail
    assert result.stdout == b'{"done":true}'
    assert len(result.stderr) == 4096
    assert result.stderr.endswith(b"noise\nlast words\n")
    assert result.stderr_dropped == 20_000 * 66 + 11 - 4096


def test_stderr_flood_forever_exhausts_fuel(sandbox: Sandbox) -> None:
    # Every host call costs fuel, so a write loop ends deterministically.
    result = contained(sandbox, "stderr_flood", Limits(fuel=10_000_000, timeout_ms=2_000))
    assert result.outcome is Outcome.FUEL_EXHAUSTED


def test_files_environment_and_sockets_are_out_of_reach(sandbox: Sandbox) -> None:
    result = contained(sandbox, "escape", Limits(timeout_ms=2_000))
    assert result.outcome is Outcome.OK, result.detail
    values = struct.unpack_from("<13I", result.stdout)
    ebadf, enotsup = 8, 58
    prestat, open_dir3, open_stdin, read_fd3 = values[:4]
    assert prestat == ebadf  # no preopened directory
    assert open_dir3 == ebadf
    assert open_stdin != 0
    assert read_fd3 == ebadf
    assert values[4:7] == (0, 0, 0)  # environ: ok, 0 variables, 0 bytes
    assert values[7:10] == (0, 1, 5)  # args: ok, argc 1, "task\0"
    assert values[10:12] == (enotsup, enotsup)  # sock_accept, sock_recv
    assert values[12] == 0  # sched_yield returns at once
    assert result.stdout[52:] == b"task\x00"


def test_time_and_entropy_come_from_the_task(sandbox: Sandbox) -> None:
    result = contained(sandbox, "time_entropy", Limits(timeout_ms=2_000))
    assert result.outcome is Outcome.OK, result.detail
    realtime, realtime_again, monotonic, resolution = struct.unpack_from("<4Q", result.stdout)
    assert realtime == LOGICAL_TIME_NS
    assert realtime_again == LOGICAL_TIME_NS + CLOCK_STEP_NS
    assert monotonic == 2 * CLOCK_STEP_NS
    assert resolution == CLOCK_STEP_NS
    key = b"gitstore-agents/random-v1\x00" + str(SEED).encode()
    assert result.stdout[32:64] == hashlib.shake_256(key + (1).to_bytes(8, "little")).digest(32)
    assert result.stdout[64:80] == hashlib.shake_256(key + (2).to_bytes(8, "little")).digest(16)

    again = sandbox.run(
        sandbox.compile(wasm("time_entropy")), b"", logical_time_ns=LOGICAL_TIME_NS, seed=SEED
    )
    assert (again.stdout, again.fuel_used) == (result.stdout, result.fuel_used)
    other_seed = sandbox.run(
        sandbox.compile(wasm("time_entropy")), b"", logical_time_ns=LOGICAL_TIME_NS, seed=SEED + 1
    )
    assert other_seed.stdout[32:] != result.stdout[32:]


def test_nonzero_exit_code_is_reported(sandbox: Sandbox) -> None:
    result = contained(sandbox, "exit_code", Limits(timeout_ms=2_000))
    assert result.outcome is Outcome.EXIT_NONZERO
    assert result.exit_code == 3


def test_input_beyond_the_cap_is_refused_unrun(sandbox: Sandbox) -> None:
    result = sandbox.run(sandbox.compile(wasm("echo")), b"x" * 11, Limits(max_input_bytes=10))
    assert result.outcome is Outcome.INPUT_TOO_LARGE
    assert "max_input_bytes=10" in result.detail
    assert result.fuel_used == 0


def test_an_import_we_do_not_provide_is_an_invalid_module(sandbox: Sandbox) -> None:
    with pytest.raises(ModuleError) as info:
        sandbox.compile(wasm("foreign_import"))
    assert info.value.outcome is Outcome.MODULE_INVALID
    assert "read_host_secrets" in str(info.value)
    assert not info.value.retryable


def test_a_wasi_import_with_the_wrong_signature_is_an_invalid_module(sandbox: Sandbox) -> None:
    module = wasmtime.wat2wasm(
        '(module (import "wasi_snapshot_preview1" "clock_time_get" (func (param i32) (result i32)))'
        ' (memory (export "memory") 1) (func (export "_start")))'
    )
    with pytest.raises(ModuleError) as info:
        sandbox.compile(module)
    assert info.value.outcome is Outcome.MODULE_INVALID


def test_a_module_without_start_is_not_a_command(sandbox: Sandbox) -> None:
    reactor = wasmtime.wat2wasm('(module (memory (export "memory") 1) (func (export "run")))')
    with pytest.raises(ModuleError) as info:
        sandbox.compile(reactor)
    assert "_start" in str(info.value)


def test_a_trap_far_below_the_memory_cap_stays_a_trap(sandbox: Sandbox) -> None:
    # 4 MiB of a 64 MiB cap, then a bug: not a memory problem.
    module = wasmtime.wat2wasm(
        '(module (memory (export "memory") 64) (func (export "_start") unreachable))'
    )
    result = sandbox.run(sandbox.compile(module), b"", Limits(memory_bytes=64 * 1024 * 1024))
    assert result.outcome is Outcome.TRAP
    assert "unreachable" in result.detail
