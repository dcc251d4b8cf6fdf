"""Sandbox runs inline when surely short, on a thread otherwise, with the same result."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from gitstore_agents.config import INLINE_FUEL
from gitstore_agents.pipeline import SandboxOffload
from gitstore_agents.sandbox import Outcome, Sandbox, SandboxLimits

from .wasm_modules import echo_module

# Idle loop iterations that need more fuel than an inline attempt may use.
_HEAVY_SPIN = INLINE_FUEL


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    box = Sandbox()
    try:
        yield box
    finally:
        box.close()


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(2) as pool:
        yield pool


async def test_a_short_run_happens_inline(sandbox: Sandbox, executor: ThreadPoolExecutor) -> None:
    module = sandbox.compile(echo_module())
    offload = SandboxOffload(sandbox, executor)
    result = await offload.run(module, b'{"a":1}', SandboxLimits(), logical_time_ns=0, seed=1)
    assert result.outcome is Outcome.OK
    assert result.stdout == sandbox.run(module, b'{"a":1}', SandboxLimits(), seed=1).stdout
    assert (offload.inline_runs, offload.thread_runs, offload.fallbacks) == (1, 0, 0)


async def test_a_run_that_outgrows_the_inline_fuel_starts_over_on_a_thread_unchanged(
    sandbox: Sandbox, executor: ThreadPoolExecutor
) -> None:
    module = sandbox.compile(echo_module(spin=_HEAVY_SPIN))
    offload = SandboxOffload(sandbox, executor)
    result = await offload.run(module, b'{"a":1}', SandboxLimits(), logical_time_ns=0, seed=1)
    direct = sandbox.run(module, b'{"a":1}', SandboxLimits(), seed=1)
    assert result.outcome is Outcome.OK
    assert result.fuel_used > INLINE_FUEL
    assert (result.stdout, result.fuel_used) == (direct.stdout, direct.fuel_used)
    assert (offload.inline_runs, offload.thread_runs, offload.fallbacks) == (1, 1, 1)


async def test_modules_that_keep_outgrowing_the_cap_go_to_threads_directly(
    sandbox: Sandbox, executor: ThreadPoolExecutor
) -> None:
    module = sandbox.compile(echo_module(spin=_HEAVY_SPIN))
    offload = SandboxOffload(sandbox, executor)
    for _ in range(6):
        await offload.run(module, b"{}", SandboxLimits(), logical_time_ns=0, seed=1)
    assert offload.fallbacks == 3, "no inline attempt once recent runs kept outgrowing it"
    assert offload.thread_runs == 6


async def test_a_task_whose_own_fuel_fits_the_cap_keeps_its_inline_outcome(
    sandbox: Sandbox, executor: ThreadPoolExecutor
) -> None:
    module = sandbox.compile(echo_module(spin=_HEAVY_SPIN))
    offload = SandboxOffload(sandbox, executor)
    limits = SandboxLimits(fuel=INLINE_FUEL // 2)
    result = await offload.run(module, b"{}", limits, logical_time_ns=0, seed=1)
    assert result.outcome is Outcome.FUEL_EXHAUSTED
    assert (offload.inline_runs, offload.thread_runs) == (1, 0)


async def test_no_inline_fuel_sends_every_run_to_a_thread(
    sandbox: Sandbox, executor: ThreadPoolExecutor
) -> None:
    module = sandbox.compile(echo_module())
    offload = SandboxOffload(sandbox, executor, inline_fuel=0)
    for _ in range(3):
        result = await offload.run(module, b"{}", SandboxLimits(), logical_time_ns=0, seed=1)
        assert result.outcome is Outcome.OK
    assert (offload.inline_runs, offload.thread_runs) == (0, 3)
